#include "agent/state/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/sha256.h"
#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::agent::state {
namespace {

absl::Status Errno(std::string_view what, std::string_view path) {
  int e = errno;
  return absl::InternalError(Cat(what, " ", path, ": ", std::strerror(e)));
}

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return Errno("mkdir", path);
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return Errno("stat", path);
  if (!S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(Cat(path, " is not a directory"));
  return absl::OkStatus();
}

absl::Status FsyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open", dir);
  int rc = fsync(fd);
  int saved = errno;
  close(fd);
  errno = saved;
  if (rc != 0) return Errno("fsync", dir);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(path);
    return Errno("open", path);
  }
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = Errno("read", path);
      close(fd);
      return s;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > Store::kMaxRecordBytes) {
      close(fd);
      return absl::DataLossError(Cat(path, " is too large for a state record"));
    }
  }
  close(fd);
  return out;
}

}  // namespace

std::string Store::FileName(std::string_view volume_id) {
  return Cat(Sha256Hex(volume_id), ".json");
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& dir) {
  if (absl::Status s = MakeDir(dir); !s.ok()) return s;
  std::string volumes = Cat(dir, "/volumes");
  if (absl::Status s = MakeDir(volumes); !s.ok()) return s;
  // A temp file is a write that never reached its rename: the old record stands.
  DIR* d = opendir(volumes.c_str());
  if (d == nullptr) return Errno("opendir", volumes);
  std::vector<std::string> stale;
  while (dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (name.starts_with(".tmp-")) stale.emplace_back(name);
  }
  closedir(d);
  for (const std::string& name : stale) unlink(Cat(volumes, "/", name).c_str());
  return std::unique_ptr<Store>(new Store(volumes));
}

absl::StatusOr<std::optional<VolumeRecord>> Store::Load(std::string_view volume_id) const {
  std::string path = Cat(volumes_dir_, "/", FileName(volume_id));
  absl::StatusOr<std::string> text = ReadFile(path);
  if (absl::IsNotFound(text.status())) return std::optional<VolumeRecord>();
  if (!text.ok()) return text.status();
  absl::StatusOr<VolumeRecord> rec = FromJson(*text);
  if (!rec.ok()) return rec.status();
  if (rec->volume_id != volume_id) {
    return absl::DataLossError(Cat("state record ", path, " belongs to another volume"));
  }
  return std::optional<VolumeRecord>(*std::move(rec));
}

absl::Status Store::Save(const VolumeRecord& record) {
  std::string name = FileName(record.volume_id);
  std::string final_path = Cat(volumes_dir_, "/", name);
  std::string tmp_path = Cat(volumes_dir_, "/.tmp-", name);
  std::string text = ToJson(record);
  if (text.size() > kMaxRecordBytes) {
    return absl::InvalidArgumentError(Cat("the volume's state record would be ", text.size(),
                                          " bytes, more than the ", kMaxRecordBytes,
                                          " this node keeps per volume"));
  }
  int fd = open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Errno("create", tmp_path);
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = write(fd, text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = Errno("write", tmp_path);
      close(fd);
      unlink(tmp_path.c_str());
      return s;
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    absl::Status s = Errno("fsync", tmp_path);
    close(fd);
    unlink(tmp_path.c_str());
    return s;
  }
  close(fd);
  if (rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    absl::Status s = Errno("rename", tmp_path);
    unlink(tmp_path.c_str());
    return s;
  }
  return FsyncDir(volumes_dir_);
}

absl::Status Store::Remove(std::string_view volume_id) {
  std::string path = Cat(volumes_dir_, "/", FileName(volume_id));
  if (unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return Errno("unlink", path);
  }
  return FsyncDir(volumes_dir_);
}

absl::Status Store::Put(const VolumeRecord& record) {
  return record.Empty() ? Remove(record.volume_id) : Save(record);
}

absl::StatusOr<std::vector<std::string>> Store::RecordFiles() const {
  DIR* d = opendir(volumes_dir_.c_str());
  if (d == nullptr) return Errno("opendir", volumes_dir_);
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string_view name = e->d_name;
    if (name.ends_with(".json") && !name.starts_with(".")) names.emplace_back(name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<VolumeRecord> Store::LoadFile(const std::string& name) const {
  std::string path = Cat(volumes_dir_, "/", name);
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<VolumeRecord> rec = FromJson(*text);
  if (!rec.ok()) return absl::DataLossError(Cat(path, ": ", rec.status().message()));
  if (FileName(rec->volume_id) != name) {
    return absl::DataLossError(Cat(path, " is named for another volume"));
  }
  return rec;
}

std::string Store::quarantine_dir() const {
  return Cat(volumes_dir_.substr(0, volumes_dir_.rfind('/')), "/quarantine");
}

absl::Status Store::Quarantine(const std::string& name) {
  const std::string dir = quarantine_dir();
  RETURN_IF_ERROR(MakeDir(dir));
  const std::string from = Cat(volumes_dir_, "/", name);
  const std::string to = Cat(dir, "/", name);
  if (rename(from.c_str(), to.c_str()) != 0) return Errno("rename", from);
  RETURN_IF_ERROR(FsyncDir(dir));
  return FsyncDir(volumes_dir_);
}

absl::StatusOr<std::vector<VolumeRecord>> Store::LoadAll() const {
  ASSIGN_OR_RETURN(std::vector<std::string> names, RecordFiles());
  std::vector<VolumeRecord> out;
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(VolumeRecord rec, LoadFile(name));
    out.push_back(std::move(rec));
  }
  return out;
}

}  // namespace lbcsi::agent::state
