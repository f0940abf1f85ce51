#include "tests/lightos-sim/rules.h"

#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <utility>

#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::sim {
namespace {

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
bool IsLowerAlnum(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z');
}

}  // namespace

absl::StatusOr<uint64_t> ParseSize(std::string_view text) {
  if (text.empty()) return InvalidField("size", "empty");
  size_t digits = 0;
  while (digits < text.size() && IsDigit(text[digits])) ++digits;
  if (digits == 0) return InvalidField("size", "'", text, "' does not start with a number");
  uint64_t value = 0;
  for (size_t i = 0; i < digits; ++i) {
    uint64_t d = static_cast<uint64_t>(text[i] - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - d) / 10) {
      return InvalidField("size", "'", text, "' overflows");
    }
    value = value * 10 + d;
  }
  std::string unit = ToLower(text.substr(digits));
  static const std::pair<std::string_view, uint64_t> kUnits[] = {
      {"", 1},
      {"b", 1},
      {"kib", 1ULL << 10},
      {"mib", 1ULL << 20},
      {"gib", 1ULL << 30},
      {"tib", 1ULL << 40},
      {"kb", 1000ULL},
      {"mb", 1000ULL * 1000},
      {"gb", 1000ULL * 1000 * 1000},
      {"tb", 1000ULL * 1000 * 1000 * 1000},
  };
  uint64_t multiplier = 0;
  for (const auto& [name, mult] : kUnits) {
    if (unit == name) multiplier = mult;
  }
  if (multiplier == 0) return InvalidField("size", "unknown unit in '", text, "'");
  if (value > std::numeric_limits<uint64_t>::max() / multiplier) {
    return InvalidField("size", "'", text, "' overflows");
  }
  value *= multiplier;
  if (value == 0) return InvalidField("size", "must be positive");
  if (value > std::numeric_limits<uint64_t>::max() - kSizeGranularity) {
    return InvalidField("size", "'", text, "' overflows");
  }
  return (value + kSizeGranularity - 1) / kSizeGranularity * kSizeGranularity;
}

absl::Status ValidateObjectName(std::string_view field, std::string_view name) {
  if (name.empty() || name.size() > 253) {
    return InvalidField(field, "must be 1..253 characters, got ", name.size());
  }
  for (char c : name) {
    bool ok = IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
              c == '_' || c == '.';
    if (!ok) return InvalidField(field, "'", name, "' may hold only [a-zA-Z0-9-_.]");
  }
  return absl::OkStatus();
}

absl::Status ValidateProjectName(std::string_view name) {
  if (name.empty()) return absl::OkStatus();
  bool ok = name.size() <= 63 && IsLowerAlnum(name.front()) && IsLowerAlnum(name.back());
  for (char c : name) ok = ok && (IsLowerAlnum(c) || c == '.' || c == '-');
  if (!ok) return InvalidField("projectName", "'", name, "' is not a valid project name");
  return absl::OkStatus();
}

std::string ProjectOrDefault(std::string_view name) {
  return name.empty() ? std::string("default") : std::string(name);
}

absl::StatusOr<std::vector<std::string>> NormalizeAcl(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  bool special = false;
  for (const auto& v : values) {
    if (v.empty()) return InvalidField("acl", "empty entry");
    if (v.size() > kMaxNqnBytes) {
      return InvalidField("acl", "entry of ", v.size(), " bytes exceeds ", kMaxNqnBytes);
    }
    for (char c : v) {
      if (std::iscntrl(static_cast<unsigned char>(c)) || c == ' ') {
        return InvalidField("acl", "entry holds whitespace or control characters");
      }
    }
    if (v == kAllowAny || v == kAllowNone) special = true;
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  if (special && out.size() != 1) {
    return InvalidField("acl", "ALLOW_ANY / ALLOW_NONE must be the only entry");
  }
  if (out.empty()) out.emplace_back(kAllowNone);
  return out;
}

absl::StatusOr<std::string> NormalizeCompression(std::string_view value) {
  std::string v = ToLower(value);
  if (v.empty() || v == "false" || v == "disable" || v == "disabled") return std::string("false");
  if (v == "true" || v == "enable" || v == "enabled") return std::string("true");
  return InvalidField("compression", "'", value, "' is not true/false/enable/disable");
}

bool GlobMatch(std::string_view pattern, std::string_view name) {
  return fnmatch(std::string(pattern).c_str(), std::string(name).c_str(), 0) == 0;
}

}  // namespace lbcsi::sim
