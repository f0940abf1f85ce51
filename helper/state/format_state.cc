#include "helper/state/format_state.h"

#include <string_view>

#include "common/status.h"
#include "helper/validate.h"

namespace lbcsi::helper {

absl::StatusOr<FormatState> FormatState::Open(const std::string& state_dir) {
  ASSIGN_OR_RETURN(UuidRecords records, UuidRecords::Open(state_dir, "format"));
  return FormatState(std::move(records));
}

absl::Status FormatState::Record(const std::string& volume_uuid, v1::FsType fs_type) {
  return records_.Put(volume_uuid, std::string(FsTypeName(fs_type)));
}

absl::Status FormatState::Clear(const std::string& volume_uuid) {
  return records_.Remove(volume_uuid);
}

absl::StatusOr<std::optional<v1::FsType>> FormatState::Get(const std::string& volume_uuid) const {
  // Read in place rather than moved out through ASSIGN_OR_RETURN: GCC 12 at -O3
  // reports a false maybe-uninitialized on a moved-out optional<string>.
  absl::StatusOr<std::optional<std::string>> line = records_.Get(volume_uuid);
  if (!line.ok()) return line.status();
  if (!line->has_value()) return std::optional<v1::FsType>();
  const std::string_view text = **line;
  if (text.starts_with("ext4")) return std::optional<v1::FsType>(v1::FS_TYPE_EXT4);
  if (text.starts_with("xfs")) return std::optional<v1::FsType>(v1::FS_TYPE_XFS);
  // Unknown content still means "unfinished": report something non-empty.
  return std::optional<v1::FsType>(v1::FS_TYPE_UNSPECIFIED);
}

}  // namespace lbcsi::helper
