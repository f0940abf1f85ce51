#pragma once
// Runs mkfs on a device fd. The production binary uses the confinement
// engineer's Spawner (forked before seccomp; fexecve of binaries opened at
// start-up); tests may use DirectMkfsRunner (plain fork + exec).
//
// Fixed argv, no shell, no whole-device discard:
//   ext4: mkfs.ext4 -q -E nodiscard,lazy_itable_init=1 <dev>
//   xfs:  mkfs.xfs -q -K <dev>   (-f added when `resume`: see helper/spawner/spawner.h)

#include <absl/status/status.h>

#include "lbcsi/helper/v1/helper.pb.h"

namespace lbcsi::helper {

class MkfsRunner {
 public:
  virtual ~MkfsRunner() = default;
  // Blocks until mkfs exits. `device_fd` is open read-write on the block device.
  // `resume`: finishing the helper's own interrupted format of this type, the
  // one case where mkfs may write over the superblock it left.
  virtual absl::Status RunMkfs(v1::FsType fs_type, int device_fd, bool resume) = 0;
};

// fork + execv of /usr/sbin/mkfs.<fs> on /proc/self/fd/3. Not for the confined
// binary (its seccomp filter forbids exec); for tests and unconfined tools.
class DirectMkfsRunner final : public MkfsRunner {
 public:
  absl::Status RunMkfs(v1::FsType fs_type, int device_fd, bool resume) override;
};

}  // namespace lbcsi::helper
