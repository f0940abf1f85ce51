#include "helper/ops/spawner_fs_tools.h"

#include "common/strings.h"

namespace lbcsi::helper {
namespace {

std::string HowItEnded(const ToolResult& r) {
  return r.term_signal ? Cat("signal ", r.term_signal) : Cat("exit ", r.exit_code);
}

}  // namespace

absl::Status SpawnerFsTools::RunMkfs(v1::FsType fs_type, int device_fd, bool resume,
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
  absl::StatusOr<ToolResult> r = spawner_->RunMkfs(
      fs, device_fd, absl::InfiniteFuture(), resume ? MkfsMode::kResume : MkfsMode::kNew, options);
  if (!r.ok()) return r.status();
  if (r->exit_code == 0) return absl::OkStatus();
  return absl::InternalError(Cat("mkfs failed (", HowItEnded(*r), "): ", r->output_tail));
}

absl::StatusOr<PreenResult> SpawnerFsTools::PreenExt4(int device_fd) {
  // No deadline either: a repair cut short is worse than a slow stage.
  absl::StatusOr<ToolResult> r = spawner_->RunPreen(device_fd);
  if (!r.ok()) return r.status();
  // e2fsck's exit status is a bit set: 1 and 2 mean it repaired (2 asks for a
  // reboot, which matters only for a mounted root filesystem), 4 means it left
  // errors alone, 8 and above mean it could not do its work.
  if (r->term_signal == 0 && (r->exit_code == 0 || r->exit_code == 1 || r->exit_code == 2)) {
    return PreenResult{r->exit_code != 0, r->output_tail};
  }
  if (r->term_signal == 0 && r->exit_code == 4) {
    return absl::FailedPreconditionError(
        Cat("e2fsck -p found damage it does not repair unattended; the filesystem was not "
            "mounted. Repair it by hand (e2fsck without -p) or restore the volume: ",
            r->output_tail));
  }
  return absl::InternalError(Cat("e2fsck -p failed (", HowItEnded(*r), "): ", r->output_tail));
}

}  // namespace lbcsi::helper
