#pragma once
// Small helpers the programs that run in the VM guest share (vm_helper_nvme,
// vm_helper_crypt, vm_csi_lifecycle, vm_bench_node_stage): the guest's environment,
// files and sysfs, shell commands (nvmet.sh, cryptsetup) and what they print.
// Header-only and without gtest, so the benchmark can use it too.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace lbcsi::vmtest {

// An environment variable, "" when unset.
inline std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

inline std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The first line, without its newline (a sysfs attribute).
inline std::string ReadLine(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string s;
  std::getline(in, s);
  return s;
}

inline std::string NewUuid() {
  return ReadLine("/proc/sys/kernel/random/uuid");
}

// Runs a bash snippet with nvmet.sh sourced; true on exit status 0. The snippet goes
// inside single quotes, so it must not hold any.
inline bool Nvmet(const std::string& script) {
  const std::string nvmet = Env("LBCSI_SOURCE_DIR") + "/tests/vm/nvmet.sh";
  const std::string cmd = "bash -euc '. \"" + nvmet + "\"; " + script + "'";
  return std::system(cmd.c_str()) == 0;
}

// stdout and stderr of a shell command, /sbin on PATH.
inline std::string Capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(("PATH=/usr/sbin:/sbin:$PATH " + cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  pclose(p);
  return out;
}

// The volume key size in a `cryptsetup luksDump` (the key slot's "Key:" line), 0 if absent.
inline int VolumeKeyBits(const std::string& dump) {
  std::istringstream in(dump);
  for (std::string line; std::getline(in, line);) {
    size_t k = line.find_first_not_of(" \t");
    if (k != std::string::npos && line.compare(k, 4, "Key:") == 0) {
      return std::atoi(line.c_str() + k + 4);
    }
  }
  return 0;
}

// Controllers (nvme<N>) of a subsystem, with their states.
inline std::vector<std::pair<std::string, std::string>> ControllersOf(const std::string& nqn) {
  std::vector<std::pair<std::string, std::string>> out;
  std::error_code ec;
  for (const auto& c : std::filesystem::directory_iterator("/sys/class/nvme", ec)) {
    if (ReadLine(c.path() / "subsysnqn") == nqn) {
      out.emplace_back(c.path().filename().string(), ReadLine(c.path() / "state"));
    }
  }
  return out;
}

// Disconnects every controller of a subsystem (clean-up after a test or a bare connect).
inline void DeleteControllers(const std::string& nqn) {
  for (const auto& [name, state] : ControllersOf(nqn)) {
    std::ofstream("/sys/class/nvme/" + name + "/delete_controller") << "1";
  }
}

// Writes `payload` to `file`, fsyncs, drops the file's cached pages and reads it back, so
// both directions reach the device. Returns "" or what went wrong.
inline std::string WriteAndVerify(const std::string& file, const std::string& payload) {
  int fd = open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return "open " + file + ": " + std::strerror(errno);
  std::string err;
  if (write(fd, payload.data(), payload.size()) != static_cast<ssize_t>(payload.size())) {
    err = std::string("write: ") + std::strerror(errno);
  } else if (fsync(fd) != 0) {
    err = std::string("fsync: ") + std::strerror(errno);
  } else if (posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) {
    err = "fadvise failed";  // the read below must come from the device
  } else {
    std::string back(payload.size(), '\0');
    if (pread(fd, back.data(), back.size(), 0) != static_cast<ssize_t>(back.size())) {
      err = std::string("read: ") + std::strerror(errno);
    } else if (back != payload) {
      err = "read back different data";
    }
  }
  close(fd);
  return err;
}
inline std::string WriteAndVerify(const std::string& file, size_t bytes, char fill) {
  return WriteAndVerify(file, std::string(bytes, fill));
}

}  // namespace lbcsi::vmtest
