#pragma once
// Turns CSI mount_flags (free-form strings from the CO) into the helper's typed
// allow-list. Anything not on the list is INVALID_ARGUMENT naming the flag;
// the SELinux label kubelet passes as context="..." is pulled out separately.

#include <string>
#include <string_view>
#include <vector>

#include <absl/status/statusor.h>

#include "lbcsi/helper/v1/helper.pb.h"

namespace lbcsi::agent {

struct ParsedMountFlags {
  std::vector<lbcsi::helper::v1::MountOption> options;  // de-duplicated, sorted
  std::string selinux_context;                          // unquoted; empty: none
  bool read_only = false;                               // "ro" was given
};

// Each flag may itself hold comma-separated options ("noatime,nodev"); commas
// inside double quotes belong to the value (SELinux labels contain commas).
absl::StatusOr<ParsedMountFlags> ParseMountFlags(const std::vector<std::string>& flags);

// SELinux labels: user:role:type:level, printable, no quotes, bounded length.
bool IsPlausibleSelinuxLabel(std::string_view label);

}  // namespace lbcsi::agent
