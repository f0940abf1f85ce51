#include "helper/transport/blockdev.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>

#include "common/status.h"
#include "common/strings.h"
#include "helper/paths/mountinfo.h"

namespace lbcsi::helper {

absl::StatusOr<std::string> ReadSysfs(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    if (errno == ENOENT || errno == ENODEV) return absl::NotFoundError(Cat(path, ": absent"));
    return absl::InternalError(Cat("open ", path, ": ", std::strerror(errno)));
  }
  char buf[4096];
  ssize_t n = read(fd.get(), buf, sizeof(buf) - 1);
  if (n < 0) {
    if (errno == ENODEV || errno == ENXIO) return absl::NotFoundError(Cat(path, ": gone"));
    return absl::InternalError(Cat("read ", path, ": ", std::strerror(errno)));
  }
  std::string s(buf, static_cast<size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

absl::Status WriteSysfs(const std::string& path, std::string_view value) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return absl::InternalError(Cat("open ", path, ": ", std::strerror(errno)));
  if (write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return absl::InternalError(Cat("write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status FillFromSysfs(BlockDevice* device, std::string_view sysfs_root) {
  std::string base = Cat(sysfs_root, "/block/", device->name);
  ASSIGN_OR_RETURN(std::string devnum, ReadSysfs(base + "/dev"));
  std::vector<std::string_view> mm = Split(devnum, ':');
  if (mm.size() != 2) return absl::InternalError(Cat(base, "/dev: unexpected ", devnum));
  device->dev = makedev(std::stoul(std::string(mm[0])), std::stoul(std::string(mm[1])));
  ASSIGN_OR_RETURN(std::string sectors, ReadSysfs(base + "/size"));
  device->size_bytes = std::stoull(sectors) * 512;
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> OpenDevice(const BlockDevice& device, int flags) {
  std::string path = Cat("/dev/", device.name);
  UniqueFd fd(open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    return absl::FailedPreconditionError(Cat("open ", path, ": ", std::strerror(errno)));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISBLK(st.st_mode) || st.st_rdev != device.dev) {
    return absl::FailedPreconditionError(
        Cat(path, " is not the block device ", major(device.dev), ":", minor(device.dev)));
  }
  return fd;
}

absl::StatusOr<uint64_t> DeviceSize(int fd) {
  uint64_t size = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) != 0) {
    return absl::InternalError(Cat("BLKGETSIZE64: ", std::strerror(errno)));
  }
  return size;
}

absl::StatusOr<std::string> InUseReason(const BlockDevice& device) {
  ASSIGN_OR_RETURN(std::vector<MountEntry> entries, ReadMountInfo());
  for (const MountEntry& e : entries) {
    if (e.dev == device.dev) return Cat("mounted at ", e.mount_point);
    // A bind mount of the device node: devtmpfs with the node as its root.
    if (e.fs_type == "devtmpfs" && e.root == Cat("/", device.name)) {
      return Cat("device node bound at ", e.mount_point);
    }
  }
  std::string holders = Cat("/sys/block/", device.name, "/holders");
  if (DIR* d = opendir(holders.c_str())) {
    std::string held;
    while (dirent* ent = readdir(d)) {
      if (ent->d_name[0] != '.') held = ent->d_name;
    }
    closedir(d);
    if (!held.empty()) return Cat("held by ", held);
  }
  return std::string();
}

}  // namespace lbcsi::helper
