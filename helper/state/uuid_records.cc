#include "helper/state/uuid_records.h"

#include <dirent.h>
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

// Records are one short line; anything longer was not written by the helper.
constexpr size_t kMaxRecordBytes = 512;

absl::Status MkdirP(const std::string& dir, mode_t mode, bool* created) {
  std::string cur;
  for (std::string_view part : Split(dir, '/')) {
    if (part.empty()) continue;
    cur += "/";
    cur += part;
    if (mkdir(cur.c_str(), mode) == 0) {
      if (created != nullptr && cur.size() == dir.size()) *created = true;
    } else if (errno != EEXIST) {
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

absl::StatusOr<UuidRecords> UuidRecords::Open(const std::string& state_dir, const std::string& name,
                                              bool* created) {
  if (state_dir.empty() || state_dir[0] != '/') {
    return absl::InvalidArgumentError("--state-dir must be an absolute path");
  }
  if (created != nullptr) *created = false;
  std::string dir = Cat(state_dir, "/", name);
  while (dir.size() > 1 && dir.ends_with('/')) dir.pop_back();
  RETURN_IF_ERROR(MkdirP(dir, 0700, created));
  return UuidRecords(dir);
}

absl::Status UuidRecords::Put(const std::string& volume_uuid, const std::string& line) {
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", volume_uuid));
  if (line.size() > kMaxRecordBytes || line.find('\n') != std::string::npos) {
    return absl::InvalidArgumentError("a record is one line of at most 512 bytes");
  }
  std::string path = Cat(dir_, "/", volume_uuid);
  std::string tmp = path + ".tmp";
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return absl::InternalError(Cat("create ", tmp, ": ", std::strerror(errno)));
  std::string body = Cat(line, "\n");
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

absl::Status UuidRecords::Remove(const std::string& volume_uuid) {
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", volume_uuid));
  std::string path = Cat(dir_, "/", volume_uuid);
  if (unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::InternalError(Cat("unlink ", path, ": ", std::strerror(errno)));
  }
  return FsyncDir(dir_);
}

absl::StatusOr<std::optional<std::string>> UuidRecords::Get(const std::string& volume_uuid) const {
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", volume_uuid));
  std::string path = Cat(dir_, "/", volume_uuid);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    if (errno == ENOENT) return std::optional<std::string>();
    return absl::InternalError(Cat("open ", path, ": ", std::strerror(errno)));
  }
  char buf[kMaxRecordBytes + 2];
  ssize_t n = read(fd.get(), buf, sizeof(buf));
  if (n < 0) return absl::InternalError(Cat("read ", path, ": ", std::strerror(errno)));
  std::string line(buf, static_cast<size_t>(n));
  if (line.ends_with('\n')) line.pop_back();
  if (line.size() > kMaxRecordBytes || line.find('\n') != std::string::npos) {
    return absl::DataLossError(Cat(path, ": not a record written by the helper"));
  }
  return std::optional<std::string>(std::move(line));
}

absl::StatusOr<std::map<std::string, std::string>> UuidRecords::All() const {
  std::map<std::string, std::string> out;
  DIR* d = opendir(dir_.c_str());
  if (d == nullptr) return absl::InternalError(Cat("opendir ", dir_, ": ", std::strerror(errno)));
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (ValidateUuid("", e->d_name).ok()) names.emplace_back(e->d_name);
  }
  closedir(d);
  for (const std::string& uuid : names) {
    ASSIGN_OR_RETURN(std::optional<std::string> line, Get(uuid));
    if (line) out[uuid] = *std::move(line);
  }
  return out;
}

}  // namespace lbcsi::helper
