#pragma once
// The serving helper's seccomp allow-list, kept as one table (seccomp_policy.cc)
// so that a review sees every syscall with the reason it is there. The rendered
// table is pinned by tests/helper/seccomp_allowlist.golden.
//
// Seccomp sees syscall numbers and scalar arguments only, never paths: path
// rules live in the helper's code (see README.md in this directory).

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

namespace lbcsi::helper {

enum class SeccompMode {
  kEnforce,  // default action SCMP_ACT_KILL_PROCESS
  kLog,      // default action SCMP_ACT_LOG: a debugging aid, never for production
  kOff,      // no filter at all (tests, leak-checked sanitizer runs)
};

absl::StatusOr<SeccompMode> ParseSeccompMode(std::string_view name);  // enforce|log|off
std::string_view SeccompModeName(SeccompMode mode);

// Why a syscall is in the table. Every group has one reason (SyscallGroupReason).
enum class SyscallGroup {
  kRuntime,
  kThreads,
  kMemory,
  kSignals,
  kTime,
  kEvents,
  kFiles,
  kDirectories,
  kMount,
  kNewMountApi,
  kIoctl,
  kLoopDevices,
  kSockets,
  kCapabilities,
  kLibraryProbes,
  kEncryption,
  kForbidden,
};
std::string_view SyscallGroupName(SyscallGroup group);
std::string_view SyscallGroupReason(SyscallGroup group);

enum class RuleAction {
  kAllow,
  kErrno,  // fail with `errno_value`, the process lives on
  kDeny,   // documentation only: falls through to the default action (kill)
};

enum class ArgOp { kNone, kEq, kNe, kMaskedEq, kGe };

// A comparison on one syscall argument. `value_name` is how the golden file
// spells the value. kOwnPid is replaced by getpid() when the filter is built.
struct ArgCondition {
  ArgOp op = ArgOp::kNone;
  unsigned arg = 0;
  uint64_t value = 0;
  const char* value_name = nullptr;
  uint64_t mask = 0;                // kMaskedEq only: (arg & mask) == value
  const char* mask_name = nullptr;  // when the mask is not the value itself
};
inline constexpr uint64_t kOwnPid = ~uint64_t{0};

struct SyscallRule {
  const char* syscall;
  SyscallGroup group;
  RuleAction action = RuleAction::kAllow;
  int errno_value = 0;
  const char* errno_name = nullptr;
  ArgCondition cond[2] = {};
};

// The table, in review order (grouped).
std::span<const SyscallRule> HelperSeccompRules();

// The table as text, one line per rule, grouped with each group's reason.
// This is what tests/helper/seccomp_allowlist.golden holds.
std::string RenderSeccompPolicy();

// Loads the filter into every thread of the process (SCMP_FLTATR_CTL_TSYNC):
// native architecture only (other ABIs, x32 included, kill the process),
// no_new_privs set, default action KILL_PROCESS (kEnforce) or LOG (kLog).
// kOff returns OK without loading anything. Irreversible for the process.
// Sanitizer builds: LeakSanitizer needs ptrace, which the filter kills, so a
// filtered process must run with ASAN_OPTIONS=detect_leaks=0.
// `loop_transport`: the helper serves the loop-device development transport, so
// the kLoopDevices rules load; otherwise those requests get ENOTTY like any
// unlisted ioctl.
absl::Status InstallHelperSeccomp(SeccompMode mode, bool loop_transport = false);

}  // namespace lbcsi::helper
