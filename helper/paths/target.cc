#include "helper/paths/target.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/strings.h"

namespace lbcsi::helper {

absl::StatusOr<TargetState> InspectNewTarget(std::string_view field,
                                             const PathGuard::Parent& target) {
  struct stat st {};
  if (fstatat(target.fd.get(), target.leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return TargetState::kAbsent;
    return absl::InternalError(Cat("stat ", field, " ", target.path, ": ", std::strerror(errno)));
  }
  if (S_ISREG(st.st_mode)) {
    if (st.st_size == 0) return TargetState::kEmptyFile;
    return absl::FailedPreconditionError(
        Cat(field, " ", target.path, " is a file that holds data; refusing to mount over it"));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        Cat(field, " ", target.path,
            " exists and is neither a directory nor a regular file; refusing to use it"));
  }
  const int fd =
      openat(target.fd.get(), target.leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return absl::InternalError(Cat("open ", field, " ", target.path, ": ", std::strerror(errno)));
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    close(fd);
    return absl::InternalError(Cat("opendir ", field, ": ", std::strerror(errno)));
  }
  bool empty = true;
  while (const dirent* e = readdir(dir)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  closedir(dir);
  if (!empty) {
    return absl::FailedPreconditionError(Cat(
        field, " ", target.path, " is a directory that is not empty; refusing to mount over it"));
  }
  return TargetState::kEmptyDirectory;
}

}  // namespace lbcsi::helper
