// Identity service, node info/capabilities, and secrets kept out of logs.
#include <gtest/gtest.h>

#include "common/logging.h"
#include "tests/agent/agent_env.h"

namespace lbcsi::agent::testing {
namespace {

TEST(Identity, PluginInfoAndCapabilities) {
  CSI_CONFORMANCE("GetPluginInfo.MUST.name_format");
  CSI_CONFORMANCE("GetPluginInfo.MUST.vendor_version");
  CSI_CONFORMANCE("GetPluginCapabilities.MUST.implemented");
  AgentEnv env;
  grpc::ClientContext c1;
  csi::v1::GetPluginInfoResponse info;
  ASSERT_TRUE(env.identity_stub_->GetPluginInfo(&c1, {}, &info).ok());
  EXPECT_EQ(info.name(), "csi.lightbitslabs.com");
  EXPECT_LE(info.name().size(), 63u);
  EXPECT_FALSE(info.vendor_version().empty());
  grpc::ClientContext c2;
  csi::v1::GetPluginCapabilitiesResponse caps;
  ASSERT_TRUE(env.identity_stub_->GetPluginCapabilities(&c2, {}, &caps).ok());
  EXPECT_EQ(caps.capabilities_size(), 3);  // same set as the controller
}

TEST(Identity, ProbeFollowsTheHelper) {
  CSI_CONFORMANCE("Probe.MUST.implemented");
  AgentEnv env;
  auto probe = [&](csi::v1::ProbeResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return env.identity_stub_->Probe(&ctx, {}, resp);
  };
  csi::v1::ProbeResponse resp;
  ASSERT_TRUE(probe(&resp).ok());
  EXPECT_TRUE(resp.ready().value());
  env.helper_.SetDown(true);
  ASSERT_TRUE(probe(&resp).ok());
  EXPECT_FALSE(resp.ready().value());
  env.helper_.SetDown(false);
  ASSERT_TRUE(probe(&resp).ok());
  EXPECT_TRUE(resp.ready().value());
  env.identity_->SetReconciled(false);
  ASSERT_TRUE(probe(&resp).ok());
  EXPECT_FALSE(resp.ready().value()) << "not ready before the start-up reconcile";
}

TEST(Identity, ProbeFailsWhenTheHelperIsAnotherHost) {
  CSI_CONFORMANCE("Probe.E.FAILED_PRECONDITION.not_healthy");
  CSI_CONFORMANCE("Probe.E.FAILED_PRECONDITION.missing_dependency");
  AgentEnv env;
  env.Stop();
  env.config_.node_id = "worker-2.node";
  ASSERT_TRUE(FinalizeConfig(env.config_).ok());
  env.Start({});
  grpc::ClientContext ctx;
  csi::v1::ProbeResponse resp;
  grpc::Status st = env.identity_stub_->Probe(&ctx, {}, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("host NQN"), std::string::npos);
}

TEST(Node, InfoAndCapabilities) {
  CSI_CONFORMANCE("NodeGetInfo.MUST.node_id");
  CSI_CONFORMANCE("NodeGetInfo.MUST.max_volumes_non_negative");
  CSI_CONFORMANCE("NodeGetInfo.MUST.node_id_max_256");
  CSI_CONFORMANCE("NodeGetCapabilities.MUST.implemented");
  AgentEnv env;
  grpc::ClientContext c1;
  csi::v1::NodeGetInfoResponse info;
  ASSERT_TRUE(env.node_stub_->NodeGetInfo(&c1, {}, &info).ok());
  EXPECT_EQ(info.node_id(), kNodeId);
  EXPECT_LE(info.node_id().size(), 256u);
  EXPECT_EQ(info.max_volumes_per_node(), 77);
  EXPECT_FALSE(info.has_accessible_topology());
  grpc::ClientContext c2;
  csi::v1::NodeGetCapabilitiesResponse caps;
  ASSERT_TRUE(env.node_stub_->NodeGetCapabilities(&c2, {}, &caps).ok());
  std::set<int> got;
  for (const auto& c : caps.capabilities()) got.insert(c.rpc().type());
  using T = csi::v1::NodeServiceCapability::RPC;
  EXPECT_EQ(got, (std::set<int>{T::STAGE_UNSTAGE_VOLUME, T::EXPAND_VOLUME, T::GET_VOLUME_STATS,
                                T::VOLUME_CONDITION, T::SINGLE_NODE_MULTI_WRITER}));
}

TEST(Secrets, NeverReachTheLogs) {
  CSI_CONFORMANCE("Secrets.MUST.not_logged");
  std::vector<std::string> lines;
  std::mutex mu;
  log::Init({.level = log::Level::kTrace, .format = log::Format::kText, .component = "agent"});
  log::SetSinkForTesting([&](std::string_view line) {
    std::lock_guard<std::mutex> l(mu);
    lines.emplace_back(line);
  });
  {
    AgentEnv env;
    env.AddBlank(1);
    lightos::Volume v;
    v.uuid = Uuid(1);
    env.lightos_.volumes[v.uuid] = v;
    auto req = env.StageReq(1, AgentEnv::MountCap("ext4"));
    req.clear_publish_context();
    (*req.mutable_secrets())["jwt"] = "s3cr3t-token-value-xyz";
    (*req.mutable_secrets())["host-encryption-passphrase"] = "p4ssphr4se-value";
    ASSERT_TRUE(env.Stage(req).ok());
    // A failing call logs its error too.
    env.lightos_.fail_all = absl::UnauthenticatedError("rejected");
    req.set_staging_target_path(env.StagingPath(2));
    req.set_volume_id(VolId(2));
    EXPECT_FALSE(env.Stage(req).ok());
  }
  log::SetSinkForTesting(nullptr);
  log::Init({.level = log::Level::kInfo, .format = log::Format::kText, .component = "agent"});
  ASSERT_FALSE(lines.empty());
  bool saw_request = false;
  for (const auto& line : lines) {
    EXPECT_EQ(line.find("s3cr3t-token-value-xyz"), std::string::npos) << line;
    EXPECT_EQ(line.find("p4ssphr4se-value"), std::string::npos) << line;
    saw_request = saw_request || line.find("NodeStageVolume") != std::string::npos;
  }
  EXPECT_TRUE(saw_request) << "the request itself was logged (redacted)";
}

}  // namespace
}  // namespace lbcsi::agent::testing
