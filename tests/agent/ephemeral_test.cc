// Inline ephemeral volumes with a fake LightOS: node-only configuration,
// attribute allow-list, intent before create, deterministic name, delete.
#include <gtest/gtest.h>

#include "tests/agent/agent_env.h"

namespace lbcsi::agent::testing {
namespace {

using grpc::StatusCode;

csi::v1::NodePublishVolumeRequest EphReq(AgentEnv& env, const std::string& id,
                                         std::map<std::string, std::string> attrs = {}) {
  csi::v1::NodePublishVolumeRequest r;
  r.set_volume_id(id);
  r.set_target_path(env.kubelet_ + "/pods/p1/volumes/kubernetes.io~csi/scratch/mount");
  *r.mutable_volume_capability() = AgentEnv::MountCap("");
  auto& ctx = *r.mutable_volume_context();
  ctx["csi.storage.k8s.io/ephemeral"] = "true";
  ctx["csi.storage.k8s.io/pod.name"] = "p1";
  ctx["csi.storage.k8s.io/pod.namespace"] = "default";
  for (auto& [k, v] : attrs) ctx[k] = v;
  return r;
}

constexpr char kEphId[] = "csi-4f1c0d2a9b8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";

TEST(Ephemeral, CreateAttachFormatMountPublishThenDelete) {
  AgentEnv env;
  auto req = EphReq(
      env, kEphId,
      {{"size", "2Gi"}, {"replica-count", "2"}, {"compression", "enabled"}, {"fs-type", "xfs"}});
  ASSERT_TRUE(env.Publish(req).ok());
  ASSERT_EQ(env.lightos_.volumes.size(), 1u);
  const lightos::Volume v = env.lightos_.volumes.begin()->second;
  EXPECT_EQ(v.name, NodeService::EphemeralVolumeName(kEphId));
  EXPECT_TRUE(v.name.starts_with("eph-"));
  EXPECT_LE(v.name.size(), 253u);
  EXPECT_EQ(v.size_bytes, 2ull << 30);
  EXPECT_EQ(v.replica_count, 2u);
  EXPECT_TRUE(v.compression);
  EXPECT_EQ(v.acl, std::vector<std::string>{kHostNqn});
  EXPECT_EQ(v.labels.at("lbcsi-node"), kNodeId);
  EXPECT_EQ(v.labels.at("lbcsi-ephemeral-volume"), std::string(kEphId).substr(0, 63));
  // Only node configuration names the cluster and the credentials.
  ASSERT_FALSE(env.lightos_.tokens_seen.empty());
  EXPECT_EQ(env.lightos_.tokens_seen.back().token_file, "/etc/lb-csi/jwt");
  EXPECT_TRUE(env.lightos_.tokens_seen.back().inline_token.empty());
  EXPECT_EQ(env.lightos_.targets_seen.back().project, "eph");
  ASSERT_EQ(env.helper_.Formats().size(), 1u);
  EXPECT_EQ(env.helper_.Formats()[0].proof(), hv1::NEVER_WRITTEN_PROOF_CREATED_EMPTY);
  EXPECT_EQ(env.helper_.Formats()[0].fs_type(), hv1::FS_TYPE_XFS);
  auto mounts = env.helper_.Mounts();
  const std::string staging = env.node_->EphemeralStagingPath(kEphId);
  EXPECT_EQ(mounts.count(staging), 1u);
  EXPECT_EQ(mounts.count(req.target_path()), 1u);
  // The private mount point is made by the helper, never by the agent.
  ASSERT_FALSE(env.helper_.MountRequests().empty());
  EXPECT_EQ(env.helper_.MountRequests().back().staging_path(), staging);
  EXPECT_TRUE(env.helper_.MountRequests().back().create_staging_path());
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(staging).parent_path()))
      << "the agent created a directory under kubelet's root itself";
  // Idempotent.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(env.Publish(req).ok());
  EXPECT_EQ(env.lightos_.creates, 1);
  // Stats on the target work.
  csi::v1::NodeGetVolumeStatsRequest s;
  s.set_volume_id(kEphId);
  s.set_volume_path(req.target_path());
  csi::v1::NodeGetVolumeStatsResponse sr;
  EXPECT_TRUE(env.Stats(s, &sr).ok());

  csi::v1::NodeUnpublishVolumeRequest up;
  up.set_volume_id(kEphId);
  up.set_target_path(req.target_path());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(env.Unpublish(up).ok()) << i;
  EXPECT_TRUE(env.lightos_.volumes.empty());
  EXPECT_EQ(env.lightos_.deletes, 1);
  EXPECT_TRUE(env.helper_.Mounts().empty());
  EXPECT_TRUE(env.helper_.Attached().empty());
  EXPECT_EQ(env.StateFiles(), 0u);
  // ... and removed by the helper.
  EXPECT_EQ(env.helper_.RemovedDirs(), std::vector<std::string>{staging});
}

TEST(Ephemeral, HostileAttributesAreRefusedByName) {
  AgentEnv env;
  for (const char* key : {"mgmt-endpoint", "project-name", "mgmt-scheme", "jwt", "acl"}) {
    grpc::Status st = env.Publish(EphReq(env, kEphId, {{key, "10.66.6.6:443"}}));
    EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT) << key;
    EXPECT_NE(st.error_message().find(key), std::string::npos) << st.error_message();
    EXPECT_EQ(st.error_message().find("10.66.6.6"), std::string::npos) << "values are not echoed";
  }
  EXPECT_EQ(env.Publish(EphReq(env, kEphId, {{"size", "11Gi"}})).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(env.Publish(EphReq(env, kEphId, {{"size", "lots"}})).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(env.Publish(EphReq(env, kEphId, {{"replica-count", "4"}})).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(env.Publish(EphReq(env, kEphId, {{"fs-type", "vfat"}})).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(env.Publish(EphReq(env, kEphId, {{"compression", "maybe"}})).error_code(),
            StatusCode::INVALID_ARGUMENT);
  auto block = EphReq(env, kEphId);
  *block.mutable_volume_capability() = AgentEnv::BlockCap();
  EXPECT_EQ(env.Publish(block).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(env.lightos_.creates, 0);
  EXPECT_EQ(env.StateFiles(), 0u);
}

TEST(Ephemeral, DisabledWithoutNodeConfiguration) {
  AgentEnv env(AgentEnv::Options{.ephemeral = false});
  EXPECT_EQ(env.Publish(EphReq(env, kEphId)).error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(env.lightos_.creates, 0);
}

TEST(Ephemeral, IntentIsRecordedBeforeCreateVolume) {
  AgentEnv env;
  bool intent_seen_at_create = false;
  env.Restart([&](std::string_view point) -> absl::Status {
       if (point == "eph_publish.after_create") {
         // CreateVolume has returned; the intent must already be on disk.
         auto recs = env.Records();
         intent_seen_at_create =
             recs.size() == 1 && recs[0].ephemeral &&
             recs[0].ephemeral->lightos_name == NodeService::EphemeralVolumeName(kEphId);
       }
       return absl::OkStatus();
     })
      .IgnoreError();
  ASSERT_TRUE(env.Publish(EphReq(env, kEphId)).ok());
  EXPECT_TRUE(intent_seen_at_create);
}

TEST(Ephemeral, AFailedPublishTakesBackWhatItCreated) {
  AgentEnv env;
  env.helper_.FailNext("Publish",
                       grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "target outside roots"));
  EXPECT_EQ(env.Publish(EphReq(env, kEphId)).error_code(), StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(env.lightos_.volumes.empty());
  EXPECT_TRUE(env.helper_.Mounts().empty());
  EXPECT_TRUE(env.helper_.Attached().empty());
  EXPECT_EQ(env.StateFiles(), 0u);
}

TEST(Ephemeral, ANameTakenByAnotherVolumeIsNotAdopted) {
  AgentEnv env;
  lightos::Volume other;
  other.uuid = Uuid(500);
  other.name = NodeService::EphemeralVolumeName(kEphId);
  other.labels["lbcsi-node"] = "someone-else.node";
  env.lightos_.volumes[other.uuid] = other;
  EXPECT_EQ(env.Publish(EphReq(env, kEphId)).error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(env.lightos_.volumes.size(), 1u) << "the other volume is left alone";
  EXPECT_EQ(env.StateFiles(), 0u);
}

TEST(Ephemeral, NamesAreDeterministicAndValid) {
  std::string a = NodeService::EphemeralVolumeName("csi-abc");
  EXPECT_EQ(a, NodeService::EphemeralVolumeName("csi-abc"));
  EXPECT_NE(a, NodeService::EphemeralVolumeName("csi-abd"));
  for (char c : a) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-') << a;
  std::string weird = NodeService::EphemeralVolumeName(std::string(5000, '/') + "\n..");
  EXPECT_LE(weird.size(), 253u);
}

}  // namespace
}  // namespace lbcsi::agent::testing
