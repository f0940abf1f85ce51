#pragma once
// host:port lists as they appear in StorageClass parameters and volume ids.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <absl/status/statusor.h>

namespace lbcsi {

struct HostPort {
  std::string host;  // lowercase hostname, IPv4, or IPv6 without brackets
  uint16_t port = 0;

  // "host:port", IPv6 in brackets: "[fd00::1]:443".
  std::string ToString() const;
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

// Parses one "host:port". The host is lowercased (DNS names are case-insensitive).
absl::StatusOr<HostPort> ParseHostPort(std::string_view text);

// A cluster has a handful of management servers; a list is dialled in turn,
// so its length is bounded where it is parsed.
inline constexpr size_t kMaxEndpoints = 32;

// Parses "a:1,b:2,...": no empty items, no spaces, at most kMaxEndpoints; the result is
// de-duplicated and sorted by its string form, byte-wise (the shipped plugin's canonical order).
absl::StatusOr<std::vector<HostPort>> ParseEndpointList(std::string_view csv);

std::string JoinEndpoints(const std::vector<HostPort>& endpoints);

}  // namespace lbcsi
