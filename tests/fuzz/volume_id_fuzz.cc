// Fuzzes the volume/snapshot id codec: parsing must never crash, and whatever
// parses must format back to an id that parses to the same value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "volumeid/resource_id.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<lbcsi::ResourceId> id = lbcsi::ParseResourceId(input);
  if (!id.ok()) return 0;
  absl::StatusOr<std::string> formatted = lbcsi::FormatResourceId(*id);
  if (!formatted.ok()) return 0;  // e.g. over 128 bytes: parse-only is allowed
  if (formatted->size() > lbcsi::kCsiMaxIdBytes) std::abort();
  absl::StatusOr<lbcsi::ResourceId> again = lbcsi::ParseResourceId(*formatted);
  if (!again.ok() || !(*again == *id)) std::abort();
  return 0;
}
