#include "kubeletpaths/kubelet_paths.h"

#include <array>
#include <vector>

#include "common/sha256.h"

#include "common/plugin_dir.h"
#include "common/strings.h"

namespace lbcsi::kubeletpaths {
namespace {

constexpr size_t kMaxPathBytes = 4096;      // PATH_MAX
constexpr size_t kMaxComponentBytes = 255;  // NAME_MAX

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// 1..max of `allowed`, with alphanumeric (per `alnum`) first and last characters.
template <typename Allowed, typename Alnum>
bool IsName(std::string_view s, size_t max, Allowed allowed, Alnum alnum) {
  if (s.empty() || s.size() > max || !alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s) {
    if (!allowed(c)) return false;
  }
  return true;
}

// One component of a layout: a literal, or a name with a rule.
enum class Slot : uint8_t { kLiteral, kDriver, kHash64, kHex40, kName, kUid };

struct Component {
  Slot slot;
  std::string_view literal;  // kLiteral only
};

constexpr Component Lit(std::string_view s) {
  return {Slot::kLiteral, s};
}
constexpr Component kDriverC{Slot::kDriver, {}};
constexpr Component kHash64C{Slot::kHash64, {}};
constexpr Component kHex40C{Slot::kHex40, {}};
constexpr Component kNameC{Slot::kName, {}};
constexpr Component kUidC{Slot::kUid, {}};

struct Layout {
  PathKind kind;
  std::vector<Component> parts;  // below the kubelet root
};

const std::array<Layout, 6>& Layouts() {
  static const std::array<Layout, 6> layouts = {{
      {PathKind::kStageMount,
       {Lit("plugins"), Lit("kubernetes.io"), Lit("csi"), kDriverC, kHash64C, Lit("globalmount")}},
      {PathKind::kStageMountLegacy,
       {Lit("plugins"), Lit("kubernetes.io"), Lit("csi"), Lit("pv"), kNameC, Lit("globalmount")}},
      {PathKind::kPublishMount,
       {Lit("pods"), kUidC, Lit("volumes"), Lit("kubernetes.io~csi"), kNameC, Lit("mount")}},
      {PathKind::kStageBlock,
       {Lit("plugins"), Lit("kubernetes.io"), Lit("csi"), Lit("volumeDevices"), Lit("staging"),
        kNameC}},
      {PathKind::kPublishBlock,
       {Lit("plugins"), Lit("kubernetes.io"), Lit("csi"), Lit("volumeDevices"), Lit("publish"),
        kNameC, kUidC}},
      {PathKind::kEphemeral, {Lit("plugins"), kDriverC, Lit(kEphemeralDirName), kHex40C}},
  }};
  return layouts;
}

std::string Role(const Component& c, std::string_view driver) {
  switch (c.slot) {
    case Slot::kLiteral: return Cat("\"", c.literal, "\"");
    case Slot::kDriver: return Cat("the driver name \"", driver, "\"");
    case Slot::kHash64: return "the sha256 of the volume handle (64 lowercase hex digits)";
    case Slot::kHex40: return "a 40-digit lowercase hex name";
    case Slot::kName: return "a Kubernetes name (1-253 of a-z 0-9 . -, alphanumeric at both ends)";
    case Slot::kUid: return "a pod UID (1-64 of a-z 0-9 -, alphanumeric at both ends)";
  }
  return "?";
}

bool Matches(const Component& c, std::string_view s, std::string_view driver) {
  switch (c.slot) {
    case Slot::kLiteral: return s == c.literal;
    case Slot::kDriver: return s == driver;
    case Slot::kHash64: return IsLowerHex(s, 64);
    case Slot::kHex40: return IsLowerHex(s, 40);
    case Slot::kName: return IsKubernetesName(s);
    case Slot::kUid: return IsPodUid(s);
  }
  return false;
}

absl::Status Refuse(std::string_view field, std::string_view why) {
  return absl::InvalidArgumentError(Cat(field, ": ", why));
}

}  // namespace

std::string_view PathKindName(PathKind kind) {
  switch (kind) {
    case PathKind::kStageMount: return "staging (mount)";
    case PathKind::kStageMountLegacy: return "staging (mount, pre-1.24 pv layout)";
    case PathKind::kPublishMount: return "publish (mount)";
    case PathKind::kStageBlock: return "staging (block)";
    case PathKind::kPublishBlock: return "publish (block)";
    case PathKind::kEphemeral: return "inline ephemeral staging";
  }
  return "?";
}

bool IsMountKind(PathKind kind) {
  return kind != PathKind::kStageBlock && kind != PathKind::kPublishBlock;
}

bool IsStagingKind(PathKind kind) {
  return kind != PathKind::kPublishMount && kind != PathKind::kPublishBlock;
}

bool IsLowerHex(std::string_view s, size_t n) {
  if (s.size() != n) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool IsKubernetesName(std::string_view s) {
  return IsName(
      s, 253, [](char c) { return IsLowerAlnum(c) || c == '-' || c == '.'; }, IsLowerAlnum);
}

bool IsPodUid(std::string_view s) {
  return IsName(
      s, 64, [](char c) { return IsLowerAlnum(c) || c == '-'; }, IsLowerAlnum);
}

bool IsDriverName(std::string_view s) {
  auto alnum = [](char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); };
  return IsName(
      s, 63, [&](char c) { return alnum(c) || c == '-' || c == '.'; }, alnum);
}

absl::StatusOr<KubeletLayouts> KubeletLayouts::Create(std::string kubelet_root,
                                                      std::string driver_name) {
  if (kubelet_root.size() < 2 || kubelet_root.front() != '/' || kubelet_root.back() == '/' ||
      kubelet_root.size() > kMaxPathBytes / 2) {
    return absl::InvalidArgumentError(
        "kubelet root must be an absolute directory other than / without a trailing '/'");
  }
  for (std::string_view c : Split(std::string_view(kubelet_root).substr(1), '/')) {
    if (c.empty() || c == "." || c == ".." || c.size() > kMaxComponentBytes) {
      return absl::InvalidArgumentError(
          "kubelet root must be a clean path (no empty, \".\" or \"..\" components)");
    }
  }
  if (!IsDriverName(driver_name)) {
    return absl::InvalidArgumentError(
        "driver name must be 1-63 of A-Z a-z 0-9 . -, alphanumeric at both ends");
  }
  return KubeletLayouts(std::move(kubelet_root), std::move(driver_name));
}

absl::StatusOr<KubeletPath> KubeletLayouts::Classify(
    std::string_view field, std::string_view path, std::initializer_list<PathKind> allowed) const {
  if (path.empty()) return Refuse(field, "is required");
  if (path.size() > kMaxPathBytes) return Refuse(field, "is longer than 4096 bytes");
  if (path.find('\0') != std::string_view::npos) return Refuse(field, "contains a NUL byte");
  std::string_view rest = path;
  if (!ConsumePrefix(&rest, root_) || !ConsumePrefix(&rest, "/")) {
    return Refuse(field, Cat("must lie below the kubelet root ", root_));
  }
  const std::vector<std::string_view> parts = Split(rest, '/');
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string_view c = parts[i];
    const std::string where = Cat("component ", i + 1, " below the kubelet root");
    if (c.empty()) {
      return Refuse(field, i + 1 == parts.size() ? "must not end with '/'"
                                                 : Cat(where, " is empty (\"//\")"));
    }
    if (c == "." || c == "..") return Refuse(field, Cat(where, " is \".\" or \"..\""));
    if (c.size() > kMaxComponentBytes)
      return Refuse(field, Cat(where, " is longer than 255 bytes"));
  }

  // The allowed layout that matches the longest prefix decides the message.
  const Layout* best = nullptr;
  size_t best_matched = 0;
  for (const Layout& layout : Layouts()) {
    bool is_allowed = false;
    for (PathKind k : allowed) is_allowed |= k == layout.kind;
    if (!is_allowed) continue;
    size_t matched = 0;
    while (matched < parts.size() && matched < layout.parts.size() &&
           Matches(layout.parts[matched], parts[matched], driver_)) {
      ++matched;
    }
    if (matched == parts.size() && matched == layout.parts.size()) {
      KubeletPath out{layout.kind, std::string(path), {}, {}};
      for (size_t i = 0; i < parts.size(); ++i) {
        const Slot slot = layout.parts[i].slot;
        if (slot == Slot::kUid) out.pod_uid = std::string(parts[i]);
        if (slot == Slot::kName || slot == Slot::kHash64 || slot == Slot::kHex40) {
          out.volume_name = std::string(parts[i]);
        }
      }
      return out;
    }
    if (best == nullptr || matched > best_matched) {
      best = &layout;
      best_matched = matched;
    }
  }
  if (best == nullptr) return Refuse(field, "no path layout is allowed here");
  const std::string kind = Cat("a kubelet ", PathKindName(best->kind), " path of this driver");
  if (best_matched == best->parts.size()) {
    return Refuse(field, Cat("has more components than ", kind, " (", best->parts.size(),
                             " below the kubelet root)"));
  }
  const std::string want = Role(best->parts[best_matched], driver_);
  if (best_matched == parts.size()) {
    return Refuse(field, Cat("ends too early for ", kind, ": component ", best_matched + 1,
                             " below the kubelet root must be ", want));
  }
  return Refuse(field, Cat("component ", best_matched + 1, " below the kubelet root must be ", want,
                           " (closest layout: ", kind, ")"));
}

std::string KubeletLayouts::StageMountPath(std::string_view hash) const {
  return Cat(root_, "/plugins/kubernetes.io/csi/", driver_, "/", hash, "/globalmount");
}
std::string VolumeHandleSha256(std::string_view volume_handle) {
  return Sha256Hex(volume_handle);
}

std::string KubeletLayouts::StageMountPathForHandle(std::string_view volume_handle) const {
  return StageMountPath(VolumeHandleSha256(volume_handle));
}
std::string KubeletLayouts::StageMountLegacyPath(std::string_view pv) const {
  return Cat(root_, "/plugins/kubernetes.io/csi/pv/", pv, "/globalmount");
}
std::string KubeletLayouts::PublishMountPath(std::string_view uid, std::string_view name) const {
  return Cat(root_, "/pods/", uid, "/volumes/kubernetes.io~csi/", name, "/mount");
}
std::string KubeletLayouts::StageBlockPath(std::string_view pv) const {
  return Cat(root_, "/plugins/kubernetes.io/csi/volumeDevices/staging/", pv);
}
std::string KubeletLayouts::PublishBlockPath(std::string_view pv, std::string_view uid) const {
  return Cat(root_, "/plugins/kubernetes.io/csi/volumeDevices/publish/", pv, "/", uid);
}
std::string KubeletLayouts::EphemeralPath(std::string_view hex40) const {
  return Cat(root_, "/plugins/", driver_, "/", kEphemeralDirName, "/", hex40);
}

}  // namespace lbcsi::kubeletpaths
