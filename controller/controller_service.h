#pragma once
// CSI Controller service backed by LightOS through lightos::ClientFactory.
// Every request is validated before the first LightOS call; mutating calls
// hold a per-volume (or per-name) in-flight guard: a concurrent duplicate gets
// ABORTED. See controller/README.md for the behaviour and deviations.

#include <memory>
#include <string>

#include <absl/status/statusor.h>
#include <google/protobuf/map.h>

#include "controller/inflight.h"
#include "controller/options.h"
#include "controller/validation.h"
#include "csi/v1/csi.grpc.pb.h"
#include "lightos/client.h"
#include "metrics/registry.h"
#include "volumeid/credential_scope.h"
#include "volumeid/resource_id.h"

namespace lbcsi::controller {

using SecretMap = google::protobuf::Map<std::string, std::string>;

class ControllerService final : public csi::v1::Controller::Service {
 public:
  ControllerService(ControllerOptions options, std::shared_ptr<lightos::ClientFactory> factory,
                    metrics::Registry& registry);

  grpc::Status CreateVolume(grpc::ServerContext* ctx, const csi::v1::CreateVolumeRequest* req,
                            csi::v1::CreateVolumeResponse* resp) override;
  grpc::Status DeleteVolume(grpc::ServerContext* ctx, const csi::v1::DeleteVolumeRequest* req,
                            csi::v1::DeleteVolumeResponse* resp) override;
  grpc::Status ControllerPublishVolume(grpc::ServerContext* ctx,
                                       const csi::v1::ControllerPublishVolumeRequest* req,
                                       csi::v1::ControllerPublishVolumeResponse* resp) override;
  grpc::Status ControllerUnpublishVolume(grpc::ServerContext* ctx,
                                         const csi::v1::ControllerUnpublishVolumeRequest* req,
                                         csi::v1::ControllerUnpublishVolumeResponse* resp) override;
  grpc::Status ValidateVolumeCapabilities(
      grpc::ServerContext* ctx, const csi::v1::ValidateVolumeCapabilitiesRequest* req,
      csi::v1::ValidateVolumeCapabilitiesResponse* resp) override;
  grpc::Status ListVolumes(grpc::ServerContext* ctx, const csi::v1::ListVolumesRequest* req,
                           csi::v1::ListVolumesResponse* resp) override;
  grpc::Status GetCapacity(grpc::ServerContext* ctx, const csi::v1::GetCapacityRequest* req,
                           csi::v1::GetCapacityResponse* resp) override;
  grpc::Status ControllerGetCapabilities(grpc::ServerContext* ctx,
                                         const csi::v1::ControllerGetCapabilitiesRequest* req,
                                         csi::v1::ControllerGetCapabilitiesResponse* resp) override;
  grpc::Status CreateSnapshot(grpc::ServerContext* ctx, const csi::v1::CreateSnapshotRequest* req,
                              csi::v1::CreateSnapshotResponse* resp) override;
  grpc::Status DeleteSnapshot(grpc::ServerContext* ctx, const csi::v1::DeleteSnapshotRequest* req,
                              csi::v1::DeleteSnapshotResponse* resp) override;
  grpc::Status ListSnapshots(grpc::ServerContext* ctx, const csi::v1::ListSnapshotsRequest* req,
                             csi::v1::ListSnapshotsResponse* resp) override;
  grpc::Status GetSnapshot(grpc::ServerContext* ctx, const csi::v1::GetSnapshotRequest* req,
                           csi::v1::GetSnapshotResponse* resp) override;
  grpc::Status ControllerExpandVolume(grpc::ServerContext* ctx,
                                      const csi::v1::ControllerExpandVolumeRequest* req,
                                      csi::v1::ControllerExpandVolumeResponse* resp) override;
  grpc::Status ControllerGetVolume(grpc::ServerContext* ctx,
                                   const csi::v1::ControllerGetVolumeRequest* req,
                                   csi::v1::ControllerGetVolumeResponse* resp) override;
  grpc::Status ControllerModifyVolume(grpc::ServerContext* ctx,
                                      const csi::v1::ControllerModifyVolumeRequest* req,
                                      csi::v1::ControllerModifyVolumeResponse* resp) override;

  // True when a cluster list is configured (LIST_VOLUMES, GET_CAPACITY, ...).
  bool ListModeEnabled() const { return !options_.clusters.empty(); }

 private:
  using Client = lightos::Client;
  using Opts = lightos::CallOptions;

  Opts CallOptionsFor(const grpc::ServerContext* ctx) const;
  absl::StatusOr<std::shared_ptr<Client>> ClientFor(const lightos::ClusterTarget& target,
                                                    const SecretMap* secrets);
  absl::StatusOr<std::shared_ptr<Client>> ClientFor(const ResourceId& id, const SecretMap* secrets);

  absl::Status DoCreateVolume(const Opts& o, const csi::v1::CreateVolumeRequest& req,
                              csi::v1::CreateVolumeResponse* resp);
  absl::Status DoDeleteVolume(const Opts& o, const csi::v1::DeleteVolumeRequest& req);
  absl::Status DoPublish(const Opts& o, const csi::v1::ControllerPublishVolumeRequest& req,
                         csi::v1::ControllerPublishVolumeResponse* resp);
  absl::Status DoUnpublish(const Opts& o, const csi::v1::ControllerUnpublishVolumeRequest& req);
  absl::Status DoValidate(const Opts& o, const csi::v1::ValidateVolumeCapabilitiesRequest& req,
                          csi::v1::ValidateVolumeCapabilitiesResponse* resp);
  absl::Status DoListVolumes(const Opts& o, const csi::v1::ListVolumesRequest& req,
                             csi::v1::ListVolumesResponse* resp);
  absl::Status DoGetCapacity(const Opts& o, const csi::v1::GetCapacityRequest& req,
                             csi::v1::GetCapacityResponse* resp);
  absl::Status DoCreateSnapshot(const Opts& o, const csi::v1::CreateSnapshotRequest& req,
                                csi::v1::CreateSnapshotResponse* resp);
  absl::Status DoDeleteSnapshot(const Opts& o, const csi::v1::DeleteSnapshotRequest& req);
  absl::Status DoListSnapshots(const Opts& o, const csi::v1::ListSnapshotsRequest& req,
                               csi::v1::ListSnapshotsResponse* resp);
  absl::Status DoGetSnapshot(const Opts& o, const csi::v1::GetSnapshotRequest& req,
                             csi::v1::GetSnapshotResponse* resp);
  absl::Status DoExpand(const Opts& o, const csi::v1::ControllerExpandVolumeRequest& req,
                        csi::v1::ControllerExpandVolumeResponse* resp);
  absl::Status DoGetVolume(const Opts& o, const csi::v1::ControllerGetVolumeRequest& req,
                           csi::v1::ControllerGetVolumeResponse* resp);
  absl::Status DoModify(const Opts& o, const csi::v1::ControllerModifyVolumeRequest& req);

  ControllerOptions options_;
  CredentialScope scope_;  // where tokens may go
  std::shared_ptr<lightos::ClientFactory> factory_;
  metrics::Registry& registry_;
  Inflight inflight_;
};

}  // namespace lbcsi::controller
