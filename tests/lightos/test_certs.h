#pragma once
// Throwaway X.509 material for TLS tests, made with OpenSSL's C API:
// a self-signed CA and a server certificate it signs.

#include <string>
#include <vector>

namespace lbcsi::lightos::testing {

struct KeyCert {
  std::string key_pem;
  std::string cert_pem;
};

// A CA certificate (basicConstraints CA:TRUE) with an EC P-256 key.
KeyCert MakeCa(const std::string& common_name);
// A server certificate signed by `ca`, with these DNS names and IP addresses as SANs.
KeyCert MakeServerCert(const KeyCert& ca, const std::vector<std::string>& dns_names,
                       const std::vector<std::string>& ips);

}  // namespace lbcsi::lightos::testing
