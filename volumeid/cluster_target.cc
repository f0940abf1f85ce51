#include "volumeid/cluster_target.h"

#include "common/strings.h"

namespace lbcsi {

absl::StatusOr<ClusterTarget> ParseClusterSpec(std::string_view spec, MgmtScheme default_scheme) {
  std::vector<std::string_view> parts = Split(spec, '|');
  ClusterTarget out;
  out.scheme = default_scheme;
  absl::StatusOr<std::vector<HostPort>> eps = ParseEndpointList(parts[0]);
  if (!eps.ok()) {
    return absl::InvalidArgumentError(Cat("--cluster \"", spec, "\": ", eps.status().message()));
  }
  out.endpoints = *std::move(eps);
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string_view part = parts[i];
    if (ConsumePrefix(&part, "proj:")) {
      if (!IsValidProjectName(part)) {
        return absl::InvalidArgumentError(
            Cat("--cluster \"", spec, "\": bad project \"", part, "\""));
      }
      out.project = std::string(part);
    } else if (ConsumePrefix(&part, "scheme:")) {
      absl::StatusOr<MgmtScheme> s = ParseMgmtScheme(part);
      if (!s.ok())
        return absl::InvalidArgumentError(Cat("--cluster \"", spec, "\": ", s.status().message()));
      out.scheme = *s;
    } else {
      return absl::InvalidArgumentError(
          Cat("--cluster \"", spec, "\": unknown part \"", parts[i], "\" (want proj: or scheme:)"));
    }
  }
  return out;
}

}  // namespace lbcsi
