#include "helper/paths/path_guard.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "common/status.h"
#include "common/strings.h"
#include "helper/validate.h"

namespace lbcsi::helper {
namespace {

absl::Status PathError(std::string_view field, std::string_view path, int err) {
  switch (err) {
    case ENOENT: return absl::NotFoundError(Cat(field, ": ", path, ": a component does not exist"));
    case ELOOP:
      return absl::FailedPreconditionError(
          Cat(field, ": ", path, ": a component is a symlink; symlinks are refused"));
    case EXDEV:
      return absl::FailedPreconditionError(
          Cat(field, ": ", path, ": a parent component is a mount point; refused"));
    case ENOTDIR:
      return absl::FailedPreconditionError(
          Cat(field, ": ", path, ": a parent component is not a directory"));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(Cat(field, ": ", path, ": ", std::strerror(err)));
    default: return absl::InternalError(Cat(field, ": open ", path, ": ", std::strerror(err)));
  }
}

// Splits a clean absolute path into components; refuses anything ambiguous.
absl::StatusOr<std::vector<std::string_view>> CleanComponents(std::string_view field,
                                                              std::string_view path) {
  if (path.empty()) return InvalidField(field, "required");
  if (path.size() > kMaxPathBytes) return InvalidField(field, "longer than 4096 bytes");
  if (path.find('\0') != std::string_view::npos) return InvalidField(field, "holds a NUL byte");
  if (path[0] != '/') return InvalidField(field, "must be absolute");
  std::vector<std::string_view> parts = Split(path.substr(1), '/');
  for (std::string_view p : parts) {
    if (p.empty()) return InvalidField(field, "empty component (\"//\" or trailing '/')");
    if (p == "." || p == "..") return InvalidField(field, "\".\" and \"..\" are refused");
    if (p.size() > NAME_MAX) return InvalidField(field, "component longer than 255 bytes");
  }
  return parts;
}

}  // namespace

absl::StatusOr<uint64_t> MountIdOf(int fd) {
  struct statx stx {};
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx) ==
          0 &&
      (stx.stx_mask & STATX_MNT_ID)) {
    return stx.stx_mnt_id;
  }
  std::ifstream in(Cat("/proc/self/fdinfo/", fd));
  std::string line;
  while (std::getline(in, line)) {
    std::string_view v = line;
    if (ConsumePrefix(&v, "mnt_id:")) return std::strtoull(std::string(v).c_str(), nullptr, 10);
  }
  return absl::InternalError(Cat("cannot read the mount id of fd ", fd));
}

absl::StatusOr<PathGuard> PathGuard::Create(const std::vector<std::string>& roots) {
  if (roots.empty()) return absl::InvalidArgumentError("at least one root is required");
  std::vector<std::string> canonical;
  for (const std::string& root : roots) {
    char buf[PATH_MAX];
    if (realpath(root.c_str(), buf) == nullptr) {
      return absl::FailedPreconditionError(Cat("root ", root, ": ", std::strerror(errno)));
    }
    struct stat st {};
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(Cat("root ", root, " is not a directory"));
    }
    if (std::string_view(buf) == "/") {
      return absl::InvalidArgumentError("\"/\" cannot be a root: it would confine nothing");
    }
    canonical.emplace_back(buf);
  }
  return PathGuard(std::move(canonical));
}

bool PathGuard::IsUnderRoot(std::string_view path) const {
  for (const std::string& root : roots_) {
    if (path.size() > root.size() && path.starts_with(root) && path[root.size()] == '/') {
      return true;
    }
  }
  return false;
}

absl::StatusOr<UniqueFd> PathGuard::OpenBeneath(int root_fd,
                                                const std::vector<std::string_view>& parts,
                                                std::string_view field) const {
  if (parts.empty()) return UniqueFd(fcntl(root_fd, F_DUPFD_CLOEXEC, 3));
  std::string rel;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) rel += '/';
    rel += parts[i];
  }
  if (!force_walk_) {
    open_how how{};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    long fd;
    do {
      fd = syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof(how));
    } while (fd < 0 && errno == EAGAIN);  // a concurrent rename: try again
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno != ENOSYS) return PathError(field, rel, errno);
  }
  // Fallback: one component at a time, refusing symlinks and mount crossings.
  ASSIGN_OR_RETURN(uint64_t mnt, MountIdOf(root_fd));
  UniqueFd cur(fcntl(root_fd, F_DUPFD_CLOEXEC, 3));
  for (std::string_view part : parts) {
    std::string name(part);
    UniqueFd next(openat(cur.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) return PathError(field, rel, errno);
    struct stat st {};
    if (fstat(next.get(), &st) != 0) return PathError(field, rel, errno);
    if (S_ISLNK(st.st_mode)) return PathError(field, rel, ELOOP);
    if (!S_ISDIR(st.st_mode)) return PathError(field, rel, ENOTDIR);
    ASSIGN_OR_RETURN(uint64_t next_mnt, MountIdOf(next.get()));
    if (next_mnt != mnt) return PathError(field, rel, EXDEV);
    cur = std::move(next);
  }
  return cur;
}

absl::StatusOr<PathGuard::Parent> PathGuard::OpenParent(std::string_view field,
                                                        std::string_view path) const {
  ASSIGN_OR_RETURN(std::vector<std::string_view> parts, CleanComponents(field, path));
  for (const std::string& root : roots_) {
    ASSIGN_OR_RETURN(std::vector<std::string_view> root_parts, CleanComponents("root", root));
    if (parts.size() <= root_parts.size()) continue;  // must be strictly below the root
    bool prefix = true;
    for (size_t i = 0; i < root_parts.size() && prefix; ++i) prefix = parts[i] == root_parts[i];
    if (!prefix) continue;
    UniqueFd root_fd(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
    if (!root_fd.valid()) return PathError("root", root, errno);
    std::vector<std::string_view> middle(parts.begin() + root_parts.size(), parts.end() - 1);
    ASSIGN_OR_RETURN(UniqueFd parent, OpenBeneath(root_fd.get(), middle, field));
    return Parent{std::move(parent), std::string(parts.back()), std::string(path)};
  }
  return absl::InvalidArgumentError(
      Cat(field, ": ", path, " is not below a configured root of the helper"));
}

absl::StatusOr<PathGuard::Parent> PathGuard::CreateDirectory(std::string_view field,
                                                             std::string_view path,
                                                             bool* created) const {
  *created = false;
  ASSIGN_OR_RETURN(std::vector<std::string_view> parts, CleanComponents(field, path));
  for (const std::string& root : roots_) {
    ASSIGN_OR_RETURN(std::vector<std::string_view> root_parts, CleanComponents("root", root));
    if (parts.size() <= root_parts.size()) continue;
    bool prefix = true;
    for (size_t i = 0; i < root_parts.size() && prefix; ++i) prefix = parts[i] == root_parts[i];
    if (!prefix) continue;
    UniqueFd cur(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
    if (!cur.valid()) return PathError("root", root, errno);
    ASSIGN_OR_RETURN(uint64_t root_mnt, MountIdOf(cur.get()));
    for (size_t i = root_parts.size(); i < parts.size(); ++i) {
      std::string name(parts[i]);
      // mkdirat never follows a symlink in the last component: EEXIST instead.
      bool made = mkdirat(cur.get(), name.c_str(), 0750) == 0;
      if (!made && errno != EEXIST) return PathError(field, path, errno);
      if (i + 1 == parts.size()) *created = made;
      UniqueFd next(openat(cur.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
      if (!next.valid()) return PathError(field, path, errno);
      struct stat st {};
      if (fstat(next.get(), &st) != 0) return PathError(field, path, errno);
      if (S_ISLNK(st.st_mode)) return PathError(field, path, ELOOP);
      if (!S_ISDIR(st.st_mode)) return PathError(field, path, ENOTDIR);
      // The leaf may itself be a mount point (a repeated call); parents may not.
      if (i + 1 < parts.size()) {
        ASSIGN_OR_RETURN(uint64_t mnt, MountIdOf(next.get()));
        if (mnt != root_mnt) return PathError(field, path, EXDEV);
      }
      if (i + 1 == parts.size()) break;
      cur = std::move(next);
    }
    // Re-open through the normal checked path: one rule for what is accepted.
    return OpenParent(field, path);
  }
  return absl::InvalidArgumentError(
      Cat(field, ": ", path, " is not below a configured root of the helper"));
}

absl::StatusOr<UniqueFd> PathGuard::OpenLeaf(const Parent& parent) {
  UniqueFd fd(openat(parent.fd.get(), parent.leaf.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return PathError("path", parent.path, errno);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) {
    const int err = errno;
    // A failed filesystem (xfs after a shutdown) answers EIO to any stat of its
    // root. The fd still serves teardown (mount id, unmount), and a mount root
    // is not a symlink of the parent's: accept it, or the volume could never be
    // unmounted.
    if (err == EIO) {
      absl::StatusOr<uint64_t> leaf_mnt = MountIdOf(fd.get());
      absl::StatusOr<uint64_t> parent_mnt = MountIdOf(parent.fd.get());
      if (leaf_mnt.ok() && parent_mnt.ok() && *leaf_mnt != *parent_mnt) return fd;
    }
    return PathError("path", parent.path, err);
  }
  if (S_ISLNK(st.st_mode)) return PathError("path", parent.path, ELOOP);
  return fd;
}

}  // namespace lbcsi::helper
