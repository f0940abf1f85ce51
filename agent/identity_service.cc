#include "agent/identity_service.h"

#include "common/logging.h"
#include "common/status.h"

namespace lbcsi::agent {

IdentityService::IdentityService(AgentConfig config, std::shared_ptr<HelperClient> helper,
                                 absl::Duration probe_timeout)
    : config_(std::move(config)), helper_(std::move(helper)), probe_timeout_(probe_timeout) {}

grpc::Status IdentityService::GetPluginInfo(grpc::ServerContext*,
                                            const csi::v1::GetPluginInfoRequest*,
                                            csi::v1::GetPluginInfoResponse* resp) {
  resp->set_name(config_.driver_name);
  resp->set_vendor_version(config_.version);
  (*resp->mutable_manifest())["component"] = "node";
  return grpc::Status::OK;
}

grpc::Status IdentityService::GetPluginCapabilities(grpc::ServerContext*,
                                                    const csi::v1::GetPluginCapabilitiesRequest*,
                                                    csi::v1::GetPluginCapabilitiesResponse* resp) {
  // The plugin as a whole (controller + node) reports the same set everywhere.
  resp->add_capabilities()->mutable_service()->set_type(
      csi::v1::PluginCapability::Service::CONTROLLER_SERVICE);
  resp->add_capabilities()->mutable_volume_expansion()->set_type(
      csi::v1::PluginCapability::VolumeExpansion::ONLINE);
  resp->add_capabilities()->mutable_volume_expansion()->set_type(
      csi::v1::PluginCapability::VolumeExpansion::OFFLINE);
  return grpc::Status::OK;
}

grpc::Status IdentityService::Probe(grpc::ServerContext* ctx, const csi::v1::ProbeRequest*,
                                    csi::v1::ProbeResponse* resp) {
  if (int q = quarantined_.load(); q > 0 && ctx != nullptr) {
    ctx->AddTrailingMetadata(kQuarantinedMetadata, std::to_string(q));
  }
  absl::StatusOr<hv1::GetInfoResponse> info = helper_->GetInfo(absl::Now() + probe_timeout_);
  if (!info.ok()) {
    LOG(kWarn, "probe: helper unreachable", {"status", info.status()});
    resp->mutable_ready()->set_value(false);
    return grpc::Status::OK;
  }
  if (info->host_nqn() != config_.host_nqn) {
    // The controller grants access to the NQN derived from our node id; a
    // helper connecting as another host would never see the volumes.
    return ToGrpcStatus(absl::FailedPreconditionError(
        Cat("the helper's host NQN \"", info->host_nqn(), "\" differs from this node's \"",
            config_.host_nqn, "\"")));
  }
  resp->mutable_ready()->set_value(reconciled_.load());
  return grpc::Status::OK;
}

}  // namespace lbcsi::agent
