#pragma once
// What may stand where the helper is about to mount or bind: nothing, an empty directory or an
// empty regular file. Anything else (data, a device node, a socket, a symlink) belongs to
// someone else, and mounting over it would hide it from its owner or hand its place to our
// volume, so it is refused.

#include <absl/status/statusor.h>

#include "helper/paths/path_guard.h"

namespace lbcsi::helper {

enum class TargetState { kAbsent, kEmptyDirectory, kEmptyFile };

// Looks at parent.leaf without following a symlink and without reading through a mount (call it
// only when MountAt found no mount there). FAILED_PRECONDITION, naming `field`, for anything
// that is not absent, an empty directory or an empty regular file.
absl::StatusOr<TargetState> InspectNewTarget(std::string_view field,
                                             const PathGuard::Parent& target);

}  // namespace lbcsi::helper
