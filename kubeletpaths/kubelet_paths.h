#pragma once
// The project's one definition of where kubelet asks a CSI driver to stage and publish volumes.
//
// kubelet derives every path it hands to NodeStageVolume / NodePublishVolume from its root
// directory (--root-dir), the driver name and a few names of its own (pkg/volume/csi in
// kubernetes: csi_attacher.go, csi_mounter.go, csi_block.go). The agent checks requests against
// these layouts before acting and the helper checks them again as the privileged backstop, so
// both use this library. It is pure string work: it never touches the filesystem (opening a
// path safely is the caller's job, see helper/paths/path_guard.h).
//
//   kStageMount        <root>/plugins/kubernetes.io/csi/<driver>/<sha256 of the volume
//   handle>/globalmount kStageMountLegacy  <root>/plugins/kubernetes.io/csi/pv/<pv
//   name>/globalmount      (kubelet < 1.24) kPublishMount      <root>/pods/<pod
//   uid>/volumes/kubernetes.io~csi/<volume name>/mount kStageBlock
//   <root>/plugins/kubernetes.io/csi/volumeDevices/staging/<pv name> kPublishBlock
//   <root>/plugins/kubernetes.io/csi/volumeDevices/publish/<pv name>/<pod uid> kEphemeral
//   <root>/plugins/<driver>/ephemeral/<40 hex>     (the driver's own mount
//                      points of inline volumes, see common/plugin_dir.h)
//
// Example:
//   ASSIGN_OR_RETURN(auto layouts, KubeletLayouts::Create("/var/lib/kubelet",
//   "csi.lightbitslabs.com")); ASSIGN_OR_RETURN(KubeletPath p, layouts.Classify(req.target_path(),
//   kPublishKinds));
//
// Every component must be non-empty, not "." or "..", within its length limit and charset; the
// path has no trailing '/', no "//". A refusal is INVALID_ARGUMENT naming the component (by
// position and role) that is wrong, never echoing the offending text.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

namespace lbcsi::kubeletpaths {

enum class PathKind : uint8_t {
  kStageMount,
  kStageMountLegacy,
  kPublishMount,
  kStageBlock,
  kPublishBlock,
  kEphemeral,
};

// "staging (mount)", ... for messages.
std::string_view PathKindName(PathKind kind);
// Whether a volume at this kind of path is a filesystem mount (else a block device file).
bool IsMountKind(PathKind kind);
// Whether a path of this kind is a staging path (else a per-pod publish path).
bool IsStagingKind(PathKind kind);

// Sets of kinds a request field may name.
inline constexpr std::initializer_list<PathKind> kStagingKinds = {
    PathKind::kStageMount, PathKind::kStageMountLegacy, PathKind::kStageBlock,
    PathKind::kEphemeral};
inline constexpr std::initializer_list<PathKind> kMountStagingKinds = {
    PathKind::kStageMount, PathKind::kStageMountLegacy, PathKind::kEphemeral};
inline constexpr std::initializer_list<PathKind> kPublishKinds = {PathKind::kPublishMount,
                                                                  PathKind::kPublishBlock};
inline constexpr std::initializer_list<PathKind> kAllKinds = {
    PathKind::kStageMount, PathKind::kStageMountLegacy, PathKind::kPublishMount,
    PathKind::kStageBlock, PathKind::kPublishBlock,     PathKind::kEphemeral};

// A path that matched a layout, with the names kubelet put into it.
struct KubeletPath {
  PathKind kind;
  std::string path;
  // kStageMount: the 64-hex hash; kStageMountLegacy/kStageBlock/kPublishBlock: the PV name;
  // kPublishMount: the volume name; kEphemeral: the 40-hex name.
  std::string volume_name;
  std::string pod_uid;  // kPublishMount and kPublishBlock only
};

class KubeletLayouts {
 public:
  // The kubelet root must be absolute and clean (no trailing '/', no "." or ".." or empty
  // components); the driver name must be a CSI driver name (IsDriverName). INVALID_ARGUMENT
  // otherwise: both come from configuration.
  static absl::StatusOr<KubeletLayouts> Create(std::string kubelet_root, std::string driver_name);

  // Matches `path` against the layouts in `allowed`. `field` names the request field in
  // messages ("staging_path").
  absl::StatusOr<KubeletPath> Classify(std::string_view field, std::string_view path,
                                       std::initializer_list<PathKind> allowed = kAllKinds) const;

  // Builders (tests, the agent's own paths). Arguments must already satisfy the component rules;
  // Classify of the result gives them back.
  std::string StageMountPath(std::string_view volume_handle_sha256_hex) const;
  // kubelet's staging path for a volume handle (CSI volume_id): StageMountPath of its sha256.
  std::string StageMountPathForHandle(std::string_view volume_handle) const;
  std::string StageMountLegacyPath(std::string_view pv_name) const;
  std::string PublishMountPath(std::string_view pod_uid, std::string_view volume_name) const;
  std::string StageBlockPath(std::string_view pv_name) const;
  std::string PublishBlockPath(std::string_view pv_name, std::string_view pod_uid) const;
  std::string EphemeralPath(std::string_view name_hex40) const;

  const std::string& kubelet_root() const { return root_; }
  const std::string& driver_name() const { return driver_; }

 private:
  KubeletLayouts(std::string root, std::string driver)
      : root_(std::move(root)), driver_(std::move(driver)) {}
  std::string root_;
  std::string driver_;
};

// Lower-case hex sha256 of a volume handle, as kubelet names the staging directory after it.
std::string VolumeHandleSha256(std::string_view volume_handle);

// Component rules, exposed for callers that build names (and their tests).
// A Kubernetes object name as kubelet uses it in a path (PV name, pod volume name): 1..253 of
// [a-z0-9.-], alphanumeric at both ends.
bool IsKubernetesName(std::string_view s);
// A pod UID: 1..64 of [a-z0-9-], alphanumeric at both ends (UUIDs; static pods' 32-hex hashes).
bool IsPodUid(std::string_view s);
// Exactly `n` lowercase hex digits.
bool IsLowerHex(std::string_view s, size_t n);
// A CSI driver name (CSI spec): 1..63 of [A-Za-z0-9.-], alphanumeric at both ends.
bool IsDriverName(std::string_view s);

}  // namespace lbcsi::kubeletpaths
