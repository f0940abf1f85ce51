#include "helper/confinement/seccomp_policy.h"

#include <errno.h>
#include <linux/blkzoned.h>
#include <linux/dm-ioctl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/netlink.h>
#include <linux/nvme_ioctl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <memory>

#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::helper {
namespace {

// Resize ioctls whose headers are not in the kernel's uapi set (xfsprogs and
// e2fsprogs carry them). Sizes are those of the structs the ioctls take.
constexpr unsigned long EXT4_IOC_RESIZE_FS = _IOW('f', 16, uint64_t);
constexpr unsigned long XFS_IOC_FSGEOMETRY_V1 = _IOC(_IOC_READ, 'X', 100, 112);
constexpr unsigned long XFS_IOC_FSGEOMETRY_V4 = _IOC(_IOC_READ, 'X', 124, 112);
constexpr unsigned long XFS_IOC_FSGEOMETRY = _IOC(_IOC_READ, 'X', 126, 256);
constexpr unsigned long XFS_IOC_FSGROWFSDATA = _IOC(_IOC_WRITE, 'X', 110, 16);
static_assert(XFS_IOC_FSGEOMETRY == 0x8100587e && XFS_IOC_FSGROWFSDATA == 0x4010586e);
static_assert(EXT4_IOC_RESIZE_FS == 0x40086610);

constexpr ArgCondition Cond(ArgOp op, unsigned arg, uint64_t value, const char* name,
                            uint64_t mask = 0, const char* mask_name = nullptr) {
  return ArgCondition{op, arg, value, name, mask, mask_name};
}

// clone flags that make a thread start in new namespaces (unshare by another
// name). CLONE_NEWTIME is left out: for clone (not clone3) its bit is part of
// the exit-signal byte, and clone3 is refused anyway.
constexpr uint64_t kCloneThreadAndNamespaces = CLONE_THREAD | CLONE_NEWNS | CLONE_NEWCGROUP |
                                               CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
                                               CLONE_NEWPID | CLONE_NEWNET;

// Table-building shorthands: the value's spelling goes into the golden file.
#define EQ(arg, v) Cond(ArgOp::kEq, arg, static_cast<uint64_t>(v), #v)
#define NE(arg, v) Cond(ArgOp::kNe, arg, static_cast<uint64_t>(v), #v)
#define HAS_BITS(arg, v) Cond(ArgOp::kMaskedEq, arg, static_cast<uint64_t>(v), #v, v)
// Of the bits in `mask`, exactly those of `v` are set.
#define MASKED(arg, mask, v) Cond(ArgOp::kMaskedEq, arg, static_cast<uint64_t>(v), #v, mask, #mask)
// ioctl's request is an unsigned int in the kernel: compare the low 32 bits only.
#define REQUEST(v) Cond(ArgOp::kMaskedEq, 1, static_cast<uint64_t>(v), #v, 0xffffffffu)

#define ALLOW(name, group)    \
  SyscallRule {               \
    name, SyscallGroup::group \
  }
#define ALLOW_IF(name, group, ...)                               \
  SyscallRule {                                                  \
    name, SyscallGroup::group, RuleAction::kAllow, 0, nullptr, { \
      __VA_ARGS__                                                \
    }                                                            \
  }
#define FAIL(name, group, err)                               \
  SyscallRule {                                              \
    name, SyscallGroup::group, RuleAction::kErrno, err, #err \
  }
#define FAIL_IF(name, group, err, ...)                          \
  SyscallRule {                                                 \
    name, SyscallGroup::group, RuleAction::kErrno, err, #err, { \
      __VA_ARGS__                                               \
    }                                                           \
  }
#define DENY(name)                                    \
  SyscallRule {                                       \
    name, SyscallGroup::kForbidden, RuleAction::kDeny \
  }

// clang-format off
const SyscallRule kRules[] = {
    // --- process basics -----------------------------------------------------------------
    ALLOW("exit", kRuntime), ALLOW("exit_group", kRuntime), ALLOW("restart_syscall", kRuntime),
    ALLOW("getpid", kRuntime), ALLOW("gettid", kRuntime), ALLOW("getppid", kRuntime),
    ALLOW("getuid", kRuntime), ALLOW("geteuid", kRuntime), ALLOW("getgid", kRuntime),
    ALLOW("getegid", kRuntime), ALLOW("getresuid", kRuntime), ALLOW("getresgid", kRuntime),
    ALLOW("getgroups", kRuntime), ALLOW("uname", kRuntime), ALLOW("arch_prctl", kRuntime),
    ALLOW("prctl", kRuntime), ALLOW("set_tid_address", kRuntime), ALLOW("getrandom", kRuntime),
    ALLOW("sched_getaffinity", kRuntime), ALLOW("sched_yield", kRuntime),
    ALLOW("getcpu", kRuntime), ALLOW("sysinfo", kRuntime), ALLOW("getrlimit", kRuntime),
    ALLOW_IF("prlimit64", kRuntime, EQ(2, 0)),  // read-only: new_limit == NULL
    ALLOW("umask", kRuntime), ALLOW("getcwd", kRuntime), ALLOW("getrusage", kRuntime),
    ALLOW("wait4", kRuntime), ALLOW("waitid", kRuntime),  // reaping the spawner

    // --- threads ------------------------------------------------------------------------
    // threads yes; fork and threads in new namespaces no
    ALLOW_IF("clone", kThreads, MASKED(0, kCloneThreadAndNamespaces, CLONE_THREAD)),
    ALLOW("futex", kThreads), ALLOW("set_robust_list", kThreads), ALLOW("rseq", kThreads),
    ALLOW("sched_getparam", kThreads), ALLOW("sched_getscheduler", kThreads),

    // --- memory -------------------------------------------------------------------------
    ALLOW("brk", kMemory), ALLOW("mmap", kMemory), ALLOW("munmap", kMemory),
    ALLOW("mremap", kMemory), ALLOW("mprotect", kMemory), ALLOW("madvise", kMemory),

    // --- signals ------------------------------------------------------------------------
    ALLOW("rt_sigaction", kSignals), ALLOW("rt_sigprocmask", kSignals),
    ALLOW("rt_sigreturn", kSignals), ALLOW("rt_sigtimedwait", kSignals),
    ALLOW("sigaltstack", kSignals),
    ALLOW_IF("tgkill", kSignals, EQ(0, kOwnPid)),  // only threads of this process

    // --- time ---------------------------------------------------------------------------
    ALLOW("clock_gettime", kTime), ALLOW("clock_getres", kTime), ALLOW("gettimeofday", kTime),
    ALLOW("clock_nanosleep", kTime), ALLOW("nanosleep", kTime),

    // --- event loop ---------------------------------------------------------------------
    ALLOW("epoll_create1", kEvents), ALLOW("epoll_ctl", kEvents), ALLOW("epoll_wait", kEvents),
    ALLOW("epoll_pwait", kEvents), ALLOW("poll", kEvents), ALLOW("ppoll", kEvents),
    ALLOW("eventfd2", kEvents), ALLOW("pipe2", kEvents),

    // --- files ---------------------------------------------------------------------------
    ALLOW("openat", kFiles), ALLOW("openat2", kFiles), ALLOW("open", kFiles),
    ALLOW("close", kFiles), ALLOW("close_range", kFiles), ALLOW("read", kFiles),
    ALLOW("pread64", kFiles), ALLOW("readv", kFiles), ALLOW("preadv", kFiles),
    ALLOW("write", kFiles), ALLOW("pwrite64", kFiles), ALLOW("writev", kFiles),
    ALLOW("lseek", kFiles), ALLOW("fstat", kFiles), ALLOW("newfstatat", kFiles),
    ALLOW("stat", kFiles), ALLOW("lstat", kFiles), ALLOW("statx", kFiles),
    ALLOW("fstatfs", kFiles), ALLOW("statfs", kFiles), ALLOW("readlink", kFiles),
    ALLOW("readlinkat", kFiles), ALLOW("getdents64", kFiles), ALLOW("fcntl", kFiles),
    ALLOW("dup", kFiles), ALLOW("dup2", kFiles), ALLOW("dup3", kFiles),
    ALLOW("access", kFiles), ALLOW("faccessat", kFiles), ALLOW("faccessat2", kFiles),
    ALLOW("fsync", kFiles), ALLOW("fdatasync", kFiles), ALLOW("ftruncate", kFiles),
    ALLOW("flock", kFiles), ALLOW("fadvise64", kFiles), ALLOW("name_to_handle_at", kFiles),
    ALLOW("getxattr", kFiles), ALLOW("lgetxattr", kFiles), ALLOW("fgetxattr", kFiles),

    // --- directories and ownership -------------------------------------------------------
    ALLOW("mkdirat", kDirectories), ALLOW("mkdir", kDirectories),
    ALLOW("unlinkat", kDirectories), ALLOW("unlink", kDirectories),
    ALLOW("rmdir", kDirectories), ALLOW("renameat", kDirectories),
    ALLOW("renameat2", kDirectories), ALLOW("rename", kDirectories),
    ALLOW("fchown", kDirectories), ALLOW("fchownat", kDirectories),
    ALLOW("fchmod", kDirectories), ALLOW("fchmodat", kDirectories),

    // --- mounts --------------------------------------------------------------------------
    ALLOW("mount", kMount), ALLOW("umount2", kMount),
    FAIL("fsopen", kNewMountApi, ENOSYS), FAIL("fsconfig", kNewMountApi, ENOSYS),
    FAIL("fsmount", kNewMountApi, ENOSYS), FAIL("fspick", kNewMountApi, ENOSYS),
    FAIL("move_mount", kNewMountApi, ENOSYS), FAIL("open_tree", kNewMountApi, ENOSYS),
    FAIL("mount_setattr", kNewMountApi, ENOSYS),

    // --- ioctl: listed requests only ------------------------------------------------------
    ALLOW_IF("ioctl", kIoctl, REQUEST(BLKGETSIZE64)), ALLOW_IF("ioctl", kIoctl, REQUEST(BLKGETSIZE)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(BLKSSZGET)), ALLOW_IF("ioctl", kIoctl, REQUEST(BLKPBSZGET)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(BLKIOMIN)), ALLOW_IF("ioctl", kIoctl, REQUEST(BLKIOOPT)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(BLKALIGNOFF)), ALLOW_IF("ioctl", kIoctl, REQUEST(BLKGETZONESZ)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(BLKROGET)), ALLOW_IF("ioctl", kIoctl, REQUEST(BLKROSET)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(BLKRRPART)), ALLOW_IF("ioctl", kIoctl, REQUEST(BLKFLSBUF)),
    ALLOW_IF("ioctl", kLoopDevices, REQUEST(LOOP_CTL_GET_FREE)),
    ALLOW_IF("ioctl", kLoopDevices, REQUEST(LOOP_CTL_REMOVE)),
    ALLOW_IF("ioctl", kLoopDevices, REQUEST(LOOP_CONFIGURE)),
    ALLOW_IF("ioctl", kLoopDevices, REQUEST(LOOP_SET_FD)),
    ALLOW_IF("ioctl", kLoopDevices, REQUEST(LOOP_CLR_FD)),
    ALLOW_IF("ioctl", kLoopDevices, REQUEST(LOOP_SET_STATUS64)),
    ALLOW_IF("ioctl", kLoopDevices, REQUEST(LOOP_GET_STATUS64)),
    ALLOW_IF("ioctl", kLoopDevices, REQUEST(LOOP_SET_CAPACITY)),
    ALLOW_IF("ioctl", kLoopDevices, REQUEST(LOOP_SET_BLOCK_SIZE)),
    ALLOW_IF("ioctl", kLoopDevices, REQUEST(LOOP_SET_DIRECT_IO)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(NVME_IOCTL_ID)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(NVME_IOCTL_RESCAN)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(EXT4_IOC_RESIZE_FS)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(XFS_IOC_FSGEOMETRY_V1)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(XFS_IOC_FSGEOMETRY_V4)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(XFS_IOC_FSGEOMETRY)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(XFS_IOC_FSGROWFSDATA)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(FS_IOC_GETFLAGS)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(TCGETS)), ALLOW_IF("ioctl", kIoctl, REQUEST(TIOCGWINSZ)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(FIONREAD)), ALLOW_IF("ioctl", kIoctl, REQUEST(FIONBIO)),
    ALLOW_IF("ioctl", kIoctl, REQUEST(FIOCLEX)),
    // Any other request: ENOTTY, what the kernel says for a request it does not
    // know. arg0 (the fd) >= 0 always holds; it only makes the rule conditional
    // so libseccomp orders it after the allowed requests.
    FAIL_IF("ioctl", kIoctl, ENOTTY, Cond(ArgOp::kGe, 0, 0, "0")),

    // --- sockets -------------------------------------------------------------------------
    ALLOW_IF("socket", kSockets, EQ(0, AF_UNIX)),
    ALLOW_IF("socket", kSockets, EQ(0, AF_NETLINK), EQ(2, NETLINK_KOBJECT_UEVENT)),
    FAIL_IF("socket", kSockets, EAFNOSUPPORT, EQ(0, AF_INET)),
    FAIL_IF("socket", kSockets, EAFNOSUPPORT, EQ(0, AF_INET6)),
    FAIL_IF("socket", kSockets, EPROTONOSUPPORT, EQ(0, AF_NETLINK), NE(2, NETLINK_KOBJECT_UEVENT)),
    ALLOW_IF("socketpair", kSockets, EQ(0, AF_UNIX)),
    ALLOW("bind", kSockets), ALLOW("listen", kSockets), ALLOW("accept", kSockets),
    ALLOW("accept4", kSockets), ALLOW("connect", kSockets), ALLOW("shutdown", kSockets),
    ALLOW("getsockname", kSockets), ALLOW("getpeername", kSockets),
    ALLOW("getsockopt", kSockets), ALLOW("setsockopt", kSockets),
    ALLOW("sendmsg", kSockets), ALLOW("recvmsg", kSockets), ALLOW("sendto", kSockets),
    ALLOW("recvfrom", kSockets),

    // --- capabilities --------------------------------------------------------------------
    ALLOW("capget", kCapabilities),

    // --- probed by glibc and libraries ---------------------------------------------------
    FAIL("clone3", kLibraryProbes, ENOSYS),

    // --- host encryption (libcryptsetup + libdevmapper) -----------------------------------
    ALLOW_IF("ioctl", kEncryption, REQUEST(DM_VERSION)),
    ALLOW_IF("ioctl", kEncryption, REQUEST(DM_LIST_DEVICES)),
    ALLOW_IF("ioctl", kEncryption, REQUEST(DM_LIST_VERSIONS)),
    ALLOW_IF("ioctl", kEncryption, REQUEST(DM_GET_TARGET_VERSION)),
    ALLOW_IF("ioctl", kEncryption, REQUEST(DM_DEV_CREATE)),
    ALLOW_IF("ioctl", kEncryption, REQUEST(DM_DEV_REMOVE)),
    ALLOW_IF("ioctl", kEncryption, REQUEST(DM_DEV_SUSPEND)),
    ALLOW_IF("ioctl", kEncryption, REQUEST(DM_DEV_STATUS)),
    ALLOW_IF("ioctl", kEncryption, REQUEST(DM_TABLE_LOAD)),
    ALLOW_IF("ioctl", kEncryption, REQUEST(DM_TABLE_CLEAR)),
    ALLOW_IF("ioctl", kEncryption, REQUEST(DM_TABLE_DEPS)),
    ALLOW_IF("ioctl", kEncryption, REQUEST(DM_TABLE_STATUS)),
    FAIL_IF("socket", kEncryption, EAFNOSUPPORT, EQ(0, AF_ALG)),
    FAIL("request_key", kEncryption, ENOSYS),
    FAIL("mknod", kEncryption, EPERM), FAIL("mknodat", kEncryption, EPERM),
    FAIL("semget", kEncryption, ENOSYS), FAIL("semctl", kEncryption, ENOSYS),
    FAIL("semop", kEncryption, ENOSYS), FAIL("semtimedop", kEncryption, ENOSYS),
    ALLOW_IF("getpriority", kEncryption, EQ(0, PRIO_PROCESS), EQ(1, 0)),
    FAIL("setpriority", kEncryption, EACCES),
    ALLOW("mlock", kEncryption), ALLOW("munlock", kEncryption),  // crypt_safe_alloc/free

    // --- never: these fall through to the default action ----------------------------------
    DENY("execve"), DENY("execveat"), DENY("fork"), DENY("vfork"), DENY("ptrace"),
    DENY("process_vm_readv"), DENY("process_vm_writev"), DENY("kill"), DENY("pidfd_getfd"),
    DENY("init_module"), DENY("finit_module"), DENY("delete_module"), DENY("bpf"),
    DENY("kexec_load"), DENY("kexec_file_load"), DENY("keyctl"), DENY("add_key"),
    DENY("unshare"), DENY("setns"), DENY("chroot"), DENY("pivot_root"),
    DENY("setuid"), DENY("setgid"), DENY("setgroups"),
    DENY("capset"), DENY("perf_event_open"), DENY("userfaultfd"), DENY("io_uring_setup"),
    DENY("swapon"), DENY("swapoff"), DENY("reboot"),
};
// clang-format on

#undef EQ
#undef NE
#undef HAS_BITS
#undef REQUEST
#undef ALLOW
#undef ALLOW_IF
#undef FAIL
#undef FAIL_IF
#undef DENY

struct GroupText {
  SyscallGroup group;
  std::string_view name;
  std::string_view reason;
};

constexpr GroupText kGroups[] = {
    {SyscallGroup::kRuntime, "runtime",
     "process basics that glibc, libstdc++, spdlog and the sanitizer runtimes call; prctl can "
     "only tighten or needs capabilities we dropped; prlimit64 may read, never set; wait4/waitid "
     "reap the spawner (our only child) at shutdown"},
    {SyscallGroup::kThreads, "threads",
     "gRPC's thread pool and synchronisation; clone only with CLONE_THREAD and no CLONE_NEW* "
     "flag, so the serving process can neither fork nor start a thread in new namespaces"},
    {SyscallGroup::kMemory, "memory", "allocators (glibc malloc, protobuf arenas, ASan)"},
    {SyscallGroup::kSignals, "signals",
     "SIGTERM handling (sigwait), abort(); tgkill only towards this process's own threads"},
    {SyscallGroup::kTime, "time", "deadlines, timers, sleeps"},
    {SyscallGroup::kEvents, "events", "gRPC's epoll event engine and its wake-up fds"},
    {SyscallGroup::kFiles, "files",
     "sysfs, procfs (mountinfo, /proc/self/fd), /dev/nvme-fabrics, block devices, state "
     "files; seccomp cannot see paths: the path rules are in the helper's code"},
    {SyscallGroup::kDirectories, "directories",
     "publish targets, socket directories (PrepareSocketDir chown/chmod), crash-safe state "
     "(write, fsync, rename)"},
    {SyscallGroup::kMount, "mount", "the classic mount(2) API, which libmount 2.38 uses"},
    {SyscallGroup::kNewMountApi, "new-mount-api",
     "libmount >= 2.39 probes these and falls back to mount(2) on ENOSYS; 2.38 uses them only "
     "for X-mount.idmap, which the helper never passes"},
    {SyscallGroup::kIoctl, "ioctl",
     "block size/read-only/partition re-read, NVMe namespace id and rescan, ext4/xfs online "
     "grow, tty probes; anything else (discard, zero-out, NVMe passthrough, SG_IO, BLKPG) gets "
     "ENOTTY"},
    {SyscallGroup::kLoopDevices, "loop-devices",
     "the loop-device development transport (tests, the demo); loaded only when the helper "
     "serves it, so an NVMe helper answers these requests with ENOTTY as well"},
    {SyscallGroup::kSockets, "sockets",
     "the gRPC server on a unix socket and kernel uevents (NETLINK_KOBJECT_UEVENT); IP sockets "
     "and other netlink protocols fail with an errno so a library probe survives; every other "
     "family kills"},
    {SyscallGroup::kCapabilities, "capabilities", "libcap reads what is left (logged at start-up)"},
    {SyscallGroup::kLibraryProbes, "library-probes",
     "glibc tries clone3 for pthread_create and falls back to clone on ENOSYS"},
    {SyscallGroup::kEncryption, "encryption",
     "host-encrypted volumes (LUKS2 via libcryptsetup): device-mapper ioctls on "
     "/dev/mapper/control to create, load, resume, query and remove a dm-crypt mapping (no "
     "rename, no remove-all, no target messages); AF_ALG sockets fail with EAFNOSUPPORT, so "
     "libcryptsetup does its key-slot crypto in OpenSSL; the kernel keyring stays off "
     "(request_key is libcryptsetup's keyring probe: ENOSYS makes it keep the volume key in the "
     "dm table; keyctl and add_key kill); mknod fails with EPERM (libdevmapper creates "
     "/dev/mapper/<name> when udev does not; the helper opens /dev/dm-N instead); SysV "
     "semaphores fail with ENOSYS (udev cookies, switched off at start-up); libcryptsetup's PBKDF "
     "benchmark for a new key slot reads its own nice value and tries to raise its priority: "
     "getpriority of itself is allowed, setpriority fails with EACCES (the kernel's answer "
     "without CAP_SYS_NICE), which it tolerates; mlock/munlock: libcryptsetup's "
     "crypt_safe_alloc locks every buffer that holds a key or passphrase so it never reaches "
     "swap (bounded by RLIMIT_MEMLOCK; ASan builds intercept mlock, so only release builds "
     "reach the kernel)"},
    {SyscallGroup::kForbidden, "forbidden",
     "never allowed (listed for review; not in the filter, so the default action applies): "
     "exec belongs to the spawner alone"},
};

const GroupText& GroupOf(SyscallGroup group) {
  for (const auto& g : kGroups) {
    if (g.group == group) return g;
  }
  return kGroups[0];  // unreachable: every enum value has an entry (tested)
}

std::string RenderCondition(const ArgCondition& c) {
  const std::string arg = Cat("arg", c.arg);
  switch (c.op) {
    case ArgOp::kNone: return "";
    case ArgOp::kEq: return Cat(arg, " == ", c.value == kOwnPid ? "own pid" : c.value_name);
    case ArgOp::kNe: return Cat(arg, " != ", c.value_name);
    case ArgOp::kGe: return Cat(arg, " >= ", c.value_name);
    case ArgOp::kMaskedEq:
      if (c.mask == 0xffffffffu && c.arg == 1) return Cat("request == ", c.value_name);
      return Cat(arg, " & ", c.mask_name ? c.mask_name : c.value_name, " == ", c.value_name);
  }
  return "";
}

struct FilterDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

scmp_arg_cmp ToScmp(const ArgCondition& c) {
  const uint64_t value = c.value == kOwnPid ? static_cast<uint64_t>(getpid()) : c.value;
  switch (c.op) {
    case ArgOp::kEq: return SCMP_CMP(c.arg, SCMP_CMP_EQ, value);
    case ArgOp::kNe: return SCMP_CMP(c.arg, SCMP_CMP_NE, value);
    case ArgOp::kGe: return SCMP_CMP(c.arg, SCMP_CMP_GE, value);
    case ArgOp::kMaskedEq: return SCMP_CMP(c.arg, SCMP_CMP_MASKED_EQ, c.mask, value);
    case ArgOp::kNone: break;
  }
  return SCMP_CMP(c.arg, SCMP_CMP_EQ, value);
}

}  // namespace

absl::StatusOr<SeccompMode> ParseSeccompMode(std::string_view name) {
  if (name == "enforce") return SeccompMode::kEnforce;
  if (name == "log") return SeccompMode::kLog;
  if (name == "off") return SeccompMode::kOff;
  return absl::InvalidArgumentError(
      Cat("seccomp mode must be enforce, log or off, not '", name, "'"));
}

std::string_view SeccompModeName(SeccompMode mode) {
  switch (mode) {
    case SeccompMode::kEnforce: return "enforce";
    case SeccompMode::kLog: return "log";
    case SeccompMode::kOff: return "off";
  }
  return "?";
}

std::string_view SyscallGroupName(SyscallGroup group) {
  return GroupOf(group).name;
}
std::string_view SyscallGroupReason(SyscallGroup group) {
  return GroupOf(group).reason;
}

std::span<const SyscallRule> HelperSeccompRules() {
  return kRules;
}

std::string RenderSeccompPolicy() {
  std::string out =
      "# lbcsi-helper seccomp policy, rendered from helper/confinement/seccomp_policy.cc.\n"
      "# Default action: KILL_PROCESS (log mode: LOG). Native architecture only; any other\n"
      "# ABI (x32 included) kills the process. TSYNC: every thread. no_new_privs: set.\n";
  for (const auto& g : kGroups) {
    out += Cat("\n[", g.name, "] ", g.reason, "\n");
    for (const auto& rule : kRules) {
      if (rule.group != g.group) continue;
      std::string action;
      switch (rule.action) {
        case RuleAction::kAllow: action = "allow"; break;
        case RuleAction::kErrno: action = Cat("errno ", rule.errno_name); break;
        case RuleAction::kDeny: action = "deny"; break;
      }
      std::string line = fmt::format("  {:<22} {}", action, rule.syscall);
      std::string conds;
      for (const auto& c : rule.cond) {
        if (c.op == ArgOp::kNone) continue;
        conds += conds.empty() ? " if " : " && ";
        conds += RenderCondition(c);
      }
      out += line + conds + "\n";
    }
  }
  return out;
}

absl::Status InstallHelperSeccomp(SeccompMode mode, bool loop_transport) {
  if (mode == SeccompMode::kOff) return absl::OkStatus();
  const uint32_t default_action =
      mode == SeccompMode::kEnforce ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_LOG;
  // seccomp_init covers the native architecture only: syscalls of any other
  // ABI hit SCMP_FLTATR_ACT_BADARCH.
  std::unique_ptr<void, FilterDeleter> ctx(seccomp_init(default_action));
  if (!ctx) return absl::InternalError("seccomp_init failed");
  auto attr = [&](scmp_filter_attr a, uint32_t v, std::string_view what) -> absl::Status {
    int rc = seccomp_attr_set(ctx.get(), a, v);
    if (rc != 0) return absl::InternalError(Cat("seccomp_attr_set(", what, "): ", strerror(-rc)));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(attr(SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS, "badarch"));
  RETURN_IF_ERROR(attr(SCMP_FLTATR_CTL_NNP, 1, "no_new_privs"));
  RETURN_IF_ERROR(attr(SCMP_FLTATR_CTL_TSYNC, 1, "tsync"));
  if (mode == SeccompMode::kLog) RETURN_IF_ERROR(attr(SCMP_FLTATR_CTL_LOG, 1, "log"));

  for (const auto& rule : kRules) {
    if (rule.action == RuleAction::kDeny) continue;  // the default action handles it
    if (rule.group == SyscallGroup::kLoopDevices && !loop_transport) continue;
    const int nr = seccomp_syscall_resolve_name(rule.syscall);
    if (nr == __NR_SCMP_ERROR) continue;  // e.g. legacy "open" on arm64: nothing to allow
    const uint32_t action =
        rule.action == RuleAction::kAllow ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(rule.errno_value);
    scmp_arg_cmp cmps[2];
    unsigned n = 0;
    for (const auto& c : rule.cond) {
      if (c.op != ArgOp::kNone) cmps[n++] = ToScmp(c);
    }
    const int rc = seccomp_rule_add_array(ctx.get(), action, nr, n, cmps);
    if (rc != 0) {
      return absl::InternalError(Cat("seccomp rule for ", rule.syscall, ": ", strerror(-rc)));
    }
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return absl::InternalError(Cat("prctl(PR_SET_NO_NEW_PRIVS): ", strerror(errno)));
  }
  const int rc = seccomp_load(ctx.get());
  if (rc != 0) {
    // With TSYNC a positive value is the id of a thread that could not be synced.
    return absl::InternalError(
        rc > 0 ? Cat("seccomp_load: thread ", rc, " could not take the filter (TSYNC)")
               : Cat("seccomp_load: ", strerror(-rc)));
  }
  return absl::OkStatus();
}

}  // namespace lbcsi::helper
