#pragma once
// Runs mkfs on a device fd. The production binary uses the confinement
// engineer's Spawner (forked before seccomp; fexecve of binaries opened at
// start-up); tests may use DirectMkfsRunner (plain fork + exec).
//
// One argv for both (MkfsArgv in helper/spawner/spawner.h): no shell, no
// whole-device discard, the StorageClass's checked mkfs options.

#include <absl/status/status.h>

#include "lbcsi/helper/v1/helper.pb.h"
#include "mkfsopts/mkfs_options.h"

namespace lbcsi::helper {

class MkfsRunner {
 public:
  virtual ~MkfsRunner() = default;
  // Blocks until mkfs exits. `device_fd` is open read-write on the block device.
  // `resume`: finishing the helper's own interrupted format of this type, the
  // one case where mkfs may write over the superblock it left. `options` have
  // passed mkfsopts::Check for `fs_type`.
  virtual absl::Status RunMkfs(v1::FsType fs_type, int device_fd, bool resume,
                               const mkfsopts::MkfsOptions& options) = 0;
};

// fork + execv of /usr/sbin/mkfs.<fs> on /proc/self/fd/3. Not for the confined
// binary (its seccomp filter forbids exec); for tests and unconfined tools.
class DirectMkfsRunner final : public MkfsRunner {
 public:
  absl::Status RunMkfs(v1::FsType fs_type, int device_fd, bool resume,
                       const mkfsopts::MkfsOptions& options) override;
};

}  // namespace lbcsi::helper
