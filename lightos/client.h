#pragma once
// The LightOS management client as the controller and the agent (ephemeral
// volumes) see it: typed operations on one cluster, with LightOS's waiting
// rules (poll until a state settles, inside the caller's deadline), the ETag
// read-modify-write loop for updates, endpoint failover, and errors mapped to
// the gRPC codes CSI expects, naming the endpoint and the volume.
//
// Implementations: GrpcClient (lightos/grpc_client.h) against a real cluster
// or lightos-sim; tests may provide fakes.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include "volumeid/cluster_target.h"
#include "volumeid/endpoints.h"
#include "volumeid/resource_id.h"

namespace lbcsi::lightos {

// Which cluster to talk to and how; the pool key together with the CA bundle.
using ClusterTarget = ::lbcsi::ClusterTarget;

enum class VolumeState {
  kUnknown,
  kCreating,
  kAvailable,
  kDeleting,
  kDeleted,
  kFailed,
  kUpdating,
  kRollback,
  kMigrating
};
enum class ProtectionState { kUnknown, kFullyProtected, kDegraded, kReadOnly, kNotAvailable };
enum class SnapshotState { kUnknown, kCreating, kAvailable, kDeleting, kDeleted, kFailed };

inline constexpr char kAclAllowAny[] = "ALLOW_ANY";
inline constexpr char kAclAllowNone[] = "ALLOW_NONE";

struct Volume {
  std::string uuid;
  std::string name;
  std::string project;
  VolumeState state = VolumeState::kUnknown;
  ProtectionState protection = ProtectionState::kUnknown;
  uint64_t size_bytes = 0;
  uint32_t replica_count = 0;
  bool compression = false;
  std::vector<std::string> acl;  // host NQNs, or exactly one of ALLOW_ANY / ALLOW_NONE
  std::string etag;
  std::string source_snapshot_uuid;
  std::string qos_policy_name;
  uint64_t written_bytes = 0;  // statistics.userWritten: 0 means never written
  std::map<std::string, std::string> labels;
  absl::Time creation_time = absl::InfinitePast();

  // LightOS's rule: usable for I/O in Available/Updating/Migrating and FullyProtected/Degraded.
  bool Usable() const;
};

struct Snapshot {
  std::string uuid;
  std::string name;
  std::string project;
  SnapshotState state = SnapshotState::kUnknown;
  std::string source_volume_uuid;
  uint64_t size_bytes = 0;
  absl::Time creation_time = absl::InfinitePast();
  std::string etag;
};

struct ClusterInfo {
  std::string uuid;
  std::string name;
  std::string subsystem_nqn;
  std::vector<std::string> nvme_endpoints;       // "ip:port"
  std::vector<std::string> discovery_endpoints;  // "ip:port"
  std::vector<std::string> api_endpoints;
  uint32_t current_max_replicas = 0;
  uint64_t free_logical_bytes = 0;  // ClusterStatisticsApi.estimatedFreeLogicalStorage (GetCluster)
};

struct CreateVolumeSpec {
  std::string name;         // unique per project; ^[a-zA-Z0-9-_.]{1,253}$
  uint64_t size_bytes = 0;  // the cluster rounds up to 4 KiB
  uint32_t replica_count = 1;
  bool compression = false;
  std::vector<std::string> acl = {kAclAllowNone};
  std::string qos_policy_name;       // empty: cluster default
  std::string source_snapshot_uuid;  // restore / clone
  std::map<std::string, std::string> labels;
};

struct Page {
  std::string offset_uuid;  // empty: from the start
  int64_t limit = 0;        // 0: no limit
};

// Per-call options. Every operation returns DEADLINE_EXCEEDED rather than
// outliving `deadline`, including the waiting loops.
struct CallOptions {
  absl::Time deadline = absl::InfiniteFuture();
};

using Labels = std::map<std::string, std::string>;
// Changes an ACL in place; return false to leave the volume untouched.
using AclMutator = std::function<bool(std::vector<std::string>& acl)>;
// Changes an ACL and the volume's labels together, in one ETag-guarded update (the controller
// records read-only publications in labels beside the ACL entry they describe). Return false
// to leave the volume untouched.
using AccessMutator = std::function<bool(std::vector<std::string>& acl, Labels& labels)>;

class Client {
 public:
  virtual ~Client() = default;

  // Refuses anything but "v2.0" with FAILED_PRECONDITION.
  virtual absl::Status CheckVersion(const CallOptions& opts) = 0;
  virtual absl::StatusOr<ClusterInfo> GetClusterInfo(const CallOptions& opts) = 0;

  // Creates and waits until Available. ALREADY_EXISTS if the name is taken
  // (the caller compares properties for CSI idempotency). FAILED when the
  // volume ends in Failed (INTERNAL, naming the volume).
  virtual absl::StatusOr<Volume> CreateVolume(const CreateVolumeSpec& spec,
                                              const CallOptions& opts) = 0;
  virtual absl::StatusOr<Volume> GetVolume(const std::string& uuid, const CallOptions& opts) = 0;
  // NOT_FOUND when no volume has that name in the project.
  virtual absl::StatusOr<Volume> GetVolumeByName(const std::string& name,
                                                 const CallOptions& opts) = 0;
  // Deletes and waits until it is gone. NOT_FOUND when it did not exist.
  virtual absl::Status DeleteVolume(const std::string& uuid, const CallOptions& opts) = 0;
  virtual absl::StatusOr<std::vector<Volume>> ListVolumes(const Page& page,
                                                          const CallOptions& opts) = 0;

  // ETag read-modify-write loops; retry on a stale ETag until the deadline.
  virtual absl::StatusOr<Volume> UpdateVolumeAccess(const std::string& uuid,
                                                    const AccessMutator& mutate,
                                                    const CallOptions& opts) = 0;
  // The ACL alone (labels untouched).
  absl::StatusOr<Volume> UpdateVolumeAcl(const std::string& uuid, const AclMutator& mutate,
                                         const CallOptions& opts) {
    return UpdateVolumeAccess(
        uuid, [&](std::vector<std::string>& acl, Labels&) { return mutate(acl); }, opts);
  }
  // Grows to at least `size_bytes` (never shrinks; success when already that large).
  virtual absl::StatusOr<Volume> ResizeVolume(const std::string& uuid, uint64_t size_bytes,
                                              const CallOptions& opts) = 0;
  virtual absl::StatusOr<Volume> SetQosPolicy(const std::string& uuid,
                                              const std::string& policy_name,
                                              const CallOptions& opts) = 0;

  // Creates and waits until Available. ALREADY_EXISTS if the name is taken.
  virtual absl::StatusOr<Snapshot> CreateSnapshot(const std::string& name,
                                                  const std::string& source_volume_uuid,
                                                  const CallOptions& opts) = 0;
  virtual absl::StatusOr<Snapshot> GetSnapshot(const std::string& uuid,
                                               const CallOptions& opts) = 0;
  virtual absl::StatusOr<Snapshot> GetSnapshotByName(const std::string& name,
                                                     const CallOptions& opts) = 0;
  virtual absl::Status DeleteSnapshot(const std::string& uuid, const CallOptions& opts) = 0;
  virtual absl::StatusOr<std::vector<Snapshot>> ListSnapshots(const Page& page,
                                                              const std::string& source_volume_uuid,
                                                              const CallOptions& opts) = 0;
};

// Where a client's JWT comes from: a CSI secrets map (value of key "jwt") or a
// file re-read when it changes (Kubernetes swaps a symlink on rotation).
struct TokenSource {
  std::string inline_token;  // from secrets; wins when non-empty
  std::string token_file;    // e.g. /etc/lb-csi/jwt
};

struct TlsOptions {
  std::string ca_bundle_file;         // PEM; empty: the system roots
  std::string server_name_override;   // clusters addressed by IP
  bool insecure_skip_verify = false;  // migration aid; logged as a warning on every connection
};

// Hands out clients bound to (target, token), sharing pooled connections keyed by
// (endpoints, scheme, CA); idle connections are closed after a while.
class ClientFactory {
 public:
  virtual ~ClientFactory() = default;
  virtual absl::StatusOr<std::shared_ptr<Client>> GetClient(const ClusterTarget& target,
                                                            const TokenSource& token) = 0;
};

}  // namespace lbcsi::lightos
