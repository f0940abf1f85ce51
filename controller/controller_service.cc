// The service edge: one RunRpc per CSI method, plus the plumbing every
// handler shares (deadlines, clients, capabilities).
#include "controller/controller_service.h"

#include <chrono>

#include "common/status.h"
#include "common/strings.h"
#include "controller/internal.h"
#include "controller/rpc_runner.h"

namespace lbcsi::controller {

ControllerService::ControllerService(ControllerOptions options,
                                     std::shared_ptr<lightos::ClientFactory> factory,
                                     metrics::Registry& registry)
    : options_(std::move(options)),
      scope_([this] {
        std::vector<lightos::ClusterTarget> trusted = options_.clusters;
        trusted.insert(trusted.end(), options_.trusted_clusters.begin(),
                       options_.trusted_clusters.end());
        return CredentialScope(trusted);
      }()),
      factory_(std::move(factory)),
      registry_(registry) {
  DescribeRpcMetrics(registry_);
}

lightos::CallOptions ControllerService::CallOptionsFor(const grpc::ServerContext* ctx) const {
  lightos::CallOptions o;
  absl::Time cap = absl::Now() + options_.default_timeout;
  o.deadline = cap;
  if (ctx != nullptr) {
    auto deadline = ctx->deadline();
    auto now = std::chrono::system_clock::now();
    // gRPC reports "no deadline" as a time far in the future.
    if (deadline < now + std::chrono::hours(24 * 365)) {
      absl::Time d = absl::FromChrono(deadline);
      if (d < cap) o.deadline = d;
    }
  }
  return o;
}

absl::StatusOr<std::shared_ptr<lightos::Client>> ControllerService::ClientFor(
    const lightos::ClusterTarget& target, const SecretMap* secrets) {
  // The token goes only where volumeid/credential_scope.h allows, checked
  // before anything is dialled: the endpoint comes from the request.
  lightos::TokenSource token;
  if (secrets != nullptr) {
    if (auto it = secrets->find("jwt"); it != secrets->end() && !it->second.empty()) {
      RETURN_IF_ERROR(scope_.CheckRequestToken(target));
      token.inline_token = it->second;
      return factory_->GetClient(target, token);
    }
  }
  if (options_.jwt_file.empty()) {
    return absl::UnauthenticatedError(
        "no LightOS token: the request's secrets have no \"jwt\" key and no --jwt-file is set");
  }
  RETURN_IF_ERROR(scope_.CheckOperatorToken(target));
  token.token_file = options_.jwt_file;
  return factory_->GetClient(target, token);
}

absl::StatusOr<std::shared_ptr<lightos::Client>> ControllerService::ClientFor(
    const ResourceId& id, const SecretMap* secrets) {
  return ClientFor(internal::TargetOf(id), secrets);
}

#define LBCSI_RPC(Method, ...) \
  return RunRpc(registry_, #Method, *req, [&]() -> absl::Status { __VA_ARGS__; })

grpc::Status ControllerService::CreateVolume(grpc::ServerContext* ctx,
                                             const csi::v1::CreateVolumeRequest* req,
                                             csi::v1::CreateVolumeResponse* resp) {
  LBCSI_RPC(CreateVolume, return DoCreateVolume(CallOptionsFor(ctx), *req, resp));
}
grpc::Status ControllerService::DeleteVolume(grpc::ServerContext* ctx,
                                             const csi::v1::DeleteVolumeRequest* req,
                                             csi::v1::DeleteVolumeResponse*) {
  LBCSI_RPC(DeleteVolume, return DoDeleteVolume(CallOptionsFor(ctx), *req));
}
grpc::Status ControllerService::ControllerPublishVolume(
    grpc::ServerContext* ctx, const csi::v1::ControllerPublishVolumeRequest* req,
    csi::v1::ControllerPublishVolumeResponse* resp) {
  LBCSI_RPC(ControllerPublishVolume, return DoPublish(CallOptionsFor(ctx), *req, resp));
}
grpc::Status ControllerService::ControllerUnpublishVolume(
    grpc::ServerContext* ctx, const csi::v1::ControllerUnpublishVolumeRequest* req,
    csi::v1::ControllerUnpublishVolumeResponse*) {
  LBCSI_RPC(ControllerUnpublishVolume, return DoUnpublish(CallOptionsFor(ctx), *req));
}
grpc::Status ControllerService::ValidateVolumeCapabilities(
    grpc::ServerContext* ctx, const csi::v1::ValidateVolumeCapabilitiesRequest* req,
    csi::v1::ValidateVolumeCapabilitiesResponse* resp) {
  LBCSI_RPC(ValidateVolumeCapabilities, return DoValidate(CallOptionsFor(ctx), *req, resp));
}
grpc::Status ControllerService::ListVolumes(grpc::ServerContext* ctx,
                                            const csi::v1::ListVolumesRequest* req,
                                            csi::v1::ListVolumesResponse* resp) {
  LBCSI_RPC(ListVolumes, return DoListVolumes(CallOptionsFor(ctx), *req, resp));
}
grpc::Status ControllerService::GetCapacity(grpc::ServerContext* ctx,
                                            const csi::v1::GetCapacityRequest* req,
                                            csi::v1::GetCapacityResponse* resp) {
  LBCSI_RPC(GetCapacity, return DoGetCapacity(CallOptionsFor(ctx), *req, resp));
}
grpc::Status ControllerService::CreateSnapshot(grpc::ServerContext* ctx,
                                               const csi::v1::CreateSnapshotRequest* req,
                                               csi::v1::CreateSnapshotResponse* resp) {
  LBCSI_RPC(CreateSnapshot, return DoCreateSnapshot(CallOptionsFor(ctx), *req, resp));
}
grpc::Status ControllerService::DeleteSnapshot(grpc::ServerContext* ctx,
                                               const csi::v1::DeleteSnapshotRequest* req,
                                               csi::v1::DeleteSnapshotResponse*) {
  LBCSI_RPC(DeleteSnapshot, return DoDeleteSnapshot(CallOptionsFor(ctx), *req));
}
grpc::Status ControllerService::ListSnapshots(grpc::ServerContext* ctx,
                                              const csi::v1::ListSnapshotsRequest* req,
                                              csi::v1::ListSnapshotsResponse* resp) {
  LBCSI_RPC(ListSnapshots, return DoListSnapshots(CallOptionsFor(ctx), *req, resp));
}
grpc::Status ControllerService::GetSnapshot(grpc::ServerContext* ctx,
                                            const csi::v1::GetSnapshotRequest* req,
                                            csi::v1::GetSnapshotResponse* resp) {
  LBCSI_RPC(GetSnapshot, {
    if (!options_.alpha_capabilities) {
      return absl::UnimplementedError(
          "GetSnapshot is an alpha CSI capability; start the controller with --alpha-capabilities");
    }
    return DoGetSnapshot(CallOptionsFor(ctx), *req, resp);
  });
}
grpc::Status ControllerService::ControllerExpandVolume(
    grpc::ServerContext* ctx, const csi::v1::ControllerExpandVolumeRequest* req,
    csi::v1::ControllerExpandVolumeResponse* resp) {
  LBCSI_RPC(ControllerExpandVolume, return DoExpand(CallOptionsFor(ctx), *req, resp));
}
grpc::Status ControllerService::ControllerGetVolume(grpc::ServerContext* ctx,
                                                    const csi::v1::ControllerGetVolumeRequest* req,
                                                    csi::v1::ControllerGetVolumeResponse* resp) {
  LBCSI_RPC(ControllerGetVolume, return DoGetVolume(CallOptionsFor(ctx), *req, resp));
}
grpc::Status ControllerService::ControllerModifyVolume(
    grpc::ServerContext* ctx, const csi::v1::ControllerModifyVolumeRequest* req,
    csi::v1::ControllerModifyVolumeResponse*) {
  LBCSI_RPC(ControllerModifyVolume, return DoModify(CallOptionsFor(ctx), *req));
}

grpc::Status ControllerService::ControllerGetCapabilities(
    grpc::ServerContext*, const csi::v1::ControllerGetCapabilitiesRequest* req,
    csi::v1::ControllerGetCapabilitiesResponse* resp) {
  using Rpc = csi::v1::ControllerServiceCapability::RPC;
  LBCSI_RPC(ControllerGetCapabilities, {
    std::vector<Rpc::Type> caps = {Rpc::CREATE_DELETE_VOLUME,   Rpc::PUBLISH_UNPUBLISH_VOLUME,
                                   Rpc::CREATE_DELETE_SNAPSHOT, Rpc::LIST_SNAPSHOTS,
                                   Rpc::CLONE_VOLUME,           Rpc::EXPAND_VOLUME,
                                   Rpc::PUBLISH_READONLY,       Rpc::SINGLE_NODE_MULTI_WRITER,
                                   Rpc::MODIFY_VOLUME};
    if (options_.alpha_capabilities) caps.push_back(Rpc::GET_SNAPSHOT);
    if (ListModeEnabled()) {
      // These carry no secrets: they need the controller-wide token and the cluster list.
      for (Rpc::Type t : {Rpc::LIST_VOLUMES, Rpc::GET_CAPACITY, Rpc::LIST_VOLUMES_PUBLISHED_NODES,
                          Rpc::GET_VOLUME, Rpc::VOLUME_CONDITION}) {
        caps.push_back(t);
      }
    }
    for (Rpc::Type t : caps) resp->add_capabilities()->mutable_rpc()->set_type(t);
    return absl::OkStatus();
  });
}

#undef LBCSI_RPC

}  // namespace lbcsi::controller
