// lbcsi-controller: CSI Identity + Controller for LightOS on a unix socket.
// Only wiring: flags -> options, factory, services, server, signals.
#include <cstdlib>
#include <iostream>
#include <memory>
#include <tuple>

#include <CLI/CLI.hpp>

#include "common/grpc_server.h"
#include "common/logging.h"
#include "controller/controller_service.h"
#include "controller/identity_service.h"
#include "controller/options.h"
#include "controller/timing_client.h"
#include "kubeletpaths/kubelet_paths.h"
#include "lightos/client_pool.h"
#include "metrics/http_exporter.h"

#ifndef LBCSI_VERSION
#define LBCSI_VERSION "0.0.0-dev"
#endif

int main(int argc, char** argv) {
  using namespace lbcsi;  // NOLINT
  CLI::App app{"CSI controller (Identity + Controller) for LightOS"};
  app.set_version_flag("--version", std::string(LBCSI_VERSION));

  std::string endpoint = "unix:///var/lib/csi/sockets/pluginproxy/csi.sock";
  std::string driver_name = "csi.lightbitslabs.com";
  std::string default_scheme = "grpcs";
  std::string ca_bundle, tls_server_name;
  bool insecure = false;
  std::string jwt_file = "/etc/lb-csi/jwt";
  std::vector<std::string> clusters;
  std::vector<std::string> trusted_clusters;
  std::string log_level = "info", log_format = "text";
  // Not 9808: that is the livenessprobe sidecar's default port, and the sidecar shares the
  // controller pod's network namespace (deploy/helm/lbcsi/templates/controller.yaml).
  std::string metrics_address = "127.0.0.1:9810";
  bool alpha_capabilities = false;

  app.add_option("--endpoint", endpoint, "CSI socket (unix://path)")
      ->envname("LBCSI_ENDPOINT")
      ->capture_default_str();
  app.add_option("--driver-name", driver_name, "CSI driver name")
      ->envname("LBCSI_DRIVER_NAME")
      ->capture_default_str();
  app.add_option("--default-scheme", default_scheme,
                 "LightOS API scheme when a StorageClass has no mgmt-scheme")
      ->envname("LBCSI_DEFAULT_SCHEME")
      ->check(CLI::IsMember({"grpcs", "grpc"}))
      ->capture_default_str();
  app.add_option("--ca-bundle", ca_bundle,
                 "PEM CA bundle that LightOS certificates must chain to "
                 "(empty: system roots)")
      ->envname("LBCSI_CA_BUNDLE");
  app.add_option("--tls-server-name", tls_server_name,
                 "Name to verify in LightOS certificates (clusters addressed by IP)")
      ->envname("LBCSI_TLS_SERVER_NAME");
  app.add_flag("--insecure-skip-tls-verify", insecure,
               "Do not verify LightOS certificates (migration aid; logged loudly)")
      ->envname("LBCSI_INSECURE_SKIP_TLS_VERIFY");
  CLI::Option* jwt_opt =
      app.add_option("--jwt-file", jwt_file,
                     "Controller-wide LightOS token file, used when secrets carry no jwt")
          ->envname("LBCSI_JWT_FILE")
          ->capture_default_str();
  app.add_option("--cluster", clusters,
                 "Cluster for ListVolumes/GetCapacity/ControllerGetVolume: "
                 "host:port[,host:port...][|proj:<project>][|scheme:grpc|grpcs]; repeatable "
                 "(env: ';'-separated)")
      ->envname("LBCSI_CLUSTER")
      ->delimiter(';');
  app.add_option("--trusted-cluster", trusted_clusters,
                 "More clusters the --jwt-file token may be sent to (besides --cluster): "
                 "host:port[,host:port...][|scheme:grpc|grpcs]; scheme:grpc allows tokens in "
                 "plaintext to it; repeatable (';'-separated)")
      ->envname("LBCSI_TRUSTED_CLUSTER")
      ->delimiter(';');
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->envname("LBCSI_LOG_LEVEL")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text|json")
      ->envname("LBCSI_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--metrics-address", metrics_address,
                 "host:port for Prometheus /metrics (empty disables; port 0 picks one)")
      ->envname("LBCSI_METRICS_ADDRESS")
      ->capture_default_str();
  app.add_flag("--alpha-capabilities", alpha_capabilities,
               "Advertise and serve alpha CSI capabilities (GET_SNAPSHOT)")
      ->envname("LBCSI_ALPHA_CAPABILITIES");
  CLI11_PARSE(app, argc, argv);

  BlockTerminationSignals();

  absl::StatusOr<log::Level> level = log::ParseLevel(log_level);
  absl::StatusOr<log::Format> format = log::ParseFormat(log_format);
  if (!level.ok() || !format.ok()) {
    std::cerr << "bad --log-level or --log-format\n";
    return 2;
  }
  log::Init({.level = *level, .format = *format, .component = "controller"});

  controller::ControllerOptions options;
  options.driver_name = driver_name;
  options.version = LBCSI_VERSION;
  options.default_scheme = default_scheme == "grpc" ? MgmtScheme::kGrpc : MgmtScheme::kGrpcs;
  options.jwt_file = jwt_file;
  options.alpha_capabilities = alpha_capabilities;
  if (!kubeletpaths::IsDriverName(driver_name)) {
    LOG(kError, "invalid --driver-name (CSI: <= 63 chars, [a-zA-Z0-9.-], alphanumeric ends)",
        {"driver_name", driver_name});
    return 2;
  }
  for (auto [flag, specs, out] :
       {std::tuple{"--cluster", &clusters, &options.clusters},
        std::tuple{"--trusted-cluster", &trusted_clusters, &options.trusted_clusters}}) {
    for (const std::string& spec : *specs) {
      absl::StatusOr<lightos::ClusterTarget> t = ParseClusterSpec(spec, options.default_scheme);
      if (!t.ok()) {
        LOG(kError, "bad cluster flag", {"flag", flag}, {"error", StdView(t.status().message())});
        return 2;
      }
      out->push_back(*t);
    }
  }
  if (jwt_opt->count() > 0 && options.clusters.empty() && options.trusted_clusters.empty()) {
    LOG(kWarn,
        "no --cluster or --trusted-cluster: the --jwt-file token is sent to no cluster; "
        "every request needs its own \"jwt\" secret");
  }
  options.jwt_file_required = jwt_opt->count() > 0 || !options.clusters.empty();

  auto& registry = metrics::Registry::Global();
  std::unique_ptr<metrics::HttpExporter> exporter;
  if (!metrics_address.empty()) {
    auto e = metrics::HttpExporter::Start(registry, metrics_address);
    if (!e.ok()) {
      LOG(kError, "cannot serve metrics", {"error", StdView(e.status().message())});
      return 1;
    }
    exporter = *std::move(e);
    LOG(kInfo, "metrics", {"address", metrics_address}, {"port", exporter->port()});
  }

  lightos::PoolOptions pool;
  pool.client.connection.tls.ca_bundle_file = ca_bundle;
  pool.client.connection.tls.server_name_override = tls_server_name;
  pool.client.connection.tls.insecure_skip_verify = insecure;
  if (insecure) {
    LOG(kWarn, "LightOS certificates will NOT be verified (--insecure-skip-tls-verify)");
  }
  auto factory = std::make_shared<controller::TimingClientFactory>(
      std::make_shared<lightos::PooledClientFactory>(pool), registry);

  std::string token_file = options.jwt_file;
  bool token_required = options.jwt_file_required;
  controller::IdentityService identity(
      driver_name, LBCSI_VERSION,
      [token_file, token_required]() -> absl::Status {
        if (!token_required) return absl::OkStatus();
        return controller::CheckTokenFile(token_file);
      },
      registry);
  controller::ControllerService service(options, factory, registry);

  UnixServerOptions server_options;
  server_options.endpoint = endpoint;
  auto server = UnixGrpcServer::Start(std::move(server_options), {&identity, &service});
  if (!server.ok()) {
    LOG(kError, "cannot serve", {"endpoint", endpoint},
        {"error", StdView(server.status().message())});
    return 1;
  }
  LOG(kInfo, "controller started", {"driver", driver_name}, {"version", LBCSI_VERSION},
      {"endpoint", endpoint}, {"clusters", static_cast<int>(options.clusters.size())});
  int sig = WaitForTerminationSignal();
  LOG(kInfo, "shutting down", {"signal", sig});
  (*server)->Shutdown(absl::Seconds(10));
  (*server)->Wait();
  return 0;
}
