// lightos-sim: a LightOS management API emulator for tests and local runs.
// See tests/lightos-sim/README.md for flags, the control endpoint and divergences.

#include <unistd.h>

#include <iostream>

#include <CLI/CLI.hpp>

#include "common/grpc_server.h"
#include "common/logging.h"
#include "common/status.h"
#include "common/strings.h"
#include "tests/lightos-sim/certs.h"
#include "tests/lightos-sim/fileops.h"
#include "tests/lightos-sim/rules.h"
#include "tests/lightos-sim/simulator.h"

namespace {

using namespace lbcsi;
using namespace lbcsi::sim;

// A token file holds one JWT; trailing newlines and spaces are not part of it.
absl::StatusOr<std::string> ReadToken(const std::string& path) {
  ASSIGN_OR_RETURN(std::string token, ReadFile(path));
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) return absl::InvalidArgumentError(Cat("token file ", path, " is empty"));
  return token;
}

int Fail(const absl::Status& status) {
  LOG(kError, "lightos-sim failed", {"error", status});
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lightos-sim: emulates the LightOS DurosAPI (gRPC) for tests"};
  SimulatorOptions opts;
  std::vector<std::string> jwt_files, jwts, listen;
  std::string data_dir, faults_file, ready_file, tls_cert, tls_key, log_level = "info",
                                                                    log_format = "text";
  std::string capacity = "10TiB";
  int64_t create_delay_ms = 0, delete_delay_ms = 0;
  std::vector<std::string> nvme, discovery;
  app.add_option("--listen", listen, "gRPC listen address host:port (repeatable; port 0 picks)");
  app.add_option("--data-dir", data_dir, "directory for volumes and state")->required(false);
  app.add_option("--jwt-file", jwt_files, "file holding an accepted JWT (repeatable)");
  app.add_option("--jwt", jwts, "an accepted JWT given literally (tests only; repeatable)");
  app.add_option("--tls-cert", tls_cert, "PEM server certificate (with --tls-key: serve grpcs)");
  app.add_option("--tls-key", tls_key, "PEM server private key");
  app.add_option("--ready-file", ready_file, "write bound endpoints as JSON here once serving");
  app.add_option("--control-listen", opts.control_listen,
                 "HTTP control endpoint host:port (e.g. 127.0.0.1:0); off when empty");
  app.add_option("--faults", faults_file, "fault injection JSON file");
  app.add_option("--subsystem-nqn", opts.cluster.subsystem_nqn, "cluster subsystem NQN");
  app.add_option("--nvme-endpoint", nvme, "NVMe/TCP endpoint ip:port (repeatable)");
  app.add_option("--discovery-endpoint", discovery, "discovery endpoint ip:port (repeatable)");
  app.add_option("--create-delay-ms", create_delay_ms, "Creating -> Available delay")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--delete-delay-ms", delete_delay_ms, "Deleting -> gone delay")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--cluster-name", opts.cluster.cluster_name, "cluster name");
  app.add_option("--max-replicas", opts.cluster.max_replicas, "currentMaxReplicas")
      ->check(CLI::Range(1, 3));
  app.add_option("--capacity", capacity, "cluster capacity, e.g. 10TiB");
  app.add_option("--project", opts.cluster.projects,
                 "restrict projects to these (plus default); repeatable");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  app.add_option("--log-format", log_format, "text|json");

  CLI::App* gen = app.add_subcommand("gen-certs", "write a throwaway CA and server certificate");
  std::string cert_dir;
  CertOptions cert_opts;
  std::vector<std::string> cert_ips, cert_dns;
  gen->add_option("--dir", cert_dir, "output directory")->required();
  gen->add_option("--ip", cert_ips, "IP SAN (repeatable; default 127.0.0.1)");
  gen->add_option("--dns", cert_dns, "DNS SAN (repeatable; default localhost)");
  gen->add_option("--days", cert_opts.days, "validity in days");
  app.require_subcommand(0, 1);
  CLI11_PARSE(app, argc, argv);

  log::Options log_opts;
  log_opts.component = "lightos-sim";
  auto level = log::ParseLevel(log_level);
  auto format = log::ParseFormat(log_format);
  if (!level.ok() || !format.ok()) {
    std::cerr << "bad --log-level or --log-format\n";
    return 2;
  }
  log_opts.level = *level;
  log_opts.format = *format;
  log::Init(log_opts);

  if (gen->parsed()) {
    if (!cert_ips.empty() || !cert_dns.empty()) {
      cert_opts.ips = cert_ips;
      cert_opts.dns = cert_dns;
    }
    auto certs = GenerateCerts(cert_opts);
    if (!certs.ok()) return Fail(certs.status());
    if (auto st = WriteCerts(*certs, cert_dir); !st.ok()) return Fail(st);
    std::cout << cert_dir << "/ca.crt " << cert_dir << "/server.crt " << cert_dir
              << "/server.key\n";
    return 0;
  }

  if (data_dir.empty()) {
    std::cerr << "--data-dir is required\n";
    return 2;
  }
  opts.cluster.data_dir = data_dir;
  if (!listen.empty()) opts.listen = listen;
  if (!nvme.empty()) opts.cluster.nvme_endpoints = nvme;
  opts.cluster.discovery_endpoints = discovery;
  opts.cluster.create_delay = std::chrono::milliseconds(create_delay_ms);
  opts.cluster.delete_delay = std::chrono::milliseconds(delete_delay_ms);
  auto cap = ParseSize(capacity);
  if (!cap.ok()) return Fail(cap.status());
  opts.cluster.capacity_bytes = *cap;
  opts.tokens = jwts;
  for (const auto& f : jwt_files) {
    auto token = ReadToken(f);
    if (!token.ok()) return Fail(token.status());
    opts.tokens.push_back(*token);
  }
  if (!tls_cert.empty() || !tls_key.empty()) {
    auto cert = ReadFile(tls_cert);
    auto key = ReadFile(tls_key);
    if (!cert.ok()) return Fail(cert.status());
    if (!key.ok()) return Fail(key.status());
    opts.tls_cert_pem = *cert;
    opts.tls_key_pem = *key;
  }
  if (!faults_file.empty()) {
    auto text = ReadFile(faults_file);
    if (!text.ok()) return Fail(text.status());
    auto faults = ParseFaultConfig(*text);
    if (!faults.ok()) return Fail(faults.status());
    opts.faults = *faults;
  }

  BlockTerminationSignals();
  auto sim = Simulator::Start(std::move(opts));
  if (!sim.ok()) return Fail(sim.status());
  if (!ready_file.empty()) {
    if (auto st = AtomicWriteFile(ready_file, (*sim)->ReadyJson()); !st.ok()) return Fail(st);
  }
  LOG(kInfo, "lightos-sim ready", {"ready", (*sim)->ReadyJson()});
  int sig = WaitForTerminationSignal();
  LOG(kInfo, "shutting down", {"signal", sig});
  (*sim)->Shutdown();
  return 0;
}
