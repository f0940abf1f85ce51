// lbcsi-agent: CSI Identity + Node on kubelet's plugin socket, unprivileged.
// Wires flags, state, the helper client and the services together.

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <thread>

#include <CLI/CLI.hpp>

#include "agent/config.h"
#include "agent/identity_service.h"
#include "agent/metrics.h"
#include "agent/node_service.h"
#include "agent/socket_dirs.h"
#include "common/grpc_server.h"
#include "common/logging.h"
#include "common/unix_endpoint.h"
#include "lightos/client_pool.h"
#include "metrics/http_exporter.h"

namespace {

using namespace lbcsi;
using namespace lbcsi::agent;

// Restart tests (tests/agent/restart_test.cc): LBCSI_CRASH_AT=<point> makes the
// process kill itself with SIGKILL when it reaches that point of
// agent/crash_points.h, a real kill -9 at a known place. Unset in production.
absl::StatusOr<CrashHook> CrashHookFromEnv() {
  const char* at = std::getenv("LBCSI_CRASH_AT");
  if (at == nullptr || *at == '\0') return CrashHook();
  std::string point = at;
  bool known = false;
  for (std::string_view p : kCrashPoints) known = known || p == point;
  if (!known) return absl::InvalidArgumentError(Cat("LBCSI_CRASH_AT: unknown point ", point));
  LOG(kWarn, "TEST HOOK: this agent kills itself at a crash point", {"point", point});
  return CrashHook([point](std::string_view reached) -> absl::Status {
    if (reached == point) {
      LOG(kWarn, "TEST HOOK: SIGKILL at crash point", {"point", point});
      raise(SIGKILL);
    }
    return absl::OkStatus();
  });
}

int Run(int argc, char** argv) {
  AgentConfig config;
  CLI::App app{"lbcsi-agent: unprivileged CSI node plugin for LightOS"};
  auto env = [](const char* name) { return std::string("LBCSI_") + name; };
  app.add_option("--endpoint", config.endpoint, "CSI endpoint (unix://)")
      ->envname(env("ENDPOINT"))
      ->capture_default_str();
  app.add_option("--driver-name", config.driver_name, "CSI driver name")
      ->envname(env("DRIVER_NAME"))
      ->capture_default_str();
  app.add_option("--node-id", config.node_id,
                 "node id (default: $KUBE_NODE_NAME + \".node\", as the shipped plugin)")
      ->envname(env("NODE_ID"));
  app.add_option("--helper-socket", config.helper_socket, "the root helper's unix socket")
      ->envname(env("HELPER_SOCKET"))
      ->capture_default_str();
  int helper_wait_seconds = 300;
  app.add_option("--helper-wait", helper_wait_seconds,
                 "seconds to wait at start-up for the helper to prepare the socket directories")
      ->envname(env("HELPER_WAIT"))
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--kubelet-root", config.kubelet_root, "kubelet's root directory")
      ->envname(env("KUBELET_ROOT"))
      ->capture_default_str();
  app.add_option("--state-dir", config.state_dir, "where per-volume records are kept")
      ->envname(env("STATE_DIR"))
      ->capture_default_str();
  app.add_option("--log-level", config.log_level, "trace|debug|info|warn|error")
      ->envname(env("LOG_LEVEL"))
      ->capture_default_str();
  app.add_option("--log-format", config.log_format, "text|json")
      ->envname(env("LOG_FORMAT"))
      ->capture_default_str();
  app.add_option("--metrics-address", config.metrics_address,
                 "host:port for Prometheus /metrics (empty disables; port 0 picks one)")
      ->envname(env("METRICS_ADDRESS"));
  app.add_option("--max-volumes", config.max_volumes, "max_volumes_per_node reported to the CO")
      ->envname(env("MAX_VOLUMES"))
      ->capture_default_str();
  app.add_option("--ephemeral-config", config.ephemeral_config_file,
                 "JSON file enabling inline ephemeral volumes (cluster, token file, limits)")
      ->envname(env("EPHEMERAL_CONFIG"));
  app.add_option("--trusted-cluster", config.trusted_cluster_specs,
                 "LightOS cluster the node-stage fallback may send a token to in plaintext: "
                 "host:port[,host:port...]|scheme:grpc; repeatable (';'-separated)")
      ->envname(env("TRUSTED_CLUSTER"))
      ->delimiter(';');
  CLI11_PARSE(app, argc, argv);

  log::Options lopts;
  lopts.component = "agent";
  absl::StatusOr<log::Level> level = log::ParseLevel(config.log_level);
  absl::StatusOr<log::Format> format = log::ParseFormat(config.log_format);
  if (!level.ok() || !format.ok()) {
    fmt::print(stderr, "bad --log-level or --log-format\n");
    return 2;
  }
  lopts.level = *level;
  lopts.format = *format;
  log::Init(lopts);

  if (config.node_id.empty()) {
    const char* node = std::getenv("KUBE_NODE_NAME");
    config.node_id = DefaultNodeId(node != nullptr ? node : "");
  }
  if (absl::Status s = FinalizeConfig(config); !s.ok()) {
    LOG(kError, "invalid configuration", {"status", s});
    return 2;
  }
  absl::StatusOr<CrashHook> crash_hook = CrashHookFromEnv();
  if (!crash_hook.ok()) {
    LOG(kError, "invalid test hook", {"status", crash_hook.status()});
    return 2;
  }
  metrics::Registry& registry = metrics::Registry::Global();
  DescribeAgentMetrics(registry);
  std::unique_ptr<metrics::HttpExporter> exporter;
  if (!config.metrics_address.empty()) {
    auto e = metrics::HttpExporter::Start(registry, config.metrics_address);
    if (!e.ok()) {
      LOG(kError, "cannot serve metrics", {"status", e.status()});
      return 1;
    }
    exporter = *std::move(e);
    LOG(kInfo, "metrics", {"address", config.metrics_address}, {"port", exporter->port()});
  }

  BlockTerminationSignals();
  absl::StatusOr<std::unique_ptr<state::Store>> store = state::Store::Open(config.state_dir);
  if (!store.ok()) {
    LOG(kError, "cannot open the state directory", {"status", store.status()});
    return 1;
  }
  std::shared_ptr<HelperClient> helper = HelperClient::ForSocket(config.helper_socket);
  helper->SetMetrics(&registry);

  lightos::PoolOptions pool;
  if (config.ephemeral) {
    pool.client.connection.tls.ca_bundle_file = config.ephemeral->ca_bundle_file;
    pool.client.connection.tls.insecure_skip_verify = config.ephemeral->insecure_skip_verify;
  }
  auto factory = std::make_shared<lightos::PooledClientFactory>(pool);

  NodeDeps deps;
  deps.config = config;
  deps.helper = helper;
  deps.store = std::shared_ptr<state::Store>(std::move(*store));
  deps.lightos = factory;
  deps.metrics = &registry;
  deps.crash_hook = *crash_hook;
  NodeService node(std::move(deps));
  IdentityService identity(config, helper);

  // The socket directory must be ours before we can bind in it.
  absl::StatusOr<std::string> socket_path = ParseUnixEndpoint(config.endpoint);
  if (!socket_path.ok()) {
    LOG(kError, "bad --endpoint", {"status", socket_path.status()});
    return 1;
  }
  const std::string socket_dir = socket_path->substr(0, socket_path->rfind('/'));
  if (absl::Status st =
          PrepareSocketDirs(*helper, socket_dir, absl::Now() + absl::Seconds(helper_wait_seconds),
                            TerminationSignalPending);
      absl::IsCancelled(st)) {
    LOG(kInfo, "shutting down before start-up finished");
    return 0;
  } else if (!st.ok()) {
    LOG(kError, "cannot prepare the socket directories; is lbcsi-helper running?", {"status", st},
        {"helper_socket", config.helper_socket});
    return 1;
  }

  UnixServerOptions sopts;
  sopts.endpoint = config.endpoint;
  absl::StatusOr<std::unique_ptr<UnixGrpcServer>> server =
      UnixGrpcServer::Start(std::move(sopts), {&node, &identity});
  if (!server.ok()) {
    LOG(kError, "cannot serve", {"status", server.status()});
    return 1;
  }
  LOG(kInfo, "serving", {"endpoint", config.endpoint}, {"node_id", config.node_id},
      {"host_nqn", config.host_nqn}, {"ephemeral", config.ephemeral.has_value()});

  // Reconcile until it succeeds (the helper may start after us); Probe is not
  // ready before.
  std::atomic<bool> stopping{false};
  std::thread reconciler([&] {
    absl::Duration backoff = absl::Milliseconds(200);
    while (!stopping) {
      absl::StatusOr<int> n = node.Reconcile(absl::Now() + absl::Minutes(5));
      if (n.ok()) {
        LOG(kInfo, "start-up reconcile done", {"changed", *n},
            {"quarantined", node.QuarantinedRecords()});
        identity.SetQuarantined(node.QuarantinedRecords());
        identity.SetReconciled(true);
        return;
      }
      LOG(kWarn, "start-up reconcile failed; retrying", {"status", n.status()});
      for (absl::Time until = absl::Now() + backoff; !stopping && absl::Now() < until;) {
        absl::SleepFor(absl::Milliseconds(50));
      }
      backoff = std::min(backoff * 2, absl::Seconds(10));
    }
  });

  int sig = WaitForTerminationSignal();
  LOG(kInfo, "shutting down", {"signal", sig});
  stopping = true;
  (*server)->Shutdown(absl::Seconds(5));
  (*server)->Wait();
  reconciler.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return Run(argc, argv);
}
