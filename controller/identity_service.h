#pragma once
// CSI Identity for the controller: plugin name and version, capabilities,
// and a Probe that reports not-ready (with the reason logged) while the
// controller cannot work.

#include <functional>
#include <string>

#include <absl/status/status.h>

#include "csi/v1/csi.grpc.pb.h"
#include "metrics/registry.h"

namespace lbcsi::controller {

class IdentityService final : public csi::v1::Identity::Service {
 public:
  // `readiness` returns OK when ready; FAILED_PRECONDITION makes Probe fail with
  // that status (missing dependency); any other error answers ready=false.
  IdentityService(std::string driver_name, std::string version,
                  std::function<absl::Status()> readiness, metrics::Registry& registry);

  grpc::Status GetPluginInfo(grpc::ServerContext* ctx, const csi::v1::GetPluginInfoRequest* req,
                             csi::v1::GetPluginInfoResponse* resp) override;
  grpc::Status GetPluginCapabilities(grpc::ServerContext* ctx,
                                     const csi::v1::GetPluginCapabilitiesRequest* req,
                                     csi::v1::GetPluginCapabilitiesResponse* resp) override;
  grpc::Status Probe(grpc::ServerContext* ctx, const csi::v1::ProbeRequest* req,
                     csi::v1::ProbeResponse* resp) override;

 private:
  std::string driver_name_;
  std::string version_;
  std::function<absl::Status()> readiness_;
  metrics::Registry& registry_;
};

// A readiness check for a token file: OK when readable and non-empty; UNAVAILABLE
// (not ready) when it does not exist yet; FAILED_PRECONDITION when it exists but
// cannot be read or is empty.
absl::Status CheckTokenFile(const std::string& path);

}  // namespace lbcsi::controller
