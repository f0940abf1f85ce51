#pragma once
// What the agent remembers about one volume on this node. Every phase that is
// not "done" is an intent: it is written before the helper is asked to act, so
// the start-up reconcile knows what may be half-done.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <absl/status/statusor.h>

namespace lbcsi::agent::state {

enum class StagePhase { kStaging, kStaged, kUnstaging };
enum class PublishPhase { kPublishing, kPublished, kUnpublishing };
enum class EphemeralPhase { kCreating, kCreated, kPublished, kDeleting };

struct StageRecord {
  StagePhase phase = StagePhase::kStaging;
  std::string path;
  bool block = false;
  std::string fs_type;  // ext4 | xfs; empty for block
  bool read_only = false;
  int access_mode = 0;             // csi::v1::VolumeCapability::AccessMode::Mode
  std::vector<int> mount_options;  // helper MountOption values, sorted
  std::string selinux_context;
  // Host-encrypted (`hostcrypto:luks2` id): staged through the LUKS mapping,
  // which unstage closes. The passphrase is never recorded.
  bool encrypted = false;
  friend bool operator==(const StageRecord&, const StageRecord&) = default;
};

struct PublishRecord {
  PublishPhase phase = PublishPhase::kPublishing;
  bool block = false;
  bool read_only = false;
  int access_mode = 0;
  std::string fs_type;
  std::vector<int> mount_options;
  std::string selinux_context;
  friend bool operator==(const PublishRecord&, const PublishRecord&) = default;
};

struct EphemeralRecord {
  EphemeralPhase phase = EphemeralPhase::kCreating;
  std::string lightos_name;
  std::string staging_path;  // private mount point under the kubelet root
  std::string target_path;
  uint64_t size_bytes = 0;
  uint32_t replica_count = 1;
  bool compression = false;
  std::string fs_type;
  friend bool operator==(const EphemeralRecord&, const EphemeralRecord&) = default;
};

struct VolumeRecord {
  std::string volume_id;      // as the CO names it
  std::string volume_uuid;    // LightOS UUID (empty for an ephemeral volume not created yet)
  std::string subsystem_nqn;  // for Detach
  std::optional<StageRecord> stage;
  std::map<std::string, PublishRecord> publishes;  // by target path
  std::optional<EphemeralRecord> ephemeral;

  bool Empty() const { return !stage && publishes.empty() && !ephemeral; }
  friend bool operator==(const VolumeRecord&, const VolumeRecord&) = default;
};

std::string ToJson(const VolumeRecord& record);
absl::StatusOr<VolumeRecord> FromJson(std::string_view text);

}  // namespace lbcsi::agent::state
