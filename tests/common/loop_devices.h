#pragma once
// Loop devices a test created, found by their backing files (so a test can check it leaks
// none and free what a failed run left behind).

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace lbcsi::testing {

struct LoopDevice {
  std::string name;     // loopN
  std::string backing;  // the backing file's path
};

// Loop devices whose backing file path starts with `prefix`.
inline std::vector<LoopDevice> LoopDevicesBackedBy(const std::string& prefix) {
  std::vector<LoopDevice> out;
  std::error_code ec;
  for (const auto& ent : std::filesystem::directory_iterator("/sys/block", ec)) {
    std::string name = ent.path().filename();
    if (!name.starts_with("loop")) continue;
    std::ifstream bf(ent.path() / "loop/backing_file");
    std::string backing;
    std::getline(bf, backing);
    if (backing.starts_with(prefix)) out.push_back({name, backing});
  }
  return out;
}

// Detaches one (made writable first: the helper may have set it read-only).
inline void ClearLoopDevice(const std::string& name) {
  int fd = open(("/dev/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  int ro = 0;
  ioctl(fd, BLKROSET, &ro);
  ioctl(fd, LOOP_CLR_FD, 0);
  close(fd);
}

}  // namespace lbcsi::testing
