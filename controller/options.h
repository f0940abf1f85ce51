#pragma once
// Settings of the controller service, filled from flags/env by main().

#include <string>
#include <string_view>
#include <vector>

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include "lightos/client.h"
#include "volumeid/resource_id.h"

namespace lbcsi::controller {

struct ControllerOptions {
  std::string driver_name = "csi.lightbitslabs.com";
  std::string version;
  // Scheme for StorageClasses without mgmt-scheme.
  MgmtScheme default_scheme = MgmtScheme::kGrpcs;
  // Controller-wide LightOS token, used when a request's secrets carry no "jwt".
  std::string jwt_file;
  // Probe reports not-ready when this is set and the token file is unreadable
  // (set when --jwt-file was given explicitly or list mode is configured).
  bool jwt_file_required = false;
  // Clusters (and projects) that ListVolumes, ListSnapshots without ids,
  // GetCapacity and ControllerGetVolume work on with the controller-wide
  // token. Empty: those capabilities are not advertised.
  std::vector<lightos::ClusterTarget> clusters;
  // Advertise and serve alpha CSI capabilities (today GET_SNAPSHOT and its RPC). Off by default,
  // as the reference drivers do: a CO or a conformance tool that does not know an alpha
  // capability rejects the whole capability list.
  bool alpha_capabilities = false;
  // Upper bound for a call whose caller sent no deadline.
  absl::Duration default_timeout = absl::Minutes(5);
};

// One --cluster value: "<host:port>[,<host:port>...][|proj:<project>][|scheme:grpc|grpcs]"
// (the volume-id field spelling). INVALID_ARGUMENT naming the part.
absl::StatusOr<lightos::ClusterTarget> ParseClusterSpec(std::string_view spec,
                                                        MgmtScheme default_scheme);

}  // namespace lbcsi::controller
