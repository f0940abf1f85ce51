#pragma once
// Which LightOS cluster a call goes to: its management endpoints, the scheme
// (TLS or plaintext) and the project. The same spelling serves the
// controller's --cluster / --trusted-cluster flags and the agent's
// --trusted-cluster: "<host:port>[,<host:port>...][|proj:<project>][|scheme:grpc|grpcs]"
// (the volume-id field spelling).

#include <string>
#include <string_view>
#include <vector>

#include <absl/status/statusor.h>

#include "volumeid/endpoints.h"
#include "volumeid/resource_id.h"

namespace lbcsi {

struct ClusterTarget {
  std::vector<HostPort> endpoints;  // management endpoints, canonical order
  MgmtScheme scheme = MgmtScheme::kGrpcs;
  std::string project;  // empty: the cluster's default project
};

// One cluster spec; a part without scheme: gets `default_scheme`.
// INVALID_ARGUMENT naming the part.
absl::StatusOr<ClusterTarget> ParseClusterSpec(std::string_view spec, MgmtScheme default_scheme);

}  // namespace lbcsi
