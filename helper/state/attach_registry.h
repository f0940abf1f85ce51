#pragma once
// The helper's own list of the volumes it attached (volume UUID -> subsystem
// NQN), kept in <state_dir>/attached so that it survives helper restarts. The
// NVMe transport treats a namespace as a volume's device only when this list
// names the volume and the namespace belongs to that subsystem; the agent's
// word (a UUID) is never enough (docs/security.md, "Device identity").

#include <map>
#include <optional>
#include <string>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include "helper/state/uuid_records.h"

namespace lbcsi::helper {

class AttachRegistry {
 public:
  // `created` tells whether the registry did not exist before (first start of
  // a helper that keeps one): the caller may then seed it from kernel state.
  static absl::StatusOr<AttachRegistry> Open(const std::string& state_dir, bool* created = nullptr);

  // Remembers that the helper attaches `volume_uuid` from `subsystem_nqn`.
  // FAILED_PRECONDITION when it is already recorded under another subsystem.
  absl::Status Record(const std::string& volume_uuid, const std::string& subsystem_nqn);
  absl::Status Forget(const std::string& volume_uuid);
  // The subsystem the volume was attached from, or nullopt when it is not ours.
  absl::StatusOr<std::optional<std::string>> SubsystemOf(const std::string& volume_uuid) const;
  absl::StatusOr<std::map<std::string, std::string>> All() const;

 private:
  explicit AttachRegistry(UuidRecords records) : records_(std::move(records)) {}
  UuidRecords records_;
};

}  // namespace lbcsi::helper
