#pragma once
// The emulated LightOS cluster: volumes and snapshots per project, their states over
// time, ETags, ACLs, capacity accounting, and the files that back them. Thread-safe;
// every mutation is persisted to DIR/state.json before the call returns.
//
// On disk (DIR = ClusterOptions::data_dir):
//   state.json                 whole cluster state (atomic replace)
//   volumes/<uuid>.img         the volume's data, a sparse file of the volume's size
//   volumes/<uuid>.acl         the volume's ACL, one value per line (atomic replace);
//                              present while the volume exists and is not Deleting/Failed
//   snapshots/<uuid>.img       point-in-time copy of the source volume

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include "lightbits/api/duros/v2/durosapi.pb.h"

namespace lbcsi::sim {

namespace api = ::lightbits::api::duros::v2;

struct ClusterOptions {
  std::string data_dir;
  std::string cluster_name = "lightos-sim";
  std::string subsystem_nqn =
      "nqn.2016-01.com.lightbitslabs:uuid:00000000-0000-4000-8000-00000000c5a1";
  std::vector<std::string> nvme_endpoints = {"127.0.0.1:4420"};
  std::vector<std::string> discovery_endpoints;  // default: each NVMe host at port 8009
  std::chrono::milliseconds create_delay{0};
  std::chrono::milliseconds delete_delay{0};
  uint32_t max_replicas = 3;
  uint64_t capacity_bytes = 10ULL << 40;
  std::vector<std::string> projects;  // when set, other project names are NOT_FOUND
};

class Cluster {
 public:
  using Clock = std::chrono::system_clock;
  // Returns true when a volume/snapshot with this name must end in Failed.
  using FailPredicate = std::function<bool(std::string_view name)>;

  // Loads DIR/state.json when present, else starts an empty cluster.
  static absl::StatusOr<std::unique_ptr<Cluster>> Open(ClusterOptions options);

  void SetFailPredicate(FailPredicate predicate);
  void SetApiEndpoints(std::vector<std::string> endpoints);

  absl::StatusOr<api::Volume> CreateVolume(const api::CreateVolumeRequest& req);
  absl::StatusOr<api::Volume> GetVolume(const api::GetVolumeRequest& req);
  // `if_match`: the ETag the caller read; a different current ETag is FAILED_PRECONDITION.
  absl::Status UpdateVolume(const api::UpdateVolumeRequest& req,
                            const std::optional<std::string>& if_match);
  absl::Status DeleteVolume(const api::DeleteVolumeRequest& req);
  absl::StatusOr<api::ListVolumesResponse> ListVolumes(const api::ListVolumeRequest& req);

  absl::StatusOr<api::Snapshot> CreateSnapshot(const api::CreateSnapshotRequest& req);
  absl::StatusOr<api::Snapshot> GetSnapshot(const api::GetSnapshotRequest& req);
  absl::Status DeleteSnapshot(const api::DeleteSnapshotRequest& req);
  absl::StatusOr<api::ListSnapshotsResponse> ListSnapshots(const api::ListSnapshotsRequest& req);

  api::ClusterInfo GetCluster();
  api::ClusterInfoV2 GetClusterInfo();
  api::ListNodesResponse ListNodes(const api::ListNodeRequest& req);

  // Test/control hook: moves a volume to Failed now.
  absl::Status FailVolume(const std::string& uuid);
  // Applies due state transitions (also done on every call); a ticker calls it.
  void Tick();

  std::string VolumePath(const std::string& uuid) const;
  std::string AclPath(const std::string& uuid) const;
  std::string SnapshotPath(const std::string& uuid) const;

 private:
  // A volume or snapshot record plus what the emulator needs beyond the API object.
  struct VolumeRec {
    api::Volume v;
    int64_t due_ms = 0;      // when the pending transition (Creating/Deleting) happens
    bool will_fail = false;  // Creating ends in Failed
  };
  struct SnapshotRec {
    api::Snapshot s;
    int64_t due_ms = 0;
    bool will_fail = false;
  };

  explicit Cluster(ClusterOptions options) : opts_(std::move(options)) {}

  absl::Status Load();
  absl::Status SaveLocked();
  void AdvanceLocked(int64_t now_ms);
  std::string NewEtagLocked();
  std::string NewUuidLocked();
  absl::StatusOr<std::string> ProjectLocked(const std::string& name) const;
  absl::StatusOr<VolumeRec*> FindVolumeLocked(const std::string& project, const std::string& uuid,
                                              const std::string& name);
  absl::StatusOr<SnapshotRec*> FindSnapshotLocked(const std::string& project,
                                                  const std::string& uuid, const std::string& name);
  absl::Status PublishAclLocked(const VolumeRec& rec);
  void UnpublishAclLocked(const std::string& uuid);
  api::Volume RenderVolume(const VolumeRec& rec) const;
  api::Snapshot RenderSnapshot(const SnapshotRec& rec) const;
  api::ClusterStatisticsApi StatisticsLocked() const;
  std::vector<std::string> NodeUuids() const;
  std::vector<std::string> DiscoveryEndpoints() const;

  const ClusterOptions opts_;
  mutable std::mutex mu_;
  FailPredicate should_fail_;
  std::vector<std::string> api_endpoints_;
  std::string cluster_uuid_;
  uint64_t etag_counter_ = 0;
  uint32_t next_nsid_ = 1;
  std::map<std::string, VolumeRec> volumes_;      // by UUID: stable list order
  std::map<std::string, SnapshotRec> snapshots_;  // by UUID
};

}  // namespace lbcsi::sim
