#pragma once
// Confines every path a request names to the configured roots.
//
// A path is accepted only when it is absolute, clean (no "", ".", ".."
// components, no trailing '/'), and lies strictly below a root, compared
// component by component. It is then opened from the root's fd without
// following any symlink and without crossing a mount point on the way
// (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV,
// or an equivalent O_PATH walk on kernels without openat2). The last component
// is opened separately (still without following a symlink) because it is
// usually the mount point we care about.
//
// Callers operate on the returned fds only ("/proc/self/fd/N"), never on the
// path string again.

#include <string>
#include <string_view>
#include <vector>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include "helper/fd.h"

namespace lbcsi::helper {

class PathGuard {
 public:
  // Roots must exist; they are canonicalised once here (they come from the
  // helper's own configuration, which is trusted).
  static absl::StatusOr<PathGuard> Create(const std::vector<std::string>& roots);

  // Parent directory of `path` (opened O_PATH) and the last component's name.
  struct Parent {
    UniqueFd fd;
    std::string leaf;
    std::string path;  // the validated path, for logs and mountinfo comparison
  };
  absl::StatusOr<Parent> OpenParent(std::string_view field, std::string_view path) const;

  // Like OpenParent, but first creates every missing directory below the root
  // down to and including the leaf (root-owned, mode 0750), one component at a
  // time from the previous one's fd, refusing symlinks and mount crossings.
  // `*created` tells whether the leaf was made by this call. For mount points
  // the driver owns (inline volumes), never for kubelet's own paths.
  absl::StatusOr<Parent> CreateDirectory(std::string_view field, std::string_view path,
                                         bool* created) const;

  // Opens parent.leaf with O_PATH|O_NOFOLLOW (crossing into a mount on the leaf
  // itself). NOT_FOUND when it does not exist; FAILED_PRECONDITION for a symlink.
  static absl::StatusOr<UniqueFd> OpenLeaf(const Parent& parent);

  const std::vector<std::string>& roots() const { return roots_; }
  bool IsUnderRoot(std::string_view path) const;  // lexical, for filtering mountinfo

  // Tests: use the O_PATH walk even when openat2 exists.
  void ForceWalkForTesting(bool force) { force_walk_ = force; }

 private:
  explicit PathGuard(std::vector<std::string> roots) : roots_(std::move(roots)) {}
  absl::StatusOr<UniqueFd> OpenBeneath(int root_fd, const std::vector<std::string_view>& parts,
                                       std::string_view field) const;
  std::vector<std::string> roots_;
  bool force_walk_ = false;
};

// Mount id of an open file (statx STATX_MNT_ID, fdinfo fallback).
absl::StatusOr<uint64_t> MountIdOf(int fd);

}  // namespace lbcsi::helper
