#pragma once
// Validation of what kubelet sends, shared by the node RPCs. Every error names
// the request field; nothing here echoes secrets or mount-flag values.

#include <string>
#include <string_view>

#include <absl/status/statusor.h>

#include "agent/mount_flags.h"
#include "csi/v1/csi.pb.h"
#include "volumeid/resource_id.h"

namespace lbcsi::agent {

// What a VolumeCapability asks for, checked and normalised.
struct CapabilityInfo {
  bool block = false;
  std::string fs_type;  // "", "ext4" or "xfs" (mount only)
  int access_mode = 0;
  bool reader_only = false;   // *_READER_ONLY
  bool multi_node = false;    // MULTI_NODE_*
  bool multi_writer = false;  // may be published at several targets on this node
  ParsedMountFlags flags;
};

// Absolute, no "." or ".." components, no NUL, at most PATH_MAX.
absl::Status CheckPath(std::string_view field, std::string_view path, bool required = true);

// INVALID_ARGUMENT for a missing access type, an unknown access mode, an
// unsupported fs type or a mount flag outside the allow-list.
absl::StatusOr<CapabilityInfo> CheckCapability(std::string_view field,
                                               const csi::v1::VolumeCapability& cap);

// A volume id of ours; NOT_FOUND when it cannot name one of our volumes.
absl::StatusOr<ResourceId> ParseVolumeId(std::string_view volume_id);

// True for codes after which the CO retries or calls the negation: keep state.
bool IsTransient(const absl::Status& status);

}  // namespace lbcsi::agent
