#include "controller/validation.h"

#include "common/sha256.h"
#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::controller {

using Mode = csi::v1::VolumeCapability::AccessMode;

absl::StatusOr<SizeRange> ReadCapacityRange(const csi::v1::CapacityRange* range,
                                            std::string_view field) {
  SizeRange out;
  if (range == nullptr) return out;
  if (range->required_bytes() < 0)
    return InvalidField(Cat(field, ".required_bytes"), "must not be negative");
  if (range->limit_bytes() < 0)
    return InvalidField(Cat(field, ".limit_bytes"), "must not be negative");
  out.required = static_cast<uint64_t>(range->required_bytes());
  out.limit = static_cast<uint64_t>(range->limit_bytes());
  if (out.limit != 0 && out.required > out.limit) {
    return InvalidField(field, "required_bytes ", out.required, " is larger than limit_bytes ",
                        out.limit);
  }
  return out;
}

absl::StatusOr<uint64_t> ChooseSize(const SizeRange& range, std::string_view field) {
  uint64_t want = range.required < kMinVolumeBytes ? kMinVolumeBytes : range.required;
  // required_bytes <= INT64_MAX, so this cannot overflow uint64.
  uint64_t size = (want + kGiB - 1) / kGiB * kGiB;
  // Rounding up may pass INT64_MAX, which CSI's int64 sizes cannot carry.
  if (size > static_cast<uint64_t>(INT64_MAX)) {
    return absl::OutOfRangeError(Cat(field, ".required_bytes: ", range.required,
                                     " rounds up past the largest size CSI can report"));
  }
  if (range.limit != 0 && size > range.limit) {
    return absl::OutOfRangeError(Cat(field, ".limit_bytes: ", range.limit,
                                     " is below the smallest size this driver can provide, ", size,
                                     " bytes (volumes are at least 1 GiB, in whole GiB)"));
  }
  return size;
}

bool Capability::ReadOnlyMode() const {
  return mode == Mode::SINGLE_NODE_READER_ONLY || mode == Mode::MULTI_NODE_READER_ONLY;
}

bool Capability::MultiNode() const {
  return mode == Mode::MULTI_NODE_READER_ONLY || mode == Mode::MULTI_NODE_SINGLE_WRITER ||
         mode == Mode::MULTI_NODE_MULTI_WRITER;
}

absl::StatusOr<Capability> ReadCapability(const csi::v1::VolumeCapability& cap,
                                          std::string_view field) {
  Capability out;
  switch (cap.access_type_case()) {
    case csi::v1::VolumeCapability::kBlock: out.type = AccessType::kBlock; break;
    case csi::v1::VolumeCapability::kMount:
      out.type = AccessType::kMount;
      out.fs_type = cap.mount().fs_type();
      break;
    default: return InvalidField(field, "access_type (block or mount) is required");
  }
  if (!cap.has_access_mode()) return InvalidField(Cat(field, ".access_mode"), "is required");
  out.mode = cap.access_mode().mode();
  if (out.mode == Mode::UNKNOWN)
    return InvalidField(Cat(field, ".access_mode.mode"), "is required");
  return out;
}

bool IsAllowedMountFlag(std::string_view flag) {
  static constexpr std::string_view kAllowed[] = {"noatime", "nodiratime", "discard", "nouuid",
                                                  "ro",      "nosuid",     "nodev",   "noexec"};
  for (std::string_view a : kAllowed) {
    if (flag == a) return true;
  }
  return false;
}

absl::Status CheckSupported(const csi::v1::VolumeCapability& cap, const Capability& parsed,
                            std::string_view field) {
  switch (parsed.mode) {
    case Mode::SINGLE_NODE_WRITER:
    case Mode::SINGLE_NODE_SINGLE_WRITER:
    case Mode::SINGLE_NODE_MULTI_WRITER:
    case Mode::SINGLE_NODE_READER_ONLY:
    case Mode::MULTI_NODE_READER_ONLY: break;
    case Mode::MULTI_NODE_MULTI_WRITER:
      if (parsed.type != AccessType::kBlock) {
        return InvalidField(Cat(field, ".access_mode.mode"),
                            "MULTI_NODE_MULTI_WRITER is supported for block volumes only (ext4 and "
                            "xfs are not cluster filesystems)");
      }
      break;
    default:
      return InvalidField(Cat(field, ".access_mode.mode"), Mode::Mode_Name(parsed.mode),
                          " is not supported");
  }
  if (parsed.type == AccessType::kMount) {
    if (!parsed.fs_type.empty() && parsed.fs_type != "ext4" && parsed.fs_type != "xfs") {
      return InvalidField(Cat(field, ".mount.fs_type"), "\"", Excerpt(parsed.fs_type),
                          "\" is not supported (ext4 or xfs)");
    }
    for (int i = 0; i < cap.mount().mount_flags_size(); ++i) {
      const std::string& flag = cap.mount().mount_flags(i);
      if (!IsAllowedMountFlag(flag)) {
        // Name the option, never its value: mount flags may carry secrets.
        return InvalidField(Cat(field, ".mount.mount_flags[", i, "]"), "\"",
                            Excerpt(std::string_view(flag).substr(0, flag.find('='))),
                            "\" is not an allowed mount option (allowed: noatime, nodiratime, "
                            "discard, nouuid, ro, nosuid, nodev, noexec)");
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckCapabilities(
    const google::protobuf::RepeatedPtrField<csi::v1::VolumeCapability>& caps,
    std::string_view field) {
  if (caps.empty()) return InvalidField(field, "at least one volume capability is required");
  for (int i = 0; i < caps.size(); ++i) {
    std::string f = Cat(field, "[", i, "]");
    ASSIGN_OR_RETURN(Capability c, ReadCapability(caps[i], f));
    RETURN_IF_ERROR(CheckSupported(caps[i], c, f));
  }
  return absl::OkStatus();
}

absl::Status CheckCsiName(std::string_view name, std::string_view field) {
  if (name.empty()) return InvalidField(field, "is required");
  if (name.size() > 128) return InvalidField(field, "is longer than 128 bytes");
  for (unsigned char c : name) {
    bool banned = c <= 0x08 || c == 0x0b || c == 0x0c || (c >= 0x0e && c <= 0x1f) || c == 0x7f;
    if (banned) return InvalidField(field, "contains a control character");
  }
  // U+0080..U+009F in UTF-8 are C2 80..C2 9F.
  for (size_t i = 0; i + 1 < name.size(); ++i) {
    auto a = static_cast<unsigned char>(name[i]), b = static_cast<unsigned char>(name[i + 1]);
    if (a == 0xc2 && b >= 0x80 && b <= 0x9f)
      return InvalidField(field, "contains a control character");
  }
  return absl::OkStatus();
}

absl::Status CheckRequired(std::string_view value, std::string_view field) {
  if (value.empty()) return InvalidField(field, "is required");
  return absl::OkStatus();
}

namespace {
bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}
}  // namespace

bool IsValidLightosName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

std::string LightosNameFor(std::string_view csi_name) {
  if (IsValidLightosName(csi_name)) return std::string(csi_name);
  std::string prefix;
  for (char c : csi_name.substr(0, 64)) prefix += IsNameChar(c) ? c : '-';
  return Cat(prefix, "-", Sha256Hex(csi_name).substr(0, 16));
}

std::string CloneSnapshotName(std::string_view volume_name) {
  std::string name = Cat("lbcsi-clone-", volume_name);
  if (name.size() <= 253) return name;
  return Cat("lbcsi-clone-", Sha256Hex(volume_name));
}

}  // namespace lbcsi::controller
