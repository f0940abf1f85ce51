#include "helper/ops/format_state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/status.h"
#include "common/strings.h"
#include "helper/fd.h"
#include "helper/validate.h"

namespace lbcsi::helper {
namespace {

absl::Status MkdirP(const std::string& dir, mode_t mode) {
  std::string cur;
  for (std::string_view part : Split(dir, '/')) {
    if (part.empty()) continue;
    cur += "/";
    cur += part;
    if (mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) {
      return absl::InternalError(Cat("mkdir ", cur, ": ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

absl::Status FsyncDir(const std::string& dir) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid() || fsync(fd.get()) != 0) {
    return absl::InternalError(Cat("fsync ", dir, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FormatState> FormatState::Open(const std::string& state_dir) {
  if (state_dir.empty() || state_dir[0] != '/') {
    return absl::InvalidArgumentError("--state-dir must be an absolute path");
  }
  std::string dir = state_dir + "/format";
  RETURN_IF_ERROR(MkdirP(dir, 0700));
  return FormatState(dir);
}

absl::Status FormatState::Record(const std::string& volume_uuid, v1::FsType fs_type) {
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", volume_uuid));
  std::string path = Cat(dir_, "/", volume_uuid);
  std::string tmp = path + ".tmp";
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return absl::InternalError(Cat("create ", tmp, ": ", std::strerror(errno)));
  std::string body = Cat(FsTypeName(fs_type), "\n");
  if (write(fd.get(), body.data(), body.size()) != static_cast<ssize_t>(body.size()) ||
      fsync(fd.get()) != 0) {
    return absl::InternalError(Cat("write ", tmp, ": ", std::strerror(errno)));
  }
  fd.Reset();
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(Cat("rename ", tmp, ": ", std::strerror(errno)));
  }
  return FsyncDir(dir_);
}

absl::Status FormatState::Clear(const std::string& volume_uuid) {
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", volume_uuid));
  std::string path = Cat(dir_, "/", volume_uuid);
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(Cat("unlink ", path, ": ", std::strerror(errno)));
  }
  return FsyncDir(dir_);
}

absl::StatusOr<std::optional<v1::FsType>> FormatState::Get(const std::string& volume_uuid) const {
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", volume_uuid));
  std::string path = Cat(dir_, "/", volume_uuid);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    if (errno == ENOENT) return std::optional<v1::FsType>();
    return absl::InternalError(Cat("open ", path, ": ", std::strerror(errno)));
  }
  char buf[16] = {0};
  ssize_t n = read(fd.get(), buf, sizeof(buf) - 1);
  std::string_view v(buf, n > 0 ? static_cast<size_t>(n) : 0);
  if (v.starts_with("ext4")) return std::optional<v1::FsType>(v1::FS_TYPE_EXT4);
  if (v.starts_with("xfs")) return std::optional<v1::FsType>(v1::FS_TYPE_XFS);
  // Unknown content still means "unfinished": report something non-empty.
  return std::optional<v1::FsType>(v1::FS_TYPE_UNSPECIFIED);
}

}  // namespace lbcsi::helper
