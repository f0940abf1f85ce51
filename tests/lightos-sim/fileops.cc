#include "tests/lightos-sim/fileops.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "common/strings.h"

namespace lbcsi::sim {
namespace {

absl::Status Errno(std::string_view what, const std::string& path) {
  int err = errno;
  return absl::InternalError(Cat(what, " ", path, ": ", std::strerror(err)));
}

// Closes a descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::Status CopyRange(int in, int out, off_t start, off_t end, const std::string& src) {
  off_t in_off = start, out_off = start;
  bool use_cfr = true;
  std::vector<char> buf;
  while (in_off < end) {
    size_t want = static_cast<size_t>(std::min<off_t>(end - in_off, 64 << 20));
    if (use_cfr) {
      ssize_t n = copy_file_range(in, &in_off, out, &out_off, want, 0);
      if (n > 0) continue;
      if (n == 0) break;
      if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP) {
        return Errno("copy_file_range from", src);
      }
      use_cfr = false;  // fall back to plain reads and writes
    }
    buf.resize(std::min<size_t>(want, 1 << 20));
    ssize_t n = pread(in, buf.data(), buf.size(), in_off);
    if (n < 0) return Errno("read", src);
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = pwrite(out, buf.data() + done, static_cast<size_t>(n - done), out_off + done);
      if (w < 0) return Errno("write copy of", src);
      done += w;
    }
    in_off += n;
    out_off += n;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status AtomicWriteFile(const std::string& path, const std::string& content, unsigned mode) {
  std::string tmp = Cat(path, ".tmp.", getpid());
  {
    Fd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (fd.get() < 0) return Errno("create", tmp);
    for (size_t done = 0; done < content.size();) {
      ssize_t n = write(fd.get(), content.data() + done, content.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Errno("write", tmp);
      }
      done += static_cast<size_t>(n);
    }
    if (fsync(fd.get()) != 0) return Errno("fsync", tmp);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) return Errno("rename to", path);
  std::string dir = std::filesystem::path(path).parent_path().string();
  Fd dfd(open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0) fsync(dfd.get());
  return absl::OkStatus();
}

absl::Status CreateSparseFile(const std::string& path, uint64_t size) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return Errno("create", path);
  if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return Errno("truncate", path);
  return absl::OkStatus();
}

absl::Status GrowFile(const std::string& path, uint64_t size) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Errno("stat", path);
  if (static_cast<uint64_t>(st.st_size) >= size) return absl::OkStatus();
  if (truncate(path.c_str(), static_cast<off_t>(size)) != 0) return Errno("grow", path);
  return absl::OkStatus();
}

absl::Status SparseCopy(const std::string& src, const std::string& dst, uint64_t size) {
  Fd in(open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return Errno("open", src);
  struct stat st {};
  if (fstat(in.get(), &st) != 0) return Errno("stat", src);
  Fd out(open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (out.get() < 0) return Errno("create", dst);
  off_t end = st.st_size;
  if (ioctl(out.get(), FICLONE, in.get()) != 0) {
    // No reflink here: copy extent by extent so holes stay holes.
    off_t pos = 0;
    while (pos < end) {
      off_t data = lseek(in.get(), pos, SEEK_DATA);
      if (data < 0) {
        if (errno == ENXIO) break;  // only a hole remains
        if (errno == EINVAL) {      // no SEEK_DATA support: copy everything
          if (auto s = CopyRange(in.get(), out.get(), pos, end, src); !s.ok()) return s;
          break;
        }
        return Errno("seek data in", src);
      }
      off_t hole = lseek(in.get(), data, SEEK_HOLE);
      if (hole < 0) hole = end;
      if (auto s = CopyRange(in.get(), out.get(), data, hole, src); !s.ok()) return s;
      pos = hole;
    }
  }
  off_t final_size = std::max<off_t>(end, static_cast<off_t>(size));
  if (ftruncate(out.get(), final_size) != 0) return Errno("truncate", dst);
  if (fsync(out.get()) != 0) return Errno("fsync", dst);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> WrittenBytes(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Errno("open", path);
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return Errno("stat", path);
  uint64_t allocated = static_cast<uint64_t>(st.st_blocks) * 512;
  off_t data = lseek(fd.get(), 0, SEEK_DATA);
  // Some filesystems report data without blocks (inline or delayed allocation).
  if (data >= 0 && data < st.st_size && allocated == 0) allocated = 4096;
  return std::min<uint64_t>(allocated, static_cast<uint64_t>(st.st_size));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(Cat("cannot read ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace lbcsi::sim
