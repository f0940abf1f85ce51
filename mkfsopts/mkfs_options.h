#pragma once
// mkfs tunables a StorageClass may set (docs/design.md "mkfs options"). One
// definition for every layer: the controller parses them from StorageClass
// parameters and copies them into the volume context, the agent parses them
// from there, and the helper and its spawner check the typed values again
// before they become mkfs arguments. Values are plain decimal byte counts or
// enabled/disabled; nothing a request says reaches mkfs as text.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

namespace lbcsi::mkfsopts {

inline constexpr char kBlockSize[] = "mkfs-block-size";
inline constexpr char kInodeSize[] = "mkfs-inode-size";
inline constexpr char kBytesPerInode[] = "mkfs-bytes-per-inode";  // ext4 only
inline constexpr char kClusterSize[] = "mkfs-ext4-cluster-size";  // ext4 only (bigalloc)
inline constexpr char kXfsReflink[] = "mkfs-xfs-reflink";         // xfs only
inline constexpr char kXfsCrc[] = "mkfs-xfs-crc";                 // xfs only
inline constexpr std::string_view kKeyPrefix = "mkfs-";

enum class Fs { kAny, kExt4, kXfs };  // kAny: not known yet (block or unset fs type)
enum class Switch : uint32_t { kDefault = 0, kOn = 1, kOff = 2 };

struct MkfsOptions {
  uint32_t block_size = 0;       // bytes; 0 everywhere means "mkfs's default"
  uint32_t inode_size = 0;       // bytes
  uint32_t bytes_per_inode = 0;  // ext4 -i
  uint32_t cluster_size = 0;     // ext4 -C with the bigalloc feature
  Switch xfs_reflink = Switch::kDefault;
  Switch xfs_crc = Switch::kDefault;

  bool empty() const { return *this == MkfsOptions{}; }
  bool operator==(const MkfsOptions&) const = default;
};

// Parses the mkfs-* keys that `lookup` finds (it returns nullopt for an absent
// key). An unknown mkfs-* key is refused rather than ignored, so a misspelt
// option never silently formats with defaults. INVALID_ARGUMENT starts with the
// key (callers add where it came from) and never echoes more than an excerpt
// of a value.
using Lookup = std::function<std::optional<std::string_view>(std::string_view key)>;
absl::StatusOr<MkfsOptions> Parse(const std::vector<std::string_view>& present_keys,
                                  const Lookup& lookup);

// Parse over any map with find() (std::map, google::protobuf::Map).
template <typename MapT>
absl::StatusOr<MkfsOptions> ParseMap(const MapT& params) {
  std::vector<std::string_view> keys;
  for (const auto& entry : params) {
    if (std::string_view(entry.first).starts_with(kKeyPrefix)) keys.emplace_back(entry.first);
  }
  return Parse(keys, [&params](std::string_view key) -> std::optional<std::string_view> {
    auto it = params.find(std::string(key));
    if (it == params.end()) return std::nullopt;
    return std::string_view(it->second);
  });
}

// `status` (from Parse or Check, so its message starts with the key) with the
// key placed under `where`: "parameters" gives "parameters.mkfs-block-size: ...".
absl::Status Under(std::string_view where, const absl::Status& status);

// Ranges, and that every set option applies to `fs` (for kAny: to ext4 or to
// xfs). INVALID_ARGUMENT names the option.
absl::Status Check(const MkfsOptions& options, Fs fs);

// The options as mkfs-* keys in their canonical spelling (only those set).
std::map<std::string, std::string> ToKeys(const MkfsOptions& options);

// The mkfs arguments for options already accepted by Check(options, fs), to go
// before the device argument. `fs` must be kExt4 or kXfs.
std::vector<std::string> Arguments(const MkfsOptions& options, Fs fs);

}  // namespace lbcsi::mkfsopts
