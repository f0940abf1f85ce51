#include "helper/transport/loop_transport.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/logging.h"
#include "common/status.h"
#include "common/strings.h"
#include "helper/transport/blockdev.h"

namespace lbcsi::helper {
namespace {

constexpr absl::Duration kPoll = absl::Milliseconds(100);

// devtmpfs makes /dev/loopN; the helper never creates device nodes (no
// CAP_MKNOD, mknod is outside the seccomp allow-list). Wait briefly for it.
absl::Status EnsureNode(const BlockDevice& dev) {
  std::string path = Cat("/dev/", dev.name);
  for (int i = 0; i < 50; ++i) {
    struct stat st {};
    if (lstat(path.c_str(), &st) == 0) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::FailedPreconditionError(Cat(path, " did not appear (is /dev a devtmpfs?)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoopTransport>> LoopTransport::Create(
    const std::string& sim_data_dir, std::string host_nqn) {
  char buf[PATH_MAX];
  if (sim_data_dir.empty() || realpath(sim_data_dir.c_str(), buf) == nullptr) {
    return absl::FailedPreconditionError(
        Cat("--sim-data-dir ", sim_data_dir, ": ", std::strerror(errno)));
  }
  return std::unique_ptr<LoopTransport>(
      new LoopTransport(Cat(buf, "/volumes"), std::move(host_nqn)));
}

bool LoopTransport::AclAllows(const std::string& volume_uuid) const {
  std::ifstream in(Cat(volumes_dir_, "/", volume_uuid, ".acl"));
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  for (char& c : text) {
    if (c == ',' || c == '[' || c == ']' || c == '"' || c == '\n' || c == '\t' || c == '\r')
      c = ' ';
  }
  for (std::string_view tok : Split(text, ' ')) {
    if (tok == host_nqn_ || tok == "ALLOW_ANY") return true;
  }
  return false;
}

absl::StatusOr<std::optional<BlockDevice>> LoopTransport::FindDevice(
    const std::string& volume_uuid) {
  ASSIGN_OR_RETURN(std::vector<BlockDevice> all, Inventory());
  for (BlockDevice& d : all) {
    if (d.volume_uuid == volume_uuid) return std::optional<BlockDevice>(std::move(d));
  }
  return std::optional<BlockDevice>();
}

absl::StatusOr<std::vector<BlockDevice>> LoopTransport::Inventory() {
  std::vector<BlockDevice> out;
  DIR* d = opendir("/sys/block");
  if (!d) return absl::InternalError("cannot list /sys/block");
  std::string prefix = volumes_dir_ + "/";
  while (dirent* ent = readdir(d)) {
    std::string_view name = ent->d_name;
    if (!name.starts_with("loop")) continue;
    absl::StatusOr<std::string> backing = ReadSysfs(Cat("/sys/block/", name, "/loop/backing_file"));
    if (!backing.ok()) continue;  // not bound
    std::string_view rest = *backing;
    if (!ConsumePrefix(&rest, prefix) || !rest.ends_with(".img") || rest.size() != 36 + 4) continue;
    BlockDevice dev;
    dev.volume_uuid = std::string(rest.substr(0, 36));
    dev.name = std::string(name);
    if (!FillFromSysfs(&dev).ok()) continue;
    out.push_back(std::move(dev));
  }
  closedir(d);
  return out;
}

absl::StatusOr<BlockDevice> LoopTransport::Configure(const std::string& volume_uuid) {
  std::string image = Cat(volumes_dir_, "/", volume_uuid, ".img");
  UniqueFd file(open(image.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (!file.valid()) {
    return absl::FailedPreconditionError(Cat("volume file ", image, ": ", std::strerror(errno)));
  }
  UniqueFd control(open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!control.valid()) {
    return absl::FailedPreconditionError(Cat("/dev/loop-control: ", std::strerror(errno)));
  }
  for (int attempt = 0; attempt < 16; ++attempt) {
    int n = ioctl(control.get(), LOOP_CTL_GET_FREE);
    if (n < 0)
      return absl::ResourceExhaustedError(Cat("no free loop device: ", std::strerror(errno)));
    BlockDevice dev;
    dev.volume_uuid = volume_uuid;
    dev.name = Cat("loop", n);
    RETURN_IF_ERROR(FillFromSysfs(&dev));
    RETURN_IF_ERROR(EnsureNode(dev));
    ASSIGN_OR_RETURN(UniqueFd loop, OpenDevice(dev, O_RDWR));
    loop_config cfg{};
    cfg.fd = static_cast<__u32>(file.get());
    std::snprintf(reinterpret_cast<char*>(cfg.info.lo_file_name), LO_NAME_SIZE, "lbcsi:%s",
                  volume_uuid.c_str());
    if (ioctl(loop.get(), LOOP_CONFIGURE, &cfg) != 0) {
      if (errno == EBUSY) continue;  // someone else took it first
      if (errno != EINVAL && errno != ENOTTY) {
        return absl::InternalError(Cat("LOOP_CONFIGURE ", dev.name, ": ", std::strerror(errno)));
      }
      // Kernels before 5.8: the two-step form.
      if (ioctl(loop.get(), LOOP_SET_FD, file.get()) != 0) {
        if (errno == EBUSY) continue;
        return absl::InternalError(Cat("LOOP_SET_FD ", dev.name, ": ", std::strerror(errno)));
      }
      if (ioctl(loop.get(), LOOP_SET_STATUS64, &cfg.info) != 0) {
        ioctl(loop.get(), LOOP_CLR_FD, 0);
        return absl::InternalError(Cat("LOOP_SET_STATUS64: ", std::strerror(errno)));
      }
    }
    // The block layer keeps BLKROSET across LOOP_CLR_FD: start every attach
    // writable; read-only stages set it again themselves.
    int rw = 0;
    if (ioctl(loop.get(), BLKROSET, &rw) != 0) {
      return absl::InternalError(Cat("BLKROSET ", dev.name, ": ", std::strerror(errno)));
    }
    ASSIGN_OR_RETURN(dev.size_bytes, DeviceSize(loop.get()));
    LOG(kInfo, "loop device attached", {"volume", volume_uuid}, {"device", dev.name});
    return dev;
  }
  return absl::UnavailableError("loop devices kept being taken by others; retry");
}

absl::StatusOr<BlockDevice> LoopTransport::Attach(const AttachSpec& spec) {
  ASSIGN_OR_RETURN(std::optional<BlockDevice> existing, FindDevice(spec.volume_uuid));
  // Like a real target: the namespace shows up only while the ACL allows it.
  while (!AclAllows(spec.volume_uuid)) {
    if (absl::Now() + kPoll >= spec.deadline) {
      return absl::FailedPreconditionError(
          Cat("namespace of volume ", spec.volume_uuid, " never appeared: this node's host NQN ",
              host_nqn_, " is not in the volume's ACL (or the volume does not exist)"));
    }
    absl::SleepFor(kPoll);
  }
  if (existing) return *existing;
  return Configure(spec.volume_uuid);
}

absl::StatusOr<DetachResult> LoopTransport::Detach(const std::string& volume_uuid,
                                                   const std::string& /*subsystem_nqn*/) {
  DetachResult result;
  ASSIGN_OR_RETURN(std::optional<BlockDevice> dev, FindDevice(volume_uuid));
  if (!dev) return result;
  ASSIGN_OR_RETURN(std::string busy, InUseReason(*dev));
  if (!busy.empty()) {
    return absl::FailedPreconditionError(
        Cat("volume ", volume_uuid, " (", dev->name, ") is in use: ", busy));
  }
  ASSIGN_OR_RETURN(UniqueFd loop, OpenDevice(*dev, O_RDONLY));
  int rw = 0;
  ioctl(loop.get(), BLKROSET, &rw);  // do not hand a read-only loop device to the next user
  if (ioctl(loop.get(), LOOP_CLR_FD, 0) != 0 && errno != ENXIO) {
    return absl::FailedPreconditionError(
        Cat("LOOP_CLR_FD ", dev->name, ": ", std::strerror(errno)));
  }
  loop.Reset();  // the kernel finishes the clear when the last opener closes
  for (int i = 0; i < 50; ++i) {
    if (!ReadSysfs(Cat("/sys/block/", dev->name, "/loop/backing_file")).ok()) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  result.was_attached = true;
  LOG(kInfo, "loop device detached", {"volume", volume_uuid}, {"device", dev->name});
  return result;
}

absl::Status LoopTransport::RefreshSize(const BlockDevice& device) {
  ASSIGN_OR_RETURN(UniqueFd loop, OpenDevice(device, O_RDONLY));
  if (ioctl(loop.get(), LOOP_SET_CAPACITY, 0) != 0) {
    return absl::InternalError(Cat("LOOP_SET_CAPACITY ", device.name, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace lbcsi::helper
