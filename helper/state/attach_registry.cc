#include "helper/state/attach_registry.h"

#include "common/status.h"
#include "common/strings.h"
#include "helper/validate.h"

namespace lbcsi::helper {

absl::StatusOr<AttachRegistry> AttachRegistry::Open(const std::string& state_dir, bool* created) {
  ASSIGN_OR_RETURN(UuidRecords records, UuidRecords::Open(state_dir, "attached", created));
  return AttachRegistry(std::move(records));
}

absl::Status AttachRegistry::Record(const std::string& volume_uuid,
                                    const std::string& subsystem_nqn) {
  RETURN_IF_ERROR(ValidateNqn("subsystem_nqn", subsystem_nqn));
  ASSIGN_OR_RETURN(std::optional<std::string> known, SubsystemOf(volume_uuid));
  if (known && *known == subsystem_nqn) return absl::OkStatus();
  if (known) {
    return absl::FailedPreconditionError(Cat("volume ", volume_uuid, " is attached from subsystem ",
                                             *known, ", not ", subsystem_nqn, ": detach it first"));
  }
  return records_.Put(volume_uuid, subsystem_nqn);
}

absl::Status AttachRegistry::Forget(const std::string& volume_uuid) {
  return records_.Remove(volume_uuid);
}

absl::StatusOr<std::optional<std::string>> AttachRegistry::SubsystemOf(
    const std::string& volume_uuid) const {
  return records_.Get(volume_uuid);
}

absl::StatusOr<std::map<std::string, std::string>> AttachRegistry::All() const {
  return records_.All();
}

}  // namespace lbcsi::helper
