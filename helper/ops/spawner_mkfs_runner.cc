#include "helper/ops/spawner_mkfs_runner.h"

#include "common/strings.h"

namespace lbcsi::helper {

absl::Status SpawnerMkfsRunner::RunMkfs(v1::FsType fs_type, int device_fd, bool resume,
                                        const mkfsopts::MkfsOptions& options) {
  MkfsFs fs;
  if (fs_type == v1::FS_TYPE_EXT4) {
    fs = MkfsFs::kExt4;
  } else if (fs_type == v1::FS_TYPE_XFS) {
    fs = MkfsFs::kXfs;
  } else {
    return absl::InvalidArgumentError("unsupported filesystem");
  }
  // No deadline: a format is never cut short (docs/design.md rule 1).
  absl::StatusOr<MkfsResult> r = spawner_->RunMkfs(
      fs, device_fd, absl::InfiniteFuture(), resume ? MkfsMode::kResume : MkfsMode::kNew, options);
  if (!r.ok()) return r.status();
  if (r->exit_code == 0) return absl::OkStatus();
  return absl::InternalError(Cat(
      "mkfs failed (", r->term_signal ? Cat("signal ", r->term_signal) : Cat("exit ", r->exit_code),
      "): ", r->output_tail));
}

}  // namespace lbcsi::helper
