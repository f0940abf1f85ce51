#pragma once
// The spawner: the only part of the helper that may exec (mkfs, and e2fsck's
// preen before an ext4 mount).
//
// Start() forks a small process before the serving process loads its seccomp
// filter (which forbids execve/execveat) and before any thread exists. The
// serving process sends it a filesystem enum and the device fd over a
// socketpair (SCM_RIGHTS); the spawner checks that the fd is a block device
// and runs the mkfs binary it opened at start-up (fexecve, so replacing the
// file on disk later changes nothing) with a fixed argv, no shell and a fixed
// environment:
//   ext4: mkfs.ext4 -q -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 [options] DEV
//   xfs:  mkfs.xfs -q -K [options] DEV
//   ext4 check before mounting: e2fsck -p DEV (preen: replays the journal and
//         repairs only what is safe without a person; exit 4 when it will not)
// where DEV is /proc/self/fd/3.
// [options] are the StorageClass's mkfs tunables (mkfsopts), sent as numbers and
// turned into arguments here, after the spawner has checked them itself.
// No -f for xfs: mkfs.xfs's own "existing filesystem" check stays on as a last
// guard. mkfs.ext4 asks only on a terminal and stdin is /dev/null, so for ext4
// the helper's libblkid probe (docs/design.md rule 1) is the only guard.
// MkfsMode::kResume adds -f for xfs: the helper asks for it only to finish its
// own interrupted format (its record and its probe say so), where mkfs.xfs
// would otherwise refuse the superblock its first run left, for good.
//
// Lifetimes: the spawner dies with the helper (PR_SET_PDEATHSIG; note the
// kernel sends it when the *thread* that called Start() exits, so call it from
// the main thread), and a running mkfs dies with the spawner. A caller that
// stops waiting does not stop mkfs.

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include "mkfsopts/mkfs_options.h"

namespace lbcsi::helper {

enum class MkfsFs : uint32_t { kExt4 = 1, kXfs = 2 };
enum class MkfsMode : uint32_t { kNew = 0, kResume = 1 };

struct SpawnerConfig {
  std::string mkfs_ext4 = "/usr/sbin/mkfs.ext4";
  std::string mkfs_xfs = "/usr/sbin/mkfs.xfs";
  std::string e2fsck = "/usr/sbin/e2fsck";
  int max_concurrent = 8;  // more simultaneous runs get RESOURCE_EXHAUSTED
};

// What a request runs; also its number on the spawner's channel.
enum class SpawnTool : uint32_t { kMkfs = 0, kPreen = 1 };

struct ToolResult {
  int exit_code = -1;       // the tool's exit status; -1 when it died of a signal
  int term_signal = 0;      // the signal that killed it, else 0
  std::string output_tail;  // the last few KiB of its stdout+stderr
};

// The argv the spawner runs for `fs` (argv[0] first, device path last); `options`
// must already pass mkfsopts::Check for `fs`.
std::vector<std::string> MkfsArgv(MkfsFs fs, MkfsMode mode = MkfsMode::kNew,
                                  const mkfsopts::MkfsOptions& options = {});
// The argv of the ext4 check before a mount.
std::vector<std::string> PreenArgv();

class Spawner {
 public:
  // Opens the three binaries (regular, executable, not group/world-writable) and forks.
  // Starts no thread in the calling process (the first RunMkfs starts one), so
  // DropCapabilities can still run afterwards.
  static absl::StatusOr<std::unique_ptr<Spawner>> Start(const SpawnerConfig& config);
  // Closes the channel; the spawner finishes running formats, then exits.
  ~Spawner();
  Spawner(const Spawner&) = delete;
  Spawner& operator=(const Spawner&) = delete;

  // Formats the block device behind `device_fd` (the caller keeps its fd).
  // Thread-safe; calls run concurrently. OK with the result whenever mkfs ran,
  // whatever its exit code. INVALID_ARGUMENT when the fd is not a block device,
  // RESOURCE_EXHAUSTED when too many formats run, UNAVAILABLE when the spawner
  // is gone, DEADLINE_EXCEEDED when `deadline` passes first (mkfs goes on).
  // `options` are checked here and again by the spawner (INVALID_ARGUMENT).
  absl::StatusOr<ToolResult> RunMkfs(MkfsFs fs, int device_fd,
                                     absl::Time deadline = absl::InfiniteFuture(),
                                     MkfsMode mode = MkfsMode::kNew,
                                     const mkfsopts::MkfsOptions& options = {});

  // Runs PreenArgv() on the ext4 filesystem behind `device_fd`; the same
  // contract as RunMkfs (OK whenever e2fsck ran, whatever its exit code).
  absl::StatusOr<ToolResult> RunPreen(int device_fd, absl::Time deadline = absl::InfiniteFuture());

  pid_t pid() const { return pid_; }

 private:
  struct Pending;
  Spawner(pid_t pid, int sock);
  absl::StatusOr<ToolResult> Run(SpawnTool tool, MkfsFs fs, MkfsMode mode,
                                 const mkfsopts::MkfsOptions& options, int device_fd,
                                 absl::Time deadline);
  void ReadResponses();

  const pid_t pid_;
  const int sock_;
  std::once_flag reader_started_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_id_ = 1;
  bool dead_ = false;
  std::map<uint64_t, std::shared_ptr<Pending>> pending_;
};

}  // namespace lbcsi::helper
