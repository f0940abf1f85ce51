#pragma once
// Throwaway PKI for tests: a self-signed CA and a server certificate it signs,
// made with OpenSSL's C API (no openssl binary needed).

#include <string>
#include <vector>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

namespace lbcsi::sim {

struct CertOptions {
  std::vector<std::string> ips = {"127.0.0.1"};
  std::vector<std::string> dns = {"localhost"};
  std::string common_name = "lightos-sim";
  int days = 30;
};

struct GeneratedCerts {
  std::string ca_cert_pem;
  std::string ca_key_pem;
  std::string server_cert_pem;
  std::string server_key_pem;
};

absl::StatusOr<GeneratedCerts> GenerateCerts(const CertOptions& options);

// Writes ca.crt, ca.key, server.crt, server.key into `dir` (keys mode 0600).
absl::Status WriteCerts(const GeneratedCerts& certs, const std::string& dir);

}  // namespace lbcsi::sim
