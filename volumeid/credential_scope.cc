#include "volumeid/credential_scope.h"

#include <arpa/inet.h>

#include "common/strings.h"

namespace lbcsi {

std::string CredentialScope::CanonicalKey(const HostPort& endpoint) {
  std::string host = ToLower(endpoint.host);
  unsigned char addr[16];
  char text[INET6_ADDRSTRLEN];
  if (::inet_pton(AF_INET6, host.c_str(), addr) == 1 &&
      ::inet_ntop(AF_INET6, addr, text, sizeof(text)) != nullptr) {
    host = text;
  } else if (::inet_pton(AF_INET, host.c_str(), addr) == 1 &&
             ::inet_ntop(AF_INET, addr, text, sizeof(text)) != nullptr) {
    host = text;
  } else if (!host.empty() && host.back() == '.') {
    host.pop_back();  // "lightos.example." and "lightos.example" are one name
  }
  return HostPort{host, endpoint.port}.ToString();
}

CredentialScope::CredentialScope(const std::vector<ClusterTarget>& trusted) {
  for (const ClusterTarget& cluster : trusted) {
    for (const HostPort& endpoint : cluster.endpoints) {
      bool& plaintext = trusted_[CanonicalKey(endpoint)];
      plaintext = plaintext || cluster.scheme == MgmtScheme::kGrpc;
    }
  }
}

absl::Status CredentialScope::CheckOperatorToken(const ClusterTarget& target) const {
  for (const HostPort& endpoint : target.endpoints) {
    if (!trusted_.contains(CanonicalKey(endpoint))) {
      return absl::PermissionDeniedError(
          Cat("management endpoint ", endpoint.ToString(),
              " is not a trusted cluster, so the driver's own LightOS token is not sent to it; "
              "give the request its own \"jwt\" secret or add the cluster to --trusted-cluster"));
    }
  }
  return CheckPlaintext(target, "the driver's own LightOS token");
}

absl::Status CredentialScope::CheckRequestToken(const ClusterTarget& target) const {
  return CheckPlaintext(target, "a LightOS token");
}

absl::Status CredentialScope::CheckPlaintext(const ClusterTarget& target,
                                             std::string_view whose) const {
  if (target.scheme != MgmtScheme::kGrpc) return absl::OkStatus();
  for (const HostPort& endpoint : target.endpoints) {
    auto it = trusted_.find(CanonicalKey(endpoint));
    if (it == trusted_.end() || !it->second) {
      return absl::PermissionDeniedError(
          Cat("scheme grpc is plaintext and management endpoint ", endpoint.ToString(),
              " is not a trusted cluster configured with scheme:grpc, so ", whose,
              " is not sent to it; use mgmt-scheme grpcs or list the cluster in "
              "--trusted-cluster with |scheme:grpc"));
    }
  }
  return absl::OkStatus();
}

}  // namespace lbcsi
