#pragma once
// A directory of small per-volume records kept by the helper in --state-dir:
// one file per volume UUID holding one line of text, written atomically
// (temp file, fsync, rename, fsync of the directory) so a crash leaves either
// the old record or the new one. The format records and the attach registry
// are both kept this way.

#include <map>
#include <optional>
#include <string>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

namespace lbcsi::helper {

class UuidRecords {
 public:
  // Creates <state_dir>/<name> (0700) when missing. `created` (optional) tells
  // whether it was missing, e.g. to seed a new registry once.
  static absl::StatusOr<UuidRecords> Open(const std::string& state_dir, const std::string& name,
                                          bool* created = nullptr);

  absl::Status Put(const std::string& volume_uuid, const std::string& line);
  absl::Status Remove(const std::string& volume_uuid);  // OK when absent
  absl::StatusOr<std::optional<std::string>> Get(const std::string& volume_uuid) const;
  // Every record (uuid -> line); files that are not records (temp files) are skipped.
  absl::StatusOr<std::map<std::string, std::string>> All() const;

  const std::string& dir() const { return dir_; }

 private:
  explicit UuidRecords(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace lbcsi::helper
