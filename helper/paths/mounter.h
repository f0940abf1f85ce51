#pragma once
// Mount, bind and unmount on fds opened by PathGuard.
//
// Filesystems are mounted with libmount (no canonicalization, no /sbin/mount.*
// helpers, no utab/mtab writes) onto "/proc/self/fd/N". Bind mounts use mount(2)
// directly (libmount adds nothing there). Unmount has no fd form: it goes
// through "/proc/self/fd/<parent>/<leaf>" with UMOUNT_NOFOLLOW, after the mount id
// seen on the leaf was checked in mountinfo, and the id is checked again after.

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include "helper/paths/mountinfo.h"
#include "helper/paths/path_guard.h"

namespace lbcsi::helper {

// The mount whose root is at parent/leaf (the top one if several are stacked),
// or nullopt when the leaf is not a mount point. NOT_FOUND if the leaf is missing.
absl::StatusOr<std::optional<MountEntry>> MountAt(const PathGuard::Parent& parent);

// Mounts block device `device_path` (a /dev node the helper derived itself)
// onto the directory `target_fd`.
absl::Status MountFilesystem(const std::string& device_path, const UniqueFd& target_fd,
                             std::string_view fs_type, std::string_view options);

// Whether a context= mount option can reach the kernel here. libmount removes
// the SELinux options when libselinux reports SELinux off (selinuxfs not
// mounted, or no /etc/selinux/config); the helper applies the same rule itself,
// so it neither passes a label that cannot apply nor expects one on a repeat.
bool SelinuxLabelsMounts();

// Binds `source_fd` (a directory that is a mount root, or a block device node)
// onto parent/leaf, then applies `flags` (MS_RDONLY, MS_NOSUID, ...) with a
// bind remount when any is set.
absl::Status BindMount(const UniqueFd& source_fd, const PathGuard::Parent& target,
                       unsigned long flags);

// Unmounts everything stacked on parent/leaf, top first, as long as `ours` accepts the top
// mount; a mount it refuses stops the loop with FAILED_PRECONDITION and stays. Returns how many
// mounts went away (0: nothing was mounted, which is success). Never stats through the mount,
// so it works when the device returns EIO.
absl::StatusOr<int> UnmountAll(const PathGuard::Parent& parent,
                               const std::function<bool(const MountEntry&)>& ours);

}  // namespace lbcsi::helper
