#pragma once
// Opaque pagination tokens for ListVolumes / ListSnapshots: which configured
// cluster the listing is in and the last UUID returned there. Listings are
// ordered by UUID, so a token stays meaningful when objects come and go.
// A token that does not decode is ABORTED (the spec's "invalid starting_token").

#include <cstddef>
#include <string>
#include <string_view>

#include <absl/status/statusor.h>

namespace lbcsi::controller {

struct ListPosition {
  size_t cluster = 0;      // index into the configured (or requested) cluster list
  std::string after_uuid;  // empty: from the start of that cluster
};

std::string EncodeListToken(const ListPosition& pos);
// ABORTED when malformed or when `cluster` is not below `cluster_count`.
absl::StatusOr<ListPosition> DecodeListToken(std::string_view token, size_t cluster_count);

}  // namespace lbcsi::controller
