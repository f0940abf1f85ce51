#pragma once
// Validation of what kubelet sends, shared by the node RPCs. Every error names
// the request field; nothing here echoes secrets or mount-flag values.

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <absl/status/statusor.h>

#include "agent/mount_flags.h"
#include "csi/v1/csi.pb.h"
#include "kubeletpaths/kubelet_paths.h"
#include "lbcsi/helper/v1/helper.pb.h"
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

// Absolute and in one spelling only: no "." or ".." components, no empty
// component ("//"), no trailing '/', no NUL or control byte, components of at
// most NAME_MAX bytes, at most PATH_MAX in all.
absl::Status CheckPath(std::string_view field, std::string_view path, bool required = true);
// CheckPath, and one of kubelet's layouts of this driver for the field
// (kubeletpaths/kubelet_paths.h, the definition the helper checks again):
// anything else is refused before the first attach or LightOS call. Without
// `layouts` (a configuration the library refused) every path is refused.
absl::Status CheckKubeletPath(std::string_view field, std::string_view path,
                              const std::optional<kubeletpaths::KubeletLayouts>& layouts,
                              std::initializer_list<kubeletpaths::PathKind> kinds,
                              bool required = true);
// The kinds each request field may name. Kubelet never hands out the driver's
// own inline mount points (kEphemeral), so no request may name one.
inline constexpr std::initializer_list<kubeletpaths::PathKind> kRequestStagingKinds = {
    kubeletpaths::PathKind::kStageMount, kubeletpaths::PathKind::kStageMountLegacy,
    kubeletpaths::PathKind::kStageBlock};
inline constexpr std::initializer_list<kubeletpaths::PathKind> kRequestVolumePathKinds = {
    kubeletpaths::PathKind::kStageMount, kubeletpaths::PathKind::kStageMountLegacy,
    kubeletpaths::PathKind::kStageBlock, kubeletpaths::PathKind::kPublishMount,
    kubeletpaths::PathKind::kPublishBlock};

// Volume ids are keys of locks and state records; ours are a few hundred bytes.
inline constexpr size_t kMaxVolumeIdBytes = 4096;
// INVALID_ARGUMENT when empty or longer than kMaxVolumeIdBytes.
absl::Status CheckVolumeIdSize(std::string_view volume_id);

// The key a volume's lock and record use: the canonical spelling of an id of
// ours (one volume, one key, however the id is spelled), else the id as given.
std::string VolumeKey(std::string_view volume_id);

// INVALID_ARGUMENT for a missing access type, an unknown access mode, an
// unsupported fs type or a mount flag outside the allow-list.
absl::StatusOr<CapabilityInfo> CheckCapability(std::string_view field,
                                               const csi::v1::VolumeCapability& cap);

// The volume context's mkfs options (set by the controller from the
// StorageClass, or written by hand in a static PV), checked for the filesystem
// `cap` asks for (ext4 when it names none) before anything is attached.
// Empty for block volumes, which are never formatted. INVALID_ARGUMENT.
absl::StatusOr<lbcsi::helper::v1::MkfsOptions> CheckMkfsOptions(
    const google::protobuf::Map<std::string, std::string>& volume_context,
    const CapabilityInfo& cap);

// A volume id of ours; NOT_FOUND when it cannot name one of our volumes.
absl::StatusOr<ResourceId> ParseVolumeId(std::string_view volume_id);

// True for codes that may pass on a retry (the CO's five "still in progress"
// codes plus INTERNAL and UNKNOWN, which may be a passing I/O failure): used
// where retrying later is the agent's own choice (reconcile, undo).
bool IsTransient(const absl::Status& status);

// True for the codes after which kubelet counts a stage or publish as possibly
// still in progress and so will call NodeUnstage/NodeUnpublish later
// (CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED).
// After any other code kubelet assumes nothing was done and never cleans up:
// the agent must then take back what the failed call made (docs/design.md,
// "Failure classes").
bool KubeletKeepsTrack(const absl::Status& status);

// True when the helper refused a path outright (INVALID_ARGUMENT or
// PERMISSION_DENIED): it never mounted anything there, so an undo may go on.
bool IsPathRefusal(const absl::Status& status);

}  // namespace lbcsi::agent
