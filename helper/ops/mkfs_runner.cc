#include "helper/ops/mkfs_runner.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/strings.h"
#include "helper/spawner/spawner.h"

namespace lbcsi::helper {

absl::Status DirectMkfsRunner::RunMkfs(v1::FsType fs_type, int device_fd, bool resume,
                                       const mkfsopts::MkfsOptions& options) {
  MkfsFs fs;
  const char* bin = nullptr;
  if (fs_type == v1::FS_TYPE_EXT4) {
    fs = MkfsFs::kExt4;
    bin = "/usr/sbin/mkfs.ext4";
  } else if (fs_type == v1::FS_TYPE_XFS) {
    fs = MkfsFs::kXfs;
    bin = "/usr/sbin/mkfs.xfs";
  } else {
    return absl::InvalidArgumentError("unsupported filesystem");
  }
  RETURN_IF_ERROR(
      mkfsopts::Check(options, fs == MkfsFs::kExt4 ? mkfsopts::Fs::kExt4 : mkfsopts::Fs::kXfs));
  // The spawner's argv, device as fd 3.
  const std::vector<std::string> args =
      MkfsArgv(fs, resume ? MkfsMode::kResume : MkfsMode::kNew, options);
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
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
    execv(bin, argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return absl::InternalError(Cat("waitpid: ", std::strerror(errno)));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::InternalError(
      Cat(args[0], " failed (",
          WIFEXITED(status) ? Cat("exit ", WEXITSTATUS(status)) : Cat("signal ", WTERMSIG(status)),
          ")"));
}

}  // namespace lbcsi::helper
