// lbcsi-helper: the privileged node helper. main() only wires things together:
// configuration -> namespace check -> identity, roots, transport -> the
// spawner of mkfs and e2fsck (forked while single-threaded) -> capability drop -> seccomp -> serve.

#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/grpc_server.h"
#include "common/logging.h"
#include "common/strings.h"
#include "helper/confinement/capabilities.h"
#include "helper/confinement/netns.h"
#include "helper/confinement/seccomp_policy.h"
#include "helper/crypto/luks.h"
#include "helper/host_identity.h"
#include "helper/ops/spawner_fs_tools.h"
#include "helper/server.h"
#include "helper/service.h"
#include "helper/transport/nvme_transport.h"
#ifdef LBCSI_DEV_TRANSPORT
#include "helper/transport/loop_transport.h"
#endif

namespace {

int Fail(std::string_view what, const absl::Status& status) {
  LOG(kError, "lbcsi-helper cannot start", {"step", what}, {"error", status});
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lbcsi::helper;
  CLI::App app{"lbcsi-helper: the privileged node helper of the LightOS CSI driver"};
  std::string socket = "/run/lbcsi/helper.sock";
  int64_t allowed_uid = -1, allowed_gid = -1;
  bool allow_root_client = false;
  std::vector<std::string> roots;
  std::string driver_name = "csi.lightbitslabs.com";
  std::string state_dir = "/var/lib/lbcsi-helper";
  std::string host_nqn_file = "/etc/nvme/hostnqn";
  std::string transport_name = "nvme";
  std::string sim_data_dir;
  int ctrl_loss_tmo = 120, fast_io_fail_tmo = 20;
  std::vector<std::string> subsystem_prefixes = {"nqn.2016-01.com.lightbitslabs:"};
  std::string plugin_socket_dir, registration_dir;
  int64_t agent_uid = -1;
  bool allow_foreign_netns = false;
  std::string seccomp = "enforce";
  std::string log_level = "info", log_format = "text";
  int max_threads = 64;
  int default_deadline = 60;
  lbcsi::helper::crypto::LuksConfig luks;

  app.add_option("--socket", socket, "Unix socket to serve on")->capture_default_str();
  app.add_option("--allowed-uid", allowed_uid, "uid of the agent (SO_PEERCRED)")->required();
  app.add_option("--allowed-gid", allowed_gid, "gid of the agent (SO_PEERCRED)")->required();
  app.add_flag("--allow-root-client", allow_root_client, "also accept uid 0 clients (tests)");
  app.add_option("--root", roots, "kubelet's root directory (kubelet --root-dir)");
  app.add_option("--driver-name", driver_name,
                 "CSI driver name: requests may name only kubelet's paths of this driver")
      ->capture_default_str();
  app.add_option("--state-dir", state_dir, "helper state (format records, attach registry)")
      ->capture_default_str();
  app.add_option("--host-nqn-file", host_nqn_file,
                 "host NQN; generated when missing (hostid beside it)")
      ->capture_default_str();
  app.add_option("--transport", transport_name, "nvme, or loop (development builds)")
      ->check(CLI::IsMember({"nvme", "loop"}))
      ->capture_default_str();
  app.add_option("--sim-data-dir", sim_data_dir, "loop transport: lightos-sim data directory");
  app.add_option("--ctrl-loss-tmo", ctrl_loss_tmo,
                 "default NVMe ctrl_loss_tmo seconds (-1 = forever)")
      ->check(CLI::Range(-1, 86400))
      ->capture_default_str();
  app.add_option("--fast-io-fail-tmo", fast_io_fail_tmo, "default NVMe fast_io_fail_tmo seconds")
      ->check(CLI::Range(-1, 86400))
      ->capture_default_str();
  app.add_option("--allowed-subsystem-nqn-prefix", subsystem_prefixes,
                 "NVMe transport: attach only subsystems whose NQN starts with one of these "
                 "(repeatable; LightOS clusters use nqn.2016-01.com.lightbitslabs:)")
      ->capture_default_str();
  app.add_option("--plugin-socket-dir", plugin_socket_dir, "PrepareSocketDir(SOCKET_DIR_PLUGIN)");
  app.add_option("--registration-dir", registration_dir,
                 "PrepareSocketDir(SOCKET_DIR_REGISTRATION)");
  app.add_option("--agent-uid", agent_uid,
                 "owner of prepared socket dirs (default: --allowed-uid)");
  app.add_flag("--allow-foreign-netns", allow_foreign_netns,
               "skip the host network namespace check (tests only)");
  app.add_option("--seccomp", seccomp, "enforce|log|off")->capture_default_str();
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--log-format", log_format, "text|json")->capture_default_str();
  app.add_option("--max-threads", max_threads,
                 "gRPC thread cap (calls stuck in the kernel hold one)")
      ->check(CLI::Range(4, 1024))
      ->capture_default_str();
  app.add_option("--default-deadline", default_deadline, "seconds, when a client sets no deadline")
      ->check(CLI::Range(1, 300))
      ->capture_default_str();
  app.add_option("--luks-key-bits", luks.key_bits,
                 "host encryption: XTS key size of new LUKS2 volumes (256: the shipped plugin's; "
                 "512 = AES-256)")
      ->check(CLI::IsMember({256, 512}))
      ->capture_default_str();
  app.add_option("--luks-pbkdf-memory-kib", luks.pbkdf_memory_kib,
                 "host encryption: argon2id memory cost of new key slots")
      ->check(CLI::Range(32 * 1024, 4 * 1024 * 1024))
      ->capture_default_str();
  app.add_option("--luks-pbkdf-parallel", luks.pbkdf_parallel, "host encryption: argon2id threads")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  app.add_option("--luks-pbkdf-time-ms", luks.pbkdf_time_ms,
                 "host encryption: unlock time the PBKDF is benchmarked for")
      ->check(CLI::Range(100, 60000))
      ->capture_default_str();
  app.add_option("--luks-pbkdf-iterations", luks.pbkdf_iterations,
                 "host encryption: fixed argon2id time cost, no benchmark (0 = benchmark; tests)")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  // Passphrases pass through this process: no core dumps, no ptrace by
  // same-uid processes.
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    std::fprintf(stderr, "prctl(PR_SET_DUMPABLE, 0) failed\n");
    return 1;
  }

  lbcsi::log::Options log_options;
  log_options.component = "helper";
  auto level = lbcsi::log::ParseLevel(log_level);
  auto format = lbcsi::log::ParseFormat(log_format);
  if (!level.ok() || !format.ok()) {
    std::fprintf(stderr, "bad --log-level or --log-format\n");
    return 2;
  }
  log_options.level = *level;
  log_options.format = *format;
  lbcsi::log::Init(log_options);
  auto seccomp_mode = ParseSeccompMode(seccomp);
  if (!seccomp_mode.ok()) return Fail("--seccomp", seccomp_mode.status());
  if (roots.empty()) roots.push_back("/var/lib/kubelet");
  if (roots.size() != 1) {
    return Fail("--root", absl::InvalidArgumentError("give kubelet's root directory once"));
  }
  if (allowed_uid < 0 || allowed_gid < 0)
    return Fail("flags", absl::InvalidArgumentError("bad uid/gid"));

  if (!allow_foreign_netns) {
    if (absl::Status st = CheckHostNetworkNamespace(); !st.ok()) return Fail("namespace", st);
  } else {
    LOG(kWarn, "network namespace check disabled by --allow-foreign-netns (tests only)");
  }
  auto identity = LoadOrCreateHostIdentity(host_nqn_file);
  if (!identity.ok()) return Fail("host identity", identity.status());
  auto guard = PathGuard::Create(roots);
  if (!guard.ok()) return Fail("--root", guard.status());
  auto layouts = lbcsi::kubeletpaths::KubeletLayouts::Create(guard->roots().front(), driver_name);
  if (!layouts.ok()) return Fail("--root/--driver-name", layouts.status());
  auto format_state = FormatState::Open(state_dir);
  if (!format_state.ok()) return Fail("--state-dir", format_state.status());

  std::unique_ptr<Transport> transport;
  if (transport_name == "loop") {
#ifdef LBCSI_DEV_TRANSPORT
    auto loop = LoopTransport::Create(sim_data_dir, identity->host_nqn);
    if (!loop.ok()) return Fail("--sim-data-dir", loop.status());
    transport = std::move(*loop);
    LOG(kWarn, "DEVELOPMENT loop transport in use: volumes are lightos-sim files",
        {"sim_data_dir", sim_data_dir});
#else
    return Fail("--transport",
                absl::InvalidArgumentError("the loop transport is not compiled into this build"));
#endif
  } else {
    NvmeDefaults defaults;
    defaults.ctrl_loss_tmo_seconds = ctrl_loss_tmo;
    defaults.fast_io_fail_tmo_seconds = fast_io_fail_tmo;
    bool registry_is_new = false;
    auto registry = AttachRegistry::Open(state_dir, &registry_is_new);
    if (!registry.ok()) return Fail("--state-dir", registry.status());
    NvmeIdentity nvme_identity{identity->host_nqn, identity->host_id, subsystem_prefixes};
    auto nvme =
        std::make_unique<NvmeTransport>(std::move(nvme_identity), defaults, std::move(*registry));
    if (registry_is_new) {
      absl::StatusOr<int> adopted = nvme->SeedRegistry();
      if (!adopted.ok()) return Fail("attach registry", adopted.status());
      LOG(kInfo, "attach registry created", {"adopted_volumes", *adopted});
    }
    transport = std::move(nvme);
  }

  // Fork the spawner while single-threaded and before seccomp forbids exec.
  auto spawner = Spawner::Start(SpawnerConfig{});
  if (!spawner.ok()) return Fail("spawner", spawner.status());
  SpawnerFsTools fs_tools(std::move(*spawner));

  lbcsi::BlockTerminationSignals();
  if (absl::Status st = DropCapabilities(HelperCapabilities()); !st.ok()) {
    return Fail("capabilities", st);
  }
  LOG(kInfo, "capabilities", {"effective", EffectiveCapabilitiesText()});

  ServiceConfig config;
  config.host_nqn = identity->host_nqn;
  config.host_id = identity->host_id;
  config.version = LBCSI_VERSION;
  config.plugin_socket_dir = plugin_socket_dir;
  config.registration_dir = registration_dir;
  config.agent_uid = static_cast<uid_t>(agent_uid >= 0 ? agent_uid : allowed_uid);
  config.default_deadline = absl::Seconds(default_deadline);
  config.luks = luks;
  HelperService service(std::move(config), std::move(*guard), std::move(*layouts),
                        std::move(transport), &fs_tools, std::move(*format_state));

  // libcryptsetup/libdevmapper probe a few things once (udev, semaphores):
  // let them do so before the filter, then switch those paths off.
  crypto::InitLibraryForHelper();
  if (absl::Status st = InstallHelperSeccomp(*seccomp_mode, transport_name == "loop"); !st.ok()) {
    return Fail("seccomp", st);
  }
  LOG(kInfo, "seccomp", {"mode", SeccompModeName(*seccomp_mode)});

  ServerOptions server_options;
  server_options.socket_path = socket;
  server_options.allowed_uid = static_cast<uid_t>(allowed_uid);
  server_options.allowed_gid = static_cast<gid_t>(allowed_gid);
  server_options.allow_root_client = allow_root_client;
  server_options.max_threads = max_threads;
  auto server = HelperServer::Start(server_options, &service);
  if (!server.ok()) return Fail("serve", server.status());
  LOG(kInfo, "lbcsi-helper ready", {"host_nqn", identity->host_nqn}, {"transport", transport_name});
  int sig = lbcsi::WaitForTerminationSignal();
  LOG(kInfo, "shutting down", {"signal", sig});
  (*server)->Shutdown();
  return 0;
}
