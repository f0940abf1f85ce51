#pragma once
// Settings of the controller service, filled from flags/env by main().

#include <string>
#include <vector>

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
  // More clusters the controller-wide token may be sent to (--trusted-cluster);
  // together with `clusters` they form the CredentialScope
  // (volumeid/credential_scope.h). A cluster with scheme grpc opts in to plaintext.
  std::vector<lightos::ClusterTarget> trusted_clusters;
  // Upper bound for a call whose caller sent no deadline.
  absl::Duration default_timeout = absl::Minutes(5);
};

}  // namespace lbcsi::controller
