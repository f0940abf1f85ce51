#include "helper/ops/mkfs_runner.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include "common/strings.h"

namespace lbcsi::helper {

absl::Status DirectMkfsRunner::RunMkfs(v1::FsType fs_type, int device_fd, bool resume) {
  const char* bin = nullptr;
  const char* ext4[] = {"mkfs.ext4",       "-q",   "-E", "nodiscard,lazy_itable_init=1",
                        "/proc/self/fd/3", nullptr};
  const char* xfs[] = {"mkfs.xfs", "-q", "-K", "/proc/self/fd/3", nullptr};
  const char* xfs_resume[] = {"mkfs.xfs", "-q", "-K", "-f", "/proc/self/fd/3", nullptr};
  const char* const* argv = nullptr;
  if (fs_type == v1::FS_TYPE_EXT4) {
    bin = "/usr/sbin/mkfs.ext4";
    argv = ext4;
  } else if (fs_type == v1::FS_TYPE_XFS) {
    bin = "/usr/sbin/mkfs.xfs";
    argv = resume ? xfs_resume : xfs;
  } else {
    return absl::InvalidArgumentError("unsupported filesystem");
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return absl::ResourceExhaustedError(Cat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    if (dup2(device_fd, 3) < 0) _exit(126);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) dup2(devnull, 0);
    closefrom(4);
    execv(bin, const_cast<char* const*>(argv));
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return absl::InternalError(Cat("waitpid: ", std::strerror(errno)));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::InternalError(
      Cat(argv[0], " failed (",
          WIFEXITED(status) ? Cat("exit ", WEXITSTATUS(status)) : Cat("signal ", WTERMSIG(status)),
          ")"));
}

}  // namespace lbcsi::helper
