#include "volumeid/endpoints.h"

#include <algorithm>
#include <charconv>
#include "common/strings.h"

#include <cctype>

namespace lbcsi {
namespace {

bool IsHostChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' ||
         c == '%' || c == '_';
}

absl::Status Bad(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(Cat("endpoint \"", Excerpt(text), "\": ", why));
}

}  // namespace

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return Cat("[", host, "]:", port);
  return Cat(host, ":", port);
}

absl::StatusOr<HostPort> ParseHostPort(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return Bad(text, "unterminated '['");
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (rest.size() < 2 || rest.front() != ':') return Bad(text, "missing port");
    port = rest.substr(1);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return Bad(text, "missing port (want host:port)");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return Bad(text, "IPv6 addresses must be in brackets: [addr]:port");
    }
  }
  if (host.empty()) return Bad(text, "empty host");
  if (host.size() > 253) return Bad(text, "host longer than 253 bytes");
  for (char c : host) {
    if (!IsHostChar(c))
      return Bad(text, Cat("invalid character '", std::string(1, c), "' in host"));
  }
  if (port.empty() || port.size() > 5) return Bad(text, "invalid port");
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || ptr != port.data() + port.size() || value == 0 || value > 65535) {
    return Bad(text, "port must be a number from 1 to 65535");
  }
  return HostPort{ToLower(host), static_cast<uint16_t>(value)};
}

absl::StatusOr<std::vector<HostPort>> ParseEndpointList(std::string_view csv) {
  if (csv.empty()) return absl::InvalidArgumentError("endpoint list is empty");
  if (size_t items = std::count(csv.begin(), csv.end(), ',') + 1; items > kMaxEndpoints) {
    return absl::InvalidArgumentError(
        Cat("endpoint list has ", items, " items; at most ", kMaxEndpoints, " are allowed"));
  }
  std::vector<HostPort> out;
  for (std::string_view item : Split(csv, ',')) {
    if (item.empty())
      return absl::InvalidArgumentError(
          Cat("endpoint list \"", Excerpt(csv), "\" has an empty item"));
    absl::StatusOr<HostPort> hp = ParseHostPort(item);
    if (!hp.ok()) return hp.status();
    out.push_back(*std::move(hp));
  }
  std::sort(out.begin(), out.end(),
            [](const HostPort& a, const HostPort& b) { return a.ToString() < b.ToString(); });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string JoinEndpoints(const std::vector<HostPort>& endpoints) {
  std::string out;
  for (const HostPort& hp : endpoints) {
    if (!out.empty()) out += ',';
    out += hp.ToString();
  }
  return out;
}

}  // namespace lbcsi
