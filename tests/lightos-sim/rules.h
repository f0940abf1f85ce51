#pragma once
// Input rules a LightOS cluster applies to requests (reference/lightos-api.md),
// as pure functions so they can be tested without a server.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

namespace lbcsi::sim {

inline constexpr std::string_view kAllowAny = "ALLOW_ANY";
inline constexpr std::string_view kAllowNone = "ALLOW_NONE";
inline constexpr uint64_t kSizeGranularity = 4096;  // "The cluster rounds sizes up to 4 KiB."
inline constexpr size_t kMaxNqnBytes = 223;         // "NQNs are at most 223 bytes."

// Accepts "<bytes>b" (create), plain decimal bytes (update), and binary/decimal
// units ("10GiB", "5MB"). Returns bytes rounded up to kSizeGranularity; zero is invalid.
absl::StatusOr<uint64_t> ParseSize(std::string_view text);

// Volume/snapshot names: ^[a-zA-Z0-9-_.]{1,253}$
absl::Status ValidateObjectName(std::string_view field, std::string_view name);
// Project names: ^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$ ; empty means "default".
absl::Status ValidateProjectName(std::string_view name);
std::string ProjectOrDefault(std::string_view name);

// ACL values: host NQNs, or exactly one of ALLOW_ANY / ALLOW_NONE. An empty list
// becomes {ALLOW_NONE}; duplicates are removed, order kept.
absl::StatusOr<std::vector<std::string>> NormalizeAcl(const std::vector<std::string>& values);

// Volume compression: "true"/"false", also enable(d)/disable(d); empty means "false".
absl::StatusOr<std::string> NormalizeCompression(std::string_view value);

// True when `name` matches the shell glob `pattern` (fnmatch).
bool GlobMatch(std::string_view pattern, std::string_view name);

}  // namespace lbcsi::sim
