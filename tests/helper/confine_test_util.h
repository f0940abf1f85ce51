#pragma once
// Test helpers shared by the confinement and spawner tests: a loop device over
// a sparse temp file, a libblkid probe, and the root-or-skip rule.

#include <blkid/blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace lbcsi::helper::testing {

// A test needing root skips with a reason, except under CI=true where it fails.
#define LBCSI_REQUIRE_ROOT()                                                    \
  do {                                                                          \
    if (geteuid() != 0) {                                                       \
      const char* ci = std::getenv("CI");                                       \
      if (ci != nullptr && std::string(ci) == "true") {                         \
        FAIL() << "this test needs root (loop devices, mounts) and CI=true";    \
      }                                                                         \
      GTEST_SKIP() << "needs root: loop devices, mounts or PID 1's namespaces"; \
    }                                                                           \
  } while (false)

// A loop device backed by a sparse file; detached (autoclear) and removed on destruction.
class TempLoopDevice {
 public:
  // Empty path() on failure; error() says why.
  explicit TempLoopDevice(off_t size) {
    char tmpl[] = "/tmp/lbcsi-confine-img-XXXXXX";
    const int backing = mkostemp(tmpl, O_CLOEXEC);
    if (backing < 0) {
      Fail("mkostemp");
      return;
    }
    image_ = tmpl;
    if (ftruncate(backing, size) != 0) {
      Fail("ftruncate", backing);
      return;
    }
    const int control = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (control < 0) {
      Fail("open /dev/loop-control", backing);
      return;
    }
    for (int attempt = 0; attempt < 20 && fd_ < 0; ++attempt) {
      const int n = ioctl(control, LOOP_CTL_GET_FREE);
      if (n < 0) break;
      std::string path = "/dev/loop" + std::to_string(n);
      const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) continue;
      loop_config config{};
      config.fd = static_cast<uint32_t>(backing);
      config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
      if (ioctl(fd, LOOP_CONFIGURE, &config) == 0) {
        fd_ = fd;
        path_ = path;
      } else {
        close(fd);  // taken by someone else meanwhile: try the next free one
      }
    }
    close(control);
    close(backing);
    if (fd_ < 0) error_ = "no free loop device could be configured";
  }
  ~TempLoopDevice() {
    if (fd_ >= 0) {
      ioctl(fd_, LOOP_CLR_FD, 0);
      close(fd_);
    }
    if (!image_.empty()) unlink(image_.c_str());
  }
  TempLoopDevice(const TempLoopDevice&) = delete;
  TempLoopDevice& operator=(const TempLoopDevice&) = delete;

  const std::string& path() const { return path_; }
  int fd() const { return fd_; }
  const std::string& error() const { return error_; }

 private:
  void Fail(const char* what, int close_fd = -1) {
    error_ = std::string(what) + ": " + strerror(errno);
    if (close_fd >= 0) close(close_fd);
  }
  std::string image_;
  std::string path_;
  std::string error_;
  int fd_ = -1;
};

// The TYPE libblkid's superblock probe finds on `fd`, "" when blank, "error" on failure.
inline std::string ProbeType(int fd) {
  blkid_probe pr = blkid_new_probe();
  if (pr == nullptr) return "error";
  std::string type;
  if (blkid_probe_set_device(pr, fd, 0, 0) != 0) {
    type = "error";
  } else {
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
    const int rc = blkid_do_safeprobe(pr);
    const char* value = nullptr;
    if (rc == 0 && blkid_probe_lookup_value(pr, "TYPE", &value, nullptr) == 0) {
      type = value;
    } else if (rc < 0) {
      type = "error";
    }
  }
  blkid_free_probe(pr);
  return type;
}

}  // namespace lbcsi::helper::testing
