#pragma once
// An owned file descriptor, closed on destruction.

#include <unistd.h>

#include <string>
#include <utility>

#include "common/strings.h"

namespace lbcsi::helper {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  // "/proc/self/fd/N": how the kernel is handed an object we already opened safely.
  std::string ProcPath() const { return Cat("/proc/self/fd/", fd_); }

 private:
  int fd_ = -1;
};

}  // namespace lbcsi::helper
