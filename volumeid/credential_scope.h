#pragma once
// Where a LightOS token may be sent. A token is a bearer credential: whoever
// receives it can act as the cluster's user, so the management endpoint a
// request names (a StorageClass parameter, a PV's volume handle) must not
// decide on its own where the operator's token goes.
//
// The operator lists trusted clusters (controller: --cluster and
// --trusted-cluster; agent: --trusted-cluster and the ephemeral config's
// cluster). Rules, checked before any connection is made:
//  - the operator's own token (--jwt-file, the ephemeral token file) goes only
//    to trusted endpoints;
//  - a token the request carries itself (CSI secrets) may go to any endpoint
//    over TLS (grpcs);
//  - no token travels over plaintext grpc unless every endpoint of the target
//    belongs to a trusted cluster configured with scheme:grpc (the operator's
//    opt-in for that cluster).
// Endpoints are compared after canonicalisation (lowercase names without a
// trailing dot, IP addresses in their inet_ntop form), so two spellings of one
// address match and anything else does not.
//
//   CredentialScope scope({*ParseClusterSpec("10.0.0.1:443,10.0.0.2:443", MgmtScheme::kGrpcs)});
//   RETURN_IF_ERROR(scope.CheckOperatorToken(target));

#include <map>
#include <string>
#include <vector>

#include <absl/status/status.h>

#include "volumeid/cluster_target.h"

namespace lbcsi {

class CredentialScope {
 public:
  CredentialScope() = default;  // trusts nothing
  explicit CredentialScope(const std::vector<ClusterTarget>& trusted);

  // OK when the operator-configured token may be sent to `target`, else
  // PERMISSION_DENIED naming the first endpoint that is not trusted.
  absl::Status CheckOperatorToken(const ClusterTarget& target) const;
  // OK when a token the request carries may be sent to `target`.
  absl::Status CheckRequestToken(const ClusterTarget& target) const;

  bool empty() const { return trusted_.empty(); }

  // The comparison key of one endpoint ("host:port", canonical).
  static std::string CanonicalKey(const HostPort& endpoint);

 private:
  absl::Status CheckPlaintext(const ClusterTarget& target, std::string_view whose) const;

  std::map<std::string, bool> trusted_;  // canonical endpoint -> plaintext opted in
};

}  // namespace lbcsi
