#include "agent/request_checks.h"

#include <climits>

#include "common/status.h"
#include "common/strings.h"
#include "mkfsopts/mkfs_options.h"

namespace lbcsi::agent {

using Mode = csi::v1::VolumeCapability::AccessMode;

absl::Status CheckPath(std::string_view field, std::string_view path, bool required) {
  if (path.empty()) {
    return required ? InvalidField(field, "is required") : absl::OkStatus();
  }
  if (path.front() != '/') return InvalidField(field, "must be an absolute path");
  if (path.size() >= PATH_MAX) return InvalidField(field, "is too long");
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return InvalidField(field, "holds a NUL or control byte");
  }
  if (path.size() > 1 && path.back() == '/') return InvalidField(field, "must not end in '/'");
  for (std::string_view part : Split(path.substr(1), '/')) {
    if (part.empty()) return InvalidField(field, "must not hold an empty component (\"//\")");
    if (part == "." || part == "..") return InvalidField(field, "must not hold . or .. components");
    if (part.size() > NAME_MAX) {
      return InvalidField(field, "holds a component longer than ", NAME_MAX, " bytes");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckKubeletPath(std::string_view field, std::string_view path,
                              const std::optional<kubeletpaths::KubeletLayouts>& layouts,
                              std::initializer_list<kubeletpaths::PathKind> kinds, bool required) {
  RETURN_IF_ERROR(CheckPath(field, path, required));
  if (path.empty()) return absl::OkStatus();
  if (!layouts) {
    return absl::FailedPreconditionError(
        "this agent's --kubelet-root or --driver-name is not usable for kubelet's path layouts");
  }
  return layouts->Classify(field, path, kinds).status();
}

absl::Status CheckVolumeIdSize(std::string_view volume_id) {
  if (volume_id.empty()) return InvalidField("volume_id", "is required");
  if (volume_id.size() > kMaxVolumeIdBytes) {
    return InvalidField("volume_id", "is longer than ", kMaxVolumeIdBytes, " bytes");
  }
  return absl::OkStatus();
}

std::string VolumeKey(std::string_view volume_id) {
  absl::StatusOr<ResourceId> id = ParseResourceId(volume_id);
  if (!id.ok()) return std::string(volume_id);
  absl::StatusOr<std::string> canonical = FormatResourceId(*id);
  return canonical.ok() ? *canonical : std::string(volume_id);
}

absl::StatusOr<CapabilityInfo> CheckCapability(std::string_view field,
                                               const csi::v1::VolumeCapability& cap) {
  CapabilityInfo info;
  switch (cap.access_type_case()) {
    case csi::v1::VolumeCapability::kBlock: info.block = true; break;
    case csi::v1::VolumeCapability::kMount: {
      std::string fs = ToLower(cap.mount().fs_type());
      if (!fs.empty() && fs != "ext4" && fs != "xfs") {
        return InvalidField(Cat(field, ".mount.fs_type"), "\"", Excerpt(fs),
                            "\" is not supported (ext4 or xfs)");
      }
      info.fs_type = fs;
      if (!cap.mount().volume_mount_group().empty()) {
        return InvalidField(Cat(field, ".mount.volume_mount_group"),
                            "is not supported (no VOLUME_MOUNT_GROUP capability)");
      }
      std::vector<std::string> flags(cap.mount().mount_flags().begin(),
                                     cap.mount().mount_flags().end());
      ASSIGN_OR_RETURN(info.flags, ParseMountFlags(flags));
      break;
    }
    default: return InvalidField(Cat(field, ".access_type"), "block or mount is required");
  }
  if (!cap.has_access_mode()) return InvalidField(Cat(field, ".access_mode"), "is required");
  info.access_mode = cap.access_mode().mode();
  switch (cap.access_mode().mode()) {
    case Mode::SINGLE_NODE_WRITER:
    case Mode::SINGLE_NODE_SINGLE_WRITER: break;
    case Mode::SINGLE_NODE_MULTI_WRITER: info.multi_writer = true; break;
    case Mode::SINGLE_NODE_READER_ONLY: info.reader_only = true; break;
    case Mode::MULTI_NODE_READER_ONLY:
      info.reader_only = info.multi_node = info.multi_writer = true;
      break;
    case Mode::MULTI_NODE_SINGLE_WRITER:
    case Mode::MULTI_NODE_MULTI_WRITER: info.multi_node = info.multi_writer = true; break;
    default: return InvalidField(Cat(field, ".access_mode.mode"), "unknown access mode");
  }
  return info;
}

absl::StatusOr<ResourceId> ParseVolumeId(std::string_view volume_id) {
  absl::StatusOr<ResourceId> id = ParseResourceId(volume_id);
  if (!id.ok()) {
    return absl::NotFoundError(
        Cat("volume_id does not name a LightOS volume: ", StdView(id.status().message())));
  }
  return id;
}

bool IsTransient(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kResourceExhausted: return true;
    default: return false;
  }
}

bool KubeletKeepsTrack(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kResourceExhausted: return true;
    default: return false;
  }
}

bool IsPathRefusal(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument ||
         s.code() == absl::StatusCode::kPermissionDenied;
}

absl::StatusOr<lbcsi::helper::v1::MkfsOptions> CheckMkfsOptions(
    const google::protobuf::Map<std::string, std::string>& volume_context,
    const CapabilityInfo& cap) {
  namespace hv1 = lbcsi::helper::v1;
  hv1::MkfsOptions out;
  if (cap.block) return out;
  absl::StatusOr<mkfsopts::MkfsOptions> parsed = mkfsopts::ParseMap(volume_context);
  if (!parsed.ok()) return mkfsopts::Under("volume_context", parsed.status());
  const mkfsopts::Fs fs = cap.fs_type == "xfs" ? mkfsopts::Fs::kXfs : mkfsopts::Fs::kExt4;
  RETURN_IF_ERROR(mkfsopts::Under("volume_context", mkfsopts::Check(*parsed, fs)));
  auto to_proto = [](mkfsopts::Switch s) {
    return s == mkfsopts::Switch::kOn    ? hv1::MKFS_SWITCH_ON
           : s == mkfsopts::Switch::kOff ? hv1::MKFS_SWITCH_OFF
                                         : hv1::MKFS_SWITCH_DEFAULT;
  };
  out.set_block_size(parsed->block_size);
  out.set_inode_size(parsed->inode_size);
  out.set_bytes_per_inode(parsed->bytes_per_inode);
  out.set_cluster_size(parsed->cluster_size);
  out.set_xfs_reflink(to_proto(parsed->xfs_reflink));
  out.set_xfs_crc(to_proto(parsed->xfs_crc));
  return out;
}

}  // namespace lbcsi::agent
