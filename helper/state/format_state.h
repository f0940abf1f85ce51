#pragma once
// "Format in progress" records in --state-dir, so that a half-made filesystem
// is never mounted and a retry after a crash is recognised: format/<uuid>
// holds the fs type (UuidRecords). A record that exists while no mkfs runs in
// this process means a format was started and never finished: the one case
// where the helper formats again over a signature.

#include <optional>
#include <string>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include "helper/state/uuid_records.h"
#include "lbcsi/helper/v1/helper.pb.h"

namespace lbcsi::helper {

class FormatState {
 public:
  static absl::StatusOr<FormatState> Open(const std::string& state_dir);

  absl::Status Record(const std::string& volume_uuid, v1::FsType fs_type);
  absl::Status Clear(const std::string& volume_uuid);
  // The fs type of an unfinished format, or nullopt.
  absl::StatusOr<std::optional<v1::FsType>> Get(const std::string& volume_uuid) const;

 private:
  explicit FormatState(UuidRecords records) : records_(std::move(records)) {}
  UuidRecords records_;  // <state_dir>/format
};

}  // namespace lbcsi::helper
