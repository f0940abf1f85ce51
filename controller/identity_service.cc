#include "controller/identity_service.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/strings.h"
#include "controller/rpc_runner.h"

namespace lbcsi::controller {

IdentityService::IdentityService(std::string driver_name, std::string version,
                                 std::function<absl::Status()> readiness,
                                 metrics::Registry& registry)
    : driver_name_(std::move(driver_name)),
      version_(std::move(version)),
      readiness_(std::move(readiness)),
      registry_(registry) {
  DescribeRpcMetrics(registry_);
}

grpc::Status IdentityService::GetPluginInfo(grpc::ServerContext*,
                                            const csi::v1::GetPluginInfoRequest* req,
                                            csi::v1::GetPluginInfoResponse* resp) {
  return RunRpc(registry_, "GetPluginInfo", *req, [&]() -> absl::Status {
    resp->set_name(driver_name_);
    resp->set_vendor_version(version_);
    (*resp->mutable_manifest())["component"] = "controller";
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::GetPluginCapabilities(
    grpc::ServerContext*, const csi::v1::GetPluginCapabilitiesRequest* req,
    csi::v1::GetPluginCapabilitiesResponse* resp) {
  return RunRpc(registry_, "GetPluginCapabilities", *req, [&]() -> absl::Status {
    resp->add_capabilities()->mutable_service()->set_type(
        csi::v1::PluginCapability::Service::CONTROLLER_SERVICE);
    // One VolumeExpansion value per entry: both kinds are supported.
    resp->add_capabilities()->mutable_volume_expansion()->set_type(
        csi::v1::PluginCapability::VolumeExpansion::ONLINE);
    resp->add_capabilities()->mutable_volume_expansion()->set_type(
        csi::v1::PluginCapability::VolumeExpansion::OFFLINE);
    return absl::OkStatus();
  });
}

grpc::Status IdentityService::Probe(grpc::ServerContext*, const csi::v1::ProbeRequest* req,
                                    csi::v1::ProbeResponse* resp) {
  return RunRpc(registry_, "Probe", *req, [&]() -> absl::Status {
    absl::Status ready = readiness_ ? readiness_() : absl::OkStatus();
    // A missing dependency is FAILED_PRECONDITION (the spec's table); anything else that
    // is not ready yet is a successful answer with ready=false.
    if (absl::IsFailedPrecondition(ready)) return ready;
    if (!ready.ok()) LOG(kWarn, "not ready", {"reason", StdView(ready.message())});
    resp->mutable_ready()->set_value(ready.ok());
    return absl::OkStatus();
  });
}

absl::Status CheckTokenFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    // Not there yet (a Secret volume still being mounted): not ready, not broken.
    return absl::UnavailableError(Cat("token file ", path, " does not exist (yet)"));
  }
  std::ifstream in(path);
  if (!in) return absl::FailedPreconditionError(Cat("token file ", path, " cannot be read"));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string token = ss.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  if (token.empty()) return absl::FailedPreconditionError(Cat("token file ", path, " is empty"));
  return absl::OkStatus();
}

}  // namespace lbcsi::controller
