#pragma once
// The DurosAPI gRPC service of lightos-sim: authentication, fault injection, then
// the cluster. One instance per listening endpoint; all share one SharedState.

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lightbits/api/duros/v2/durosapi.grpc.pb.h"
#include "tests/lightos-sim/cluster.h"
#include "tests/lightos-sim/faults.h"

namespace lbcsi::sim {

// What every endpoint's service reads; the faults can be swapped at runtime.
class SharedState {
 public:
  SharedState(Cluster* cluster, std::vector<std::string> tokens)
      : cluster_(cluster), tokens_(std::move(tokens)) {}

  Cluster* cluster() const { return cluster_; }
  // True when `header` is "Bearer <token>" for a configured token.
  bool Authorized(std::string_view header) const;
  std::shared_ptr<const FaultConfig> faults() const;
  void SetFaults(FaultConfig faults);
  // Releases stalled calls when the process shuts down.
  std::atomic<bool> stopping{false};

 private:
  Cluster* const cluster_;
  const std::vector<std::string> tokens_;
  mutable std::mutex mu_;
  std::shared_ptr<const FaultConfig> faults_ = std::make_shared<FaultConfig>();
};

class DurosService final : public api::DurosAPI::Service {
 public:
  DurosService(SharedState* shared, int endpoint) : shared_(shared), endpoint_(endpoint) {}

  grpc::Status GetVersion(grpc::ServerContext* ctx, const api::GetVersionRequest* req,
                          api::Version* resp) override;
  grpc::Status GetClusterInfo(grpc::ServerContext* ctx, const api::GetClusterRequest* req,
                              api::ClusterInfoV2* resp) override;
  grpc::Status GetCluster(grpc::ServerContext* ctx, const api::GetClusterRequest* req,
                          api::ClusterInfo* resp) override;
  grpc::Status CreateVolume(grpc::ServerContext* ctx, const api::CreateVolumeRequest* req,
                            api::Volume* resp) override;
  grpc::Status GetVolume(grpc::ServerContext* ctx, const api::GetVolumeRequest* req,
                         api::Volume* resp) override;
  grpc::Status UpdateVolume(grpc::ServerContext* ctx, const api::UpdateVolumeRequest* req,
                            api::UpdateVolumeResponse* resp) override;
  grpc::Status DeleteVolume(grpc::ServerContext* ctx, const api::DeleteVolumeRequest* req,
                            api::DeleteVolumeResponse* resp) override;
  grpc::Status ListVolumes(grpc::ServerContext* ctx, const api::ListVolumeRequest* req,
                           api::ListVolumesResponse* resp) override;
  grpc::Status CreateSnapshot(grpc::ServerContext* ctx, const api::CreateSnapshotRequest* req,
                              api::Snapshot* resp) override;
  grpc::Status GetSnapshot(grpc::ServerContext* ctx, const api::GetSnapshotRequest* req,
                           api::Snapshot* resp) override;
  grpc::Status DeleteSnapshot(grpc::ServerContext* ctx, const api::DeleteSnapshotRequest* req,
                              api::DeleteSnapshotResponse* resp) override;
  grpc::Status ListSnapshots(grpc::ServerContext* ctx, const api::ListSnapshotsRequest* req,
                             api::ListSnapshotsResponse* resp) override;
  grpc::Status ListNodes(grpc::ServerContext* ctx, const api::ListNodeRequest* req,
                         api::ListNodesResponse* resp) override;

 private:
  // Authenticates, applies the RPC's faults, then runs `body`.
  template <typename Body>
  grpc::Status Handle(grpc::ServerContext* ctx, const char* rpc, Body body);
  // OK to proceed, or the injected outcome.
  absl::Status InjectFaults(grpc::ServerContext* ctx, const std::string& rpc);

  SharedState* const shared_;
  const int endpoint_;
};

}  // namespace lbcsi::sim
