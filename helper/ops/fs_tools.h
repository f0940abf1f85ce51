#pragma once
// The filesystem tools the helper runs: mkfs to format, e2fsck -p before an
// ext4 mount. The serving process cannot exec (its seccomp filter forbids it),
// so production runs them through the spawner forked before the filter
// (SpawnerFsTools); the interface keeps HelperService free of that detail.
//
// Fixed argvs (MkfsArgv, PreenArgv in helper/spawner/spawner.h): no shell, no
// whole-device discard, only the StorageClass's checked mkfs options.

#include <string>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include "lbcsi/helper/v1/helper.pb.h"
#include "mkfsopts/mkfs_options.h"

namespace lbcsi::helper {

// A preen that found the filesystem clean or repaired it (docs/design.md
// "Filesystem check before mount").
struct PreenResult {
  bool repaired = false;    // e2fsck changed something (exit 1 or 2)
  std::string output_tail;  // what it said, for the log and the volume condition
};

class FsTools {
 public:
  virtual ~FsTools() = default;
  // Blocks until mkfs exits. `device_fd` is open read-write on the block device.
  // `resume`: finishing the helper's own interrupted format of this type, the
  // one case where mkfs may write over the superblock it left. `options` have
  // passed mkfsopts::Check for `fs_type`.
  virtual absl::Status RunMkfs(v1::FsType fs_type, int device_fd, bool resume,
                               const mkfsopts::MkfsOptions& options) = 0;

  // e2fsck -p on the unmounted ext4 filesystem behind `device_fd`: replays its
  // journal and repairs what is safe to repair unattended. FAILED_PRECONDITION
  // when it finds damage it leaves for a person (the filesystem is then not
  // mounted), INTERNAL when e2fsck itself fails.
  virtual absl::StatusOr<PreenResult> PreenExt4(int device_fd) = 0;
};

}  // namespace lbcsi::helper
