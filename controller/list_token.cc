#include "controller/list_token.h"

#include <charconv>

#include "common/strings.h"
#include "volumeid/resource_id.h"

namespace lbcsi::controller {
namespace {
constexpr std::string_view kPrefix = "lbcsi1.";
absl::Status Bad(std::string_view token) {
  return absl::AbortedError(Cat("starting_token \"", token.substr(0, 64),
                                "\" is not a token this driver issued; start the listing again"));
}
}  // namespace

std::string EncodeListToken(const ListPosition& pos) {
  return Cat(kPrefix, pos.cluster, ".", pos.after_uuid);
}

absl::StatusOr<ListPosition> DecodeListToken(std::string_view token, size_t cluster_count) {
  std::string_view rest = token;
  if (!ConsumePrefix(&rest, kPrefix)) return Bad(token);
  size_t dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0) return Bad(token);
  ListPosition pos;
  auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + dot, pos.cluster);
  if (ec != std::errc() || ptr != rest.data() + dot || pos.cluster >= cluster_count)
    return Bad(token);
  std::string_view uuid = rest.substr(dot + 1);
  if (!uuid.empty()) {
    absl::StatusOr<std::string> norm = NormalizeUuid(uuid);
    if (!norm.ok()) return Bad(token);
    pos.after_uuid = *norm;
  }
  return pos;
}

}  // namespace lbcsi::controller
