#pragma once
// MkfsRunner over the confinement engineer's Spawner (helper/spawner): the
// serving process cannot exec, the spawner forked before seccomp can.

#include <memory>

#include "helper/ops/mkfs_runner.h"
#include "helper/spawner/spawner.h"

namespace lbcsi::helper {

class SpawnerMkfsRunner final : public MkfsRunner {
 public:
  explicit SpawnerMkfsRunner(std::unique_ptr<Spawner> spawner) : spawner_(std::move(spawner)) {}
  absl::Status RunMkfs(v1::FsType fs_type, int device_fd, bool resume,
                       const mkfsopts::MkfsOptions& options) override;

 private:
  std::unique_ptr<Spawner> spawner_;
};

}  // namespace lbcsi::helper
