#pragma once
// /proc/self/mountinfo, parsed. The helper lives in the host mount namespace,
// so this is the node's mount table.

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <absl/status/statusor.h>

namespace lbcsi::helper {

struct MountEntry {
  uint64_t id = 0;
  uint64_t parent_id = 0;
  dev_t dev = 0;            // st_dev of the filesystem (major:minor)
  std::string root;         // path inside the filesystem that is mounted ("/" or a bind subdir)
  std::string mount_point;  // unescaped
  std::string options;      // per-mount options (ro/rw, nosuid, ...)
  std::string fs_type;
  std::string source;         // unescaped
  std::string super_options;  // per-superblock options

  bool read_only() const;                      // per-mount "ro"
  bool super_read_only() const;                // the filesystem itself is ro (e.g. after errors)
  bool HasOption(std::string_view opt) const;  // in either option list
};

absl::StatusOr<std::vector<MountEntry>> ParseMountInfo(std::string_view text);
absl::StatusOr<std::vector<MountEntry>> ReadMountInfo();

std::optional<MountEntry> FindById(const std::vector<MountEntry>& entries, uint64_t id);

}  // namespace lbcsi::helper
