#include "helper/paths/mounter.h"

#include <fcntl.h>
#include <libmount/libmount.h>
#include <selinux/selinux.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::helper {
namespace {

constexpr int kMaxStacked = 16;  // bound the unmount loop

struct ContextDeleter {
  void operator()(libmnt_context* c) const { mnt_free_context(c); }
};

absl::Status MountErrno(std::string_view what, std::string_view path, int err) {
  std::string msg = Cat(what, " ", path, ": ", std::strerror(err));
  switch (err) {
    case EBUSY: return absl::FailedPreconditionError(msg);
    case EINVAL:
    case ENOTDIR:
    case ENOTBLK: return absl::FailedPreconditionError(msg);
    case EROFS:
    case EACCES:
    case EPERM: return absl::PermissionDeniedError(msg);
    case EIO: return absl::DataLossError(msg);
    default: return absl::InternalError(msg);
  }
}

}  // namespace

absl::StatusOr<std::optional<MountEntry>> MountAt(const PathGuard::Parent& parent) {
  ASSIGN_OR_RETURN(UniqueFd leaf, PathGuard::OpenLeaf(parent));
  ASSIGN_OR_RETURN(uint64_t leaf_id, MountIdOf(leaf.get()));
  ASSIGN_OR_RETURN(uint64_t parent_id, MountIdOf(parent.fd.get()));
  if (leaf_id == parent_id) return std::optional<MountEntry>();
  ASSIGN_OR_RETURN(std::vector<MountEntry> entries, ReadMountInfo());
  std::optional<MountEntry> e = FindById(entries, leaf_id);
  if (!e) {
    return absl::UnavailableError(Cat(parent.path, ": mount ", leaf_id, " vanished; retry"));
  }
  if (e->mount_point != parent.path) {
    // The fd says one thing, the table another: someone moved things around.
    return absl::FailedPreconditionError(Cat(parent.path, ": mount ", leaf_id, " is listed at ",
                                             e->mount_point, ", not at the requested path"));
  }
  return e;
}

absl::Status MountFilesystem(const std::string& device_path, const UniqueFd& target_fd,
                             std::string_view fs_type, std::string_view options) {
  std::unique_ptr<libmnt_context, ContextDeleter> cxt(mnt_new_context());
  if (!cxt) return absl::ResourceExhaustedError("mnt_new_context failed");
  std::string target = target_fd.ProcPath();
  std::string type(fs_type);
  std::string opts(options);
  if (mnt_context_disable_canonicalize(cxt.get(), 1) != 0 ||
      mnt_context_disable_helpers(cxt.get(), 1) != 0 ||
      mnt_context_disable_mtab(cxt.get(), 1) != 0 ||
      mnt_context_set_source(cxt.get(), device_path.c_str()) != 0 ||
      mnt_context_set_target(cxt.get(), target.c_str()) != 0 ||
      mnt_context_set_fstype(cxt.get(), type.c_str()) != 0 ||
      (!opts.empty() && mnt_context_set_options(cxt.get(), opts.c_str()) != 0)) {
    return absl::InternalError("cannot set up the libmount context");
  }
  int rc = mnt_context_mount(cxt.get());
  if (rc == 0 && mnt_context_get_status(cxt.get()) == 1) return absl::OkStatus();
  int err = mnt_context_syscall_called(cxt.get()) ? mnt_context_get_syscall_errno(cxt.get()) : 0;
  char buf[BUFSIZ] = {0};
  mnt_context_get_excode(cxt.get(), rc, buf, sizeof(buf));
  std::string msg =
      Cat("mount ", device_path, " (", fs_type, ", ", opts, "): ", buf[0] ? buf : "libmount failed",
          err ? Cat(" (", std::strerror(err), ")") : "");
  if (err == EBUSY || err == EINVAL || err == ENOTBLK || err == ENODEV) {
    return absl::FailedPreconditionError(msg);
  }
  if (err == EIO || err == EUCLEAN) return absl::DataLossError(msg);
  return absl::InternalError(msg);
}

bool SelinuxLabelsMounts() {
  return is_selinux_enabled() == 1;
}

absl::Status BindMount(const UniqueFd& source_fd, const PathGuard::Parent& target,
                       unsigned long flags) {
  ASSIGN_OR_RETURN(UniqueFd target_fd, PathGuard::OpenLeaf(target));
  ASSIGN_OR_RETURN(uint64_t before, MountIdOf(target_fd.get()));
  if (mount(source_fd.ProcPath().c_str(), target_fd.ProcPath().c_str(), nullptr, MS_BIND,
            nullptr) != 0) {
    return MountErrno("bind onto", target.path, errno);
  }
  if (flags == 0) return absl::OkStatus();
  // Reopen: the old fd still names what is under the new mount.
  absl::StatusOr<UniqueFd> top = PathGuard::OpenLeaf(target);
  absl::Status st = top.status();
  if (st.ok()) {
    absl::StatusOr<uint64_t> id = MountIdOf(top->get());
    if (!id.ok() || *id == before) {
      st = absl::InternalError(Cat(target.path, ": the new bind mount is not on top"));
    } else if (mount(nullptr, top->ProcPath().c_str(), nullptr, MS_REMOUNT | MS_BIND | flags,
                     nullptr) != 0) {
      st = MountErrno("remount", target.path, errno);
    }
  }
  if (!st.ok()) {
    // Never leave a writable bind behind a failed read-only request.
    std::string path = Cat(target.fd.ProcPath(), "/", target.leaf);
    umount2(path.c_str(), UMOUNT_NOFOLLOW | MNT_DETACH);
  }
  return st;
}

absl::StatusOr<int> UnmountAll(const PathGuard::Parent& parent,
                               const std::function<bool(const MountEntry&)>& ours) {
  std::string path = Cat(parent.fd.ProcPath(), "/", parent.leaf);
  for (int n = 0; n < kMaxStacked; ++n) {
    absl::StatusOr<std::optional<MountEntry>> top = MountAt(parent);
    if (absl::IsNotFound(top.status())) return n;
    RETURN_IF_ERROR(top.status());
    if (!top->has_value()) return n;
    if (!ours(**top)) {
      return absl::FailedPreconditionError(Cat(parent.path, " has a mount of ", (*top)->fs_type,
                                               " that is not one of this "
                                               "helper's volumes; refusing to unmount it"));
    }
    uint64_t id = (*top)->id;
    if (umount2(path.c_str(), UMOUNT_NOFOLLOW) != 0) {
      int err = errno;
      if (err == EINVAL) continue;  // raced with another unmount: look again
      return MountErrno("unmount", parent.path, err);
    }
    ASSIGN_OR_RETURN(std::vector<MountEntry> entries, ReadMountInfo());
    if (FindById(entries, id)) {
      return absl::InternalError(Cat("unmount ", parent.path, ": mount ", id, " is still there"));
    }
  }
  return absl::FailedPreconditionError(
      Cat(parent.path, ": more than ", kMaxStacked, " mounts stacked; refusing to continue"));
}

}  // namespace lbcsi::helper
