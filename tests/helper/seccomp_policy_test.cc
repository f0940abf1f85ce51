// Fork + load + try: every rule class is checked by loading the real filter in
// a child and making the syscall. The child reports errno through its exit
// code; a kill shows as WIFSIGNALED with SIGSYS.

#include "helper/confinement/seccomp_policy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/netlink.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace lbcsi::helper {
namespace {

struct Outcome {
  bool signaled = false;
  int signal = 0;
  int code = -1;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  if (o.signaled) return os << "killed by signal " << o.signal;
  return os << "exit code " << o.code << " (" << strerror(o.code) << ")";
}

constexpr int kInstallFailed = 250;

// Runs `body` in a child under the filter; body returns 0 or an errno.
Outcome RunFiltered(const std::function<int()>& body, SeccompMode mode = SeccompMode::kEnforce,
                    bool loop_transport = false) {
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const absl::Status status = InstallHelperSeccomp(mode, loop_transport);
    if (!status.ok()) {
      const std::string msg = status.ToString() + "\n";
      (void)!write(2, msg.data(), msg.size());
      _exit(kInstallFailed);
    }
    _exit(body());
  }
  Outcome out;
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return out;
  if (WIFSIGNALED(status)) {
    out.signaled = true;
    out.signal = WTERMSIG(status);
  } else if (WIFEXITED(status)) {
    out.code = WEXITSTATUS(status);
  }
  return out;
}

int Errno(long rc) {
  return rc < 0 ? errno : 0;
}

bool KilledBySigsys(const Outcome& o) {
  return o.signaled && o.signal == SIGSYS;
}
bool FailedWith(const Outcome& o, int err) {
  return !o.signaled && o.code == err;
}
bool Succeeded(const Outcome& o) {
  return !o.signaled && o.code == 0;
}

// ---- the table and its golden file --------------------------------------------------------

std::string GoldenPath() {
  const char* src = std::getenv("LBCSI_SOURCE_DIR");
  return std::string(src ? src : ".") + "/tests/helper/seccomp_allowlist.golden";
}

TEST(SeccompPolicy, RenderedTableMatchesGoldenFile) {
  const std::string rendered = RenderSeccompPolicy();
  if (const char* update = std::getenv("LBCSI_UPDATE_GOLDEN");
      update && std::string(update) == "1") {
    std::ofstream(GoldenPath()) << rendered;
  }
  std::ifstream in(GoldenPath());
  ASSERT_TRUE(in.good()) << "missing " << GoldenPath();
  std::stringstream golden;
  golden << in.rdbuf();
  EXPECT_EQ(rendered, golden.str())
      << "The seccomp allow-list changed. Review the difference, then regenerate with:\n"
      << "  LBCSI_UPDATE_GOLDEN=1 LBCSI_SOURCE_DIR=<repo> "
         "<build>/tests/helper/helper_confinement_seccomp_test "
         "--gtest_filter=SeccompPolicy.RenderedTableMatchesGoldenFile\n"
      << "and commit tests/helper/seccomp_allowlist.golden with the change.";
}

TEST(SeccompPolicy, EveryGroupHasAReasonAndEveryRuleResolves) {
  std::set<SyscallGroup> used;
  // Syscalls that only older ABIs have; on other architectures they are skipped.
  const std::set<std::string> legacy = {
      "open",     "stat", "lstat", "access",     "mkdir", "unlink", "rmdir",     "rename",
      "readlink", "dup2", "poll",  "epoll_wait", "fork",  "vfork",  "getrlimit", "mknod"};
  for (const SyscallRule& rule : HelperSeccompRules()) {
    used.insert(rule.group);
    EXPECT_FALSE(SyscallGroupName(rule.group).empty()) << rule.syscall;
    EXPECT_GE(SyscallGroupReason(rule.group).size(), 20u) << rule.syscall;
    if (seccomp_syscall_resolve_name(rule.syscall) == __NR_SCMP_ERROR) {
      EXPECT_TRUE(legacy.count(rule.syscall)) << rule.syscall << " is unknown to libseccomp";
    }
    if (rule.action == RuleAction::kErrno) {
      EXPECT_GT(rule.errno_value, 0) << rule.syscall;
    }
  }
  EXPECT_EQ(used.size(), static_cast<size_t>(SyscallGroup::kForbidden) + 1)
      << "a group without rules";
}

TEST(SeccompPolicy, ParsesModes) {
  EXPECT_EQ(*ParseSeccompMode("enforce"), SeccompMode::kEnforce);
  EXPECT_EQ(*ParseSeccompMode("log"), SeccompMode::kLog);
  EXPECT_EQ(*ParseSeccompMode("off"), SeccompMode::kOff);
  EXPECT_FALSE(ParseSeccompMode("kill").ok());
}

// ---- forbidden classes ----------------------------------------------------------------------

struct Forbidden {
  const char* name;
  std::function<int()> attempt;
  int expected_errno;  // 0: expect SIGSYS
};

std::vector<Forbidden> ForbiddenCases() {
  static char true_path[] = "/bin/true";
  static char* argv[] = {true_path, nullptr};
  static char* envp[] = {nullptr};
  return {
      {"socket_af_inet", [] { return Errno(socket(AF_INET, SOCK_STREAM, 0)); }, EAFNOSUPPORT},
      {"socket_af_inet6", [] { return Errno(socket(AF_INET6, SOCK_DGRAM, 0)); }, EAFNOSUPPORT},
      {"socket_netlink_route", [] { return Errno(socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)); },
       EPROTONOSUPPORT},
      {"socket_netlink_audit", [] { return Errno(socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT)); },
       EPROTONOSUPPORT},
      {"socket_af_packet", [] { return Errno(socket(AF_PACKET, SOCK_RAW, 0)); }, 0},
      {"socketpair_af_inet",
       [] {
         int sv[2];
         return Errno(socketpair(AF_INET, SOCK_STREAM, 0, sv));
       },
       0},
      {"execve", [] { return Errno(syscall(SYS_execve, true_path, argv, envp)); }, 0},
      {"execveat", [] { return Errno(syscall(SYS_execveat, AT_FDCWD, true_path, argv, envp, 0)); },
       0},
      {"fork", [] { return Errno(syscall(SYS_fork)); }, 0},
      {"clone_without_thread",
       [] { return Errno(syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, 0)); }, 0},
      // A thread in a new network namespace. Without CLONE_SIGHAND the kernel
      // would answer EINVAL, so only the filter can make this a SIGSYS.
      {"clone_thread_in_new_netns",
       [] {
         return Errno(
             syscall(SYS_clone, CLONE_THREAD | CLONE_NEWNET, nullptr, nullptr, nullptr, 0));
       },
       0},
      {"clone_thread_in_new_mount_ns",
       [] {
         return Errno(syscall(SYS_clone, CLONE_THREAD | CLONE_NEWNS, nullptr, nullptr, nullptr, 0));
       },
       0},
      {"ptrace", [] { return Errno(ptrace(PTRACE_TRACEME, 0, nullptr, nullptr)); }, 0},
      {"init_module", [] { return Errno(syscall(SYS_init_module, nullptr, 0, "")); }, 0},
      {"finit_module", [] { return Errno(syscall(SYS_finit_module, -1, "", 0)); }, 0},
      {"delete_module", [] { return Errno(syscall(SYS_delete_module, "lbcsi_no_such_module", 0)); },
       0},
      {"bpf", [] { return Errno(syscall(SYS_bpf, -1, nullptr, 0)); }, 0},
      {"kexec_load", [] { return Errno(syscall(SYS_kexec_load, 0, 0, nullptr, 0xdead0000UL)); }, 0},
      {"kexec_file_load",
       [] { return Errno(syscall(SYS_kexec_file_load, -1, -1, 0, nullptr, 0xdead0000UL)); }, 0},
      {"keyctl", [] { return Errno(syscall(SYS_keyctl, -1, 0, 0, 0, 0)); }, 0},
      {"add_key", [] { return Errno(syscall(SYS_add_key, "user", "lbcsi", "", 0, 0)); }, 0},
      // libcryptsetup's keyring probe: ENOSYS keeps the volume key out of the keyring.
      {"request_key",
       [] { return Errno(syscall(SYS_request_key, "user", "lbcsi-none", nullptr, 0)); }, ENOSYS},
      {"semget", [] { return Errno(syscall(SYS_semget, 0, 1, 0600)); }, ENOSYS},
      // libcryptsetup's PBKDF benchmark: raising the priority fails softly; only its own
      // nice value may be read.
      {"setpriority", [] { return Errno(setpriority(PRIO_PROCESS, 0, -18)); }, EACCES},
      {"getpriority_other_process",
       [] { return Errno(static_cast<int>(syscall(SYS_getpriority, PRIO_PROCESS, 1))); }, 0},
      {"dm_ioctl_remove_all", [] { return Errno(ioctl(-1, DM_REMOVE_ALL, nullptr)); }, ENOTTY},

      {"unshare", [] { return Errno(unshare(0)); }, 0},
      {"setns", [] { return Errno(setns(-1, 0)); }, 0},
      {"kill_other_process", [] { return Errno(kill(1, 0)); }, 0},
      {"tgkill_other_process", [] { return Errno(syscall(SYS_tgkill, 1, 1, 0)); }, 0},
      {"prlimit64_set",
       [] {
         rlimit lim{1024, 1024};
         return Errno(syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &lim, nullptr));
       },
       0},
      {"chroot", [] { return Errno(chroot("/")); }, 0},
      {"mknodat", [] { return Errno(mknodat(AT_FDCWD, "/nonexistent/x", S_IFIFO | 0600, 0)); },
       EPERM},
      {"capset", [] { return Errno(syscall(SYS_capset, nullptr, nullptr)); }, 0},
  };
}

TEST(SeccompEnforce, ForbiddenClassesGetTheirExactOutcome) {
  for (const Forbidden& f : ForbiddenCases()) {
    const Outcome o = RunFiltered(f.attempt);
    ASSERT_NE(o.code, kInstallFailed) << "the filter did not load";
    if (f.expected_errno == 0) {
      EXPECT_TRUE(KilledBySigsys(o)) << f.name << ": " << o;
    } else {
      EXPECT_TRUE(FailedWith(o, f.expected_errno))
          << f.name << ": " << o << ", want " << strerror(f.expected_errno);
    }
  }
}

// Loop-device requests reach the kernel only in a helper serving the development
// transport; an NVMe helper gets the filter's ENOTTY (EBADF would be the kernel's).
TEST(SeccompEnforce, LoopRequestsOnlyForTheLoopTransport) {
  for (unsigned long request :
       {static_cast<unsigned long>(LOOP_CTL_GET_FREE), static_cast<unsigned long>(LOOP_CONFIGURE),
        static_cast<unsigned long>(LOOP_SET_FD), static_cast<unsigned long>(LOOP_CLR_FD)}) {
    const auto try_it = [request] { return Errno(ioctl(-1, request, nullptr)); };
    const Outcome nvme = RunFiltered(try_it);
    EXPECT_TRUE(FailedWith(nvme, ENOTTY)) << std::hex << request << ": " << nvme;
    const Outcome loop = RunFiltered(try_it, SeccompMode::kEnforce, /*loop_transport=*/true);
    EXPECT_TRUE(FailedWith(loop, EBADF)) << std::hex << request << ": " << loop;
  }
}

// Host encryption: the device-mapper requests libcryptsetup needs reach the
// kernel (EBADF on a bad fd, not the filter's ENOTTY); AF_ALG fails softly.
TEST(SeccompEnforce, DeviceMapperRequestsReachTheKernelAfAlgFailsSoftly) {
  for (unsigned long request :
       {DM_VERSION, DM_DEV_CREATE, DM_TABLE_LOAD, DM_DEV_SUSPEND, DM_TABLE_STATUS, DM_DEV_REMOVE}) {
    EXPECT_TRUE(
        FailedWith(RunFiltered([request] { return Errno(ioctl(-1, request, nullptr)); }), EBADF))
        << std::hex << request;
  }
  EXPECT_TRUE(FailedWith(
      RunFiltered([] { return Errno(socket(AF_ALG, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)); }),
      EAFNOSUPPORT));
}

// libcryptsetup reads its own nice value before its PBKDF benchmark (any new key slot
// with the default, benchmarked cost).
TEST(SeccompEnforce, OwnPriorityIsReadable) {
  // The raw syscall answers 20 - nice, always in 1..40.
  const Outcome o = RunFiltered([] {
    const long raw = syscall(SYS_getpriority, PRIO_PROCESS, 0);
    return raw < 0 ? errno : (raw >= 1 && raw <= 40 ? 0 : 99);
  });
  EXPECT_TRUE(Succeeded(o)) << o;
}

TEST(SeccompEnforce, ProbedSyscallsGetEnosys) {
  EXPECT_TRUE(
      FailedWith(RunFiltered([] { return Errno(syscall(SYS_clone3, nullptr, 0)); }), ENOSYS));
  EXPECT_TRUE(
      FailedWith(RunFiltered([] { return Errno(syscall(SYS_fsopen, "ext4", 0)); }), ENOSYS));
  EXPECT_TRUE(FailedWith(
      RunFiltered([] { return Errno(syscall(SYS_open_tree, AT_FDCWD, "/", 0)); }), ENOSYS));
  EXPECT_TRUE(FailedWith(
      RunFiltered([] { return Errno(syscall(SYS_mount_setattr, -1, "", 0, nullptr, 0)); }),
      ENOSYS));
}

TEST(SeccompEnforce, UnlistedIoctlGetsEnottyListedOneWorks) {
  // FIGETBSZ works on a regular file without the filter, so ENOTTY is the filter's.
  const Outcome unlisted = RunFiltered([] {
    const int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    int block_size = 0;
    return Errno(ioctl(fd, FIGETBSZ, &block_size));
  });
  EXPECT_TRUE(FailedWith(unlisted, ENOTTY)) << unlisted;
  const Outcome listed = RunFiltered([] {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return errno;
    int available = -1;
    if (ioctl(p[0], FIONREAD, &available) != 0) return errno;
    return available == 0 ? 0 : 99;
  });
  EXPECT_TRUE(Succeeded(listed)) << listed;
}

// ---- what must keep working ---------------------------------------------------------------

TEST(SeccompEnforce, AllowedOperationsStillWork) {
  const Outcome o = RunFiltered([] {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 10;
    if (write(sv[0], "x", 1) != 1) return 11;
    char c = 0;
    if (read(sv[1], &c, 1) != 1 || c != 'x') return 12;
    const int mi = openat(AT_FDCWD, "/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (mi < 0) return 13;
    char buf[256];
    if (read(mi, buf, sizeof(buf)) <= 0) return 14;
    const int uevent = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
    if (uevent < 0) return 15;
    const int unix_sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (unix_sock < 0) return 16;
    struct statx stx {};
    if (statx(AT_FDCWD, "/proc/self/mountinfo", 0, STATX_BASIC_STATS, &stx) != 0) return 17;
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 18;
    if (syscall(SYS_tgkill, getpid(), gettid(), 0) != 0) return 19;
    // pthread_create: glibc tries clone3 (ENOSYS) and falls back to clone(CLONE_THREAD).
    std::atomic<int> ran{0};
    std::thread t([&] { ran = 1; });
    t.join();
    if (ran != 1) return 20;
    return 0;
  });
  EXPECT_TRUE(Succeeded(o)) << o;
}

TEST(SeccompEnforce, FilterReachesThreadsThatAlreadyExist) {
  const Outcome o = RunFiltered([] { return 0; });  // the filter itself loads
  ASSERT_TRUE(Succeeded(o)) << o;
  fflush(nullptr);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // A thread started before the filter, then asked to try an IPv4 socket.
    int go[2];
    if (pipe2(go, O_CLOEXEC) != 0) _exit(101);
    std::atomic<int> result{-1};
    std::thread worker([&] {
      char c;
      if (read(go[0], &c, 1) != 1) return;
      result = Errno(socket(AF_INET, SOCK_STREAM, 0));
    });
    if (!InstallHelperSeccomp(SeccompMode::kEnforce).ok()) _exit(kInstallFailed);
    if (write(go[1], "g", 1) != 1) _exit(102);
    worker.join();
    _exit(result.load());
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), EAFNOSUPPORT);
}

TEST(SeccompEnforce, AForbiddenCallInAnyThreadKillsTheWholeProcess) {
  const Outcome o = RunFiltered([] {
    std::thread t([] { unshare(0); });
    t.join();
    // Reached only if the kill took a single thread (SCMP_ACT_KILL would).
    return 77;
  });
  EXPECT_TRUE(KilledBySigsys(o)) << o;
}

TEST(SeccompLog, LogModeLetsForbiddenCallsThrough) {
  const Outcome o = RunFiltered([] { return Errno(unshare(0)); }, SeccompMode::kLog);
  EXPECT_TRUE(Succeeded(o)) << o;
  // Errno rules still apply in log mode.
  const Outcome inet =
      RunFiltered([] { return Errno(socket(AF_INET, SOCK_STREAM, 0)); }, SeccompMode::kLog);
  EXPECT_TRUE(FailedWith(inet, EAFNOSUPPORT)) << inet;
}

TEST(SeccompOff, OffLoadsNothing) {
  const Outcome o = RunFiltered(
      [] {
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        return fd >= 0 ? 0 : errno;
      },
      SeccompMode::kOff);
  EXPECT_TRUE(Succeeded(o)) << o;
}

}  // namespace
}  // namespace lbcsi::helper
