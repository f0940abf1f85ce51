#include "agent/request_checks.h"

#include <climits>

#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::agent {

using Mode = csi::v1::VolumeCapability::AccessMode;

absl::Status CheckPath(std::string_view field, std::string_view path, bool required) {
  if (path.empty()) {
    return required ? InvalidField(field, "is required") : absl::OkStatus();
  }
  if (path.front() != '/') return InvalidField(field, "must be an absolute path");
  if (path.size() >= PATH_MAX) return InvalidField(field, "is too long");
  if (path.find('\0') != std::string_view::npos) return InvalidField(field, "holds a NUL byte");
  for (std::string_view part : Split(path.substr(1), '/')) {
    if (part == "." || part == "..") return InvalidField(field, "must not hold . or .. components");
  }
  return absl::OkStatus();
}

absl::StatusOr<CapabilityInfo> CheckCapability(std::string_view field,
                                               const csi::v1::VolumeCapability& cap) {
  CapabilityInfo info;
  switch (cap.access_type_case()) {
    case csi::v1::VolumeCapability::kBlock: info.block = true; break;
    case csi::v1::VolumeCapability::kMount: {
      std::string fs = ToLower(cap.mount().fs_type());
      if (!fs.empty() && fs != "ext4" && fs != "xfs") {
        return InvalidField(Cat(field, ".mount.fs_type"), "\"", fs,
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

}  // namespace lbcsi::agent
