// Identity service: plugin info, capabilities, Probe readiness.
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <grpcpp/server_context.h>

#include "controller/identity_service.h"
#include "kubeletpaths/kubelet_paths.h"

namespace lbcsi::controller {
namespace {

// covers: GetPluginInfo.MUST.name_format, GetPluginInfo.MUST.vendor_version
TEST(IdentityTest, PluginInfo) {
  metrics::Registry reg;
  IdentityService id("csi.lightbitslabs.com", "1.2.3", nullptr, reg);
  csi::v1::GetPluginInfoRequest req;
  csi::v1::GetPluginInfoResponse resp;
  grpc::ServerContext ctx;
  ASSERT_TRUE(id.GetPluginInfo(&ctx, &req, &resp).ok());
  EXPECT_EQ(resp.name(), "csi.lightbitslabs.com");
  EXPECT_TRUE(kubeletpaths::IsDriverName(resp.name()));
  EXPECT_EQ(resp.vendor_version(), "1.2.3");
}

// covers: GetPluginCapabilities.MUST.same_for_all_instances, GetPluginCapabilities.MUST.expansion_implies_expand_capability
TEST(IdentityTest, CapabilitiesAreStableAndOneExpansionPerEntry) {
  metrics::Registry reg;
  IdentityService id("d", "v", nullptr, reg);
  auto get = [&] {
    csi::v1::GetPluginCapabilitiesRequest req;
    csi::v1::GetPluginCapabilitiesResponse resp;
    grpc::ServerContext ctx;
    EXPECT_TRUE(id.GetPluginCapabilities(&ctx, &req, &resp).ok());
    return resp;
  };
  auto a = get(), b = get();
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
  ASSERT_EQ(a.capabilities_size(), 3);
  EXPECT_EQ(a.capabilities(0).service().type(),
            csi::v1::PluginCapability::Service::CONTROLLER_SERVICE);
  EXPECT_EQ(a.capabilities(1).volume_expansion().type(),
            csi::v1::PluginCapability::VolumeExpansion::ONLINE);
  EXPECT_EQ(a.capabilities(2).volume_expansion().type(),
            csi::v1::PluginCapability::VolumeExpansion::OFFLINE);
  // Expansion is backed by the controller's EXPAND_VOLUME (see ControllerGetCapabilities test).
}

// covers: Probe.MUST.implemented, Probe.E.FAILED_PRECONDITION
TEST(IdentityTest, ProbeFollowsTheTokenFile) {
  char tmpl[] = "/tmp/lbcsi-probe-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string path = dir + "/jwt";
  metrics::Registry reg;
  IdentityService id(
      "d", "v", [&] { return CheckTokenFile(path); }, reg);
  auto probe = [&](csi::v1::ProbeResponse* resp) {
    csi::v1::ProbeRequest req;
    grpc::ServerContext ctx;
    return id.Probe(&ctx, &req, resp);
  };
  csi::v1::ProbeResponse resp;
  ASSERT_TRUE(probe(&resp).ok());  // not there yet: not ready
  EXPECT_FALSE(resp.ready().value());
  { std::ofstream(path) << "\n"; }  // empty token: a broken dependency
  grpc::Status s = probe(&resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("empty"));
  { std::ofstream(path) << "token\n"; }
  ASSERT_TRUE(probe(&resp).ok());
  EXPECT_TRUE(resp.ready().value());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lbcsi::controller
