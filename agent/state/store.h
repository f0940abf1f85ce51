#pragma once
// Crash-safe per-volume records on local disk:
//   <state-dir>/volumes/<sha256(volume_id)>.json
// Written as temp file + fsync + rename + fsync(dir), so after a crash a record
// is either the old or the new version, never a torn one.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <absl/status/statusor.h>

#include "agent/state/record.h"

namespace lbcsi::agent::state {

class Store {
 public:
  // Creates the directories (mode 0700) if needed and removes leftover temp files.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& dir);

  absl::StatusOr<std::optional<VolumeRecord>> Load(std::string_view volume_id) const;
  absl::Status Save(const VolumeRecord& record);
  // Success when there was nothing to remove.
  absl::Status Remove(std::string_view volume_id);
  // Saves, or removes when the record holds nothing any more.
  absl::Status Put(const VolumeRecord& record);
  // Every record; unreadable ones are reported, not skipped silently.
  absl::StatusOr<std::vector<VolumeRecord>> LoadAll() const;

  // For a reconcile that must get past a record it cannot use: the record
  // files, one of them by name (DATA_LOSS when it is unreadable or misnamed),
  // and moving one aside to <state-dir>/quarantine/ where nothing reads it.
  absl::StatusOr<std::vector<std::string>> RecordFiles() const;
  absl::StatusOr<VolumeRecord> LoadFile(const std::string& name) const;
  absl::Status Quarantine(const std::string& name);
  std::string quarantine_dir() const;

  // Records are refused before they are written when larger than this (the
  // read side refuses the same size): one request cannot make a record that
  // wedges every later start-up.
  static constexpr size_t kMaxRecordBytes = 1 << 20;

  // The file name (without directory) a volume's record lives in.
  static std::string FileName(std::string_view volume_id);
  const std::string& volumes_dir() const { return volumes_dir_; }

 private:
  explicit Store(std::string volumes_dir) : volumes_dir_(std::move(volumes_dir)) {}
  std::string volumes_dir_;
};

}  // namespace lbcsi::agent::state
