#pragma once
// FsTools over the spawner (helper/spawner): the serving process cannot exec,
// the spawner forked before seccomp can.

#include <memory>

#include "helper/ops/fs_tools.h"
#include "helper/spawner/spawner.h"

namespace lbcsi::helper {

class SpawnerFsTools final : public FsTools {
 public:
  explicit SpawnerFsTools(std::unique_ptr<Spawner> spawner) : spawner_(std::move(spawner)) {}
  absl::Status RunMkfs(v1::FsType fs_type, int device_fd, bool resume,
                       const mkfsopts::MkfsOptions& options) override;
  absl::StatusOr<PreenResult> PreenExt4(int device_fd) override;

 private:
  std::unique_ptr<Spawner> spawner_;
};

}  // namespace lbcsi::helper
