#pragma once
// The node stack as real processes in a temp directory: lightos-sim (plaintext
// gRPC), lbcsi-helper (loop transport over the sim's data directory) and
// lbcsi-agent (with an ephemeral configuration pointing at the sim), plus the
// exact "nothing leaked" views the restart tests compare: mounts under the
// kubelet root, our loop devices, the sim's volumes and the agent's state
// files. No gtest here: the node benchmark uses it too. Needs root.

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <absl/status/statusor.h>
#include <absl/time/clock.h>
#include <grpcpp/create_channel.h>
#include <nlohmann/json.hpp>

#include "agent/state/store.h"
#include "common/strings.h"
#include "csi/v1/csi.grpc.pb.h"
#include "kubeletpaths/kubelet_paths.h"
#include "lightos/grpc_client.h"
#include "tests/common/loop_devices.h"

namespace lbcsi::agent::procs {

inline constexpr char kNodeId[] = "proc.node";
inline constexpr char kHostNqn[] = "nqn.2019-09.com.lightbitslabs:host:proc.node";
inline constexpr char kJwt[] = "proc-test-jwt";
inline constexpr char kDriver[] = "csi.lightbitslabs.com";

inline pid_t Spawn(std::vector<std::string> args, std::vector<std::string> env = {}) {
  pid_t pid = fork();
  if (pid == 0) {
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1);  // processes are killed on purpose
    for (const std::string& e : env) putenv(strdup(e.c_str()));
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// SIGTERM (or `sig`), then SIGKILL after 5 s. Returns the wait status.
inline int Stop(pid_t& pid, int sig = SIGTERM) {
  if (pid <= 0) return 0;
  if (std::getenv("LBCSI_PROC_TRACE")) {
    fprintf(stderr, "%s stop pid %d\n", absl::FormatTime(absl::Now()).c_str(), pid);
  }
  kill(pid, sig);
  int status = 0;
  for (int i = 0; i < 100; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  pid = -1;
  return status;
}

struct StackOptions {
  std::string agent_log_level = "warn";
  std::string metrics_address;  // empty: no exporter
};

// A channel that retries a missing socket every 50 ms instead of backing off
// for seconds (processes here restart on purpose).
inline std::shared_ptr<grpc::Channel> FastChannel(const std::string& socket) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  return grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args);
}

class NodeStack {
 public:
  using Options = StackOptions;

  static absl::StatusOr<std::unique_ptr<NodeStack>> Start(Options opts = {}) {
    const char* build = std::getenv("LBCSI_BUILD_DIR");
    if (build == nullptr) return absl::FailedPreconditionError("LBCSI_BUILD_DIR is not set");
    std::unique_ptr<NodeStack> s(new NodeStack(build, std::move(opts)));
    if (absl::Status st = s->StartSim(); !st.ok()) return st;
    if (absl::Status st = s->StartHelper(); !st.ok()) return st;
    if (absl::Status st = s->StartAgent(); !st.ok()) return st;
    return s;
  }

  ~NodeStack() {
    StopAgent();
    Stop(helper_);
    Stop(sim_);
    for (int pass = 0; pass < 4; ++pass) {
      std::vector<std::string> mounts = MountsUnder(dir_);
      std::sort(mounts.begin(), mounts.end(), [](auto& a, auto& b) { return a.size() > b.size(); });
      for (const std::string& m : mounts) umount2(m.c_str(), MNT_DETACH);
    }
    ClearLoopDevices();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // ---- processes
  absl::Status StartSim() {
    std::filesystem::remove(dir_ + "/sim-ready.json");
    sim_ =
        Spawn({build_ + "/tests/lightos-sim/lightos-sim", "--data-dir", dir_ + "/sim", "--listen",
               "127.0.0.1:0", "--jwt", kJwt, "--ready-file", dir_ + "/sim-ready.json",
               "--create-delay-ms", "0", "--delete-delay-ms", "0", "--log-level", "warn"});
    for (int i = 0; i < 400; ++i) {
      std::ifstream in(dir_ + "/sim-ready.json");
      if (in) {
        nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
        if (!j.is_discarded() && j.contains("endpoints") && !j["endpoints"].empty()) {
          mgmt_ = j["endpoints"][0].get<std::string>();
          break;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    if (mgmt_.empty()) return absl::UnavailableError("lightos-sim did not become ready");
    WriteEphemeralConfig();
    lightos::ClusterTarget target;
    auto eps = ParseEndpointList(mgmt_);
    if (!eps.ok()) return eps.status();
    target.endpoints = *eps;
    target.scheme = MgmtScheme::kGrpc;
    target.project = "default";
    lightos::TokenSource token;
    token.inline_token = kJwt;
    auto client = lightos::GrpcClient::Create(target, token);
    if (!client.ok()) return client.status();
    lightos_ = *client;
    auto info = lightos_->GetClusterInfo(Opts());
    if (!info.ok()) return info.status();
    cluster_ = *info;
    return absl::OkStatus();
  }

  absl::Status StartHelper() {
    helper_ = Spawn({build_ + "/helper/lbcsi-helper",
                     "--socket",
                     dir_ + "/helper.sock",
                     "--allowed-uid",
                     "0",
                     "--allowed-gid",
                     "0",
                     "--allow-root-client",
                     "--root",
                     root_,
                     "--state-dir",
                     dir_ + "/helper-state",
                     "--host-nqn-file",
                     dir_ + "/etc/hostnqn",
                     "--transport",
                     "loop",
                     "--sim-data-dir",
                     dir_ + "/sim",
                     "--allow-foreign-netns",
                     "--log-level",
                     "warn"});
    auto ch = FastChannel(dir_ + "/helper.sock");
    for (int i = 0; i < 400; ++i) {
      if (access((dir_ + "/helper.sock").c_str(), F_OK) == 0 &&
          ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::milliseconds(200))) {
        return absl::OkStatus();
      }
      int status;
      if (waitpid(helper_, &status, WNOHANG) == helper_) {
        helper_ = -1;
        return absl::InternalError("lbcsi-helper exited at start");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return absl::UnavailableError("lbcsi-helper did not come up");
  }
  // `crash_at`: LBCSI_CRASH_AT for this agent process (it kills itself there).
  absl::Status StartAgent(const std::string& crash_at = "") {
    std::vector<std::string> args = {
        build_ + "/agent/lbcsi-agent",
        "--endpoint",
        "unix://" + dir_ + "/csi.sock",
        "--node-id",
        kNodeId,
        "--helper-socket",
        dir_ + "/helper.sock",
        "--kubelet-root",
        root_,
        "--state-dir",
        dir_ + "/agent-state",
        "--ephemeral-config",
        dir_ + "/etc/ephemeral.json",
        "--log-level",
        std::getenv("LBCSI_PROC_TRACE") ? "debug" : opts_.agent_log_level};
    if (!opts_.metrics_address.empty()) {
      args.push_back("--metrics-address");
      args.push_back(opts_.metrics_address);
    }
    std::vector<std::string> env;
    if (!crash_at.empty()) env.push_back("LBCSI_CRASH_AT=" + crash_at);
    std::filesystem::remove(dir_ + "/csi.sock");
    agent_ = Spawn(args, env);
    for (int i = 0; i < 400 && access((dir_ + "/csi.sock").c_str(), F_OK) != 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    auto ch = FastChannel(dir_ + "/csi.sock");
    node_ = csi::v1::Node::NewStub(ch);
    identity_ = csi::v1::Identity::NewStub(ch);
    for (int i = 0; i < 600; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      csi::v1::ProbeResponse resp;
      if (identity_->Probe(&ctx, {}, &resp).ok() && resp.ready().value()) return absl::OkStatus();
      int status;
      if (waitpid(agent_, &status, WNOHANG) == agent_) {
        agent_ = -1;
        return absl::InternalError("lbcsi-agent exited at start");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return absl::UnavailableError("lbcsi-agent never became ready");
  }
  int StopAgent(int sig = SIGTERM) {
    node_.reset();  // our connection goes first: the server need not wait for it
    identity_.reset();
    return Stop(agent_, sig);
  }
  int StopHelper(int sig = SIGTERM) { return Stop(helper_, sig); }
  // Waits for an agent that is expected to have killed itself; true when it
  // died of SIGKILL.
  bool AgentDiedOfSigkill() {
    if (agent_ <= 0) return false;
    int status = 0;
    for (int i = 0; i < 200; ++i) {
      if (waitpid(agent_, &status, WNOHANG) == agent_) {
        agent_ = -1;
        return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }
  pid_t helper_pid() const { return helper_; }

  // ---- LightOS (the sim)
  lightos::CallOptions Opts() const { return {absl::Now() + absl::Seconds(30)}; }
  lightos::Client& lightos() { return *lightos_; }
  absl::StatusOr<std::string> CreateVolume(const std::string& name, uint64_t size, bool granted) {
    lightos::CreateVolumeSpec spec;
    spec.name = name;
    spec.size_bytes = size;
    spec.acl = {granted ? std::string(kHostNqn) : std::string(lightos::kAclAllowNone)};
    auto v = lightos_->CreateVolume(spec, Opts());
    if (!v.ok()) return v.status();
    return v->uuid;
  }
  absl::Status Grant(const std::string& uuid) {
    return lightos_
        ->UpdateVolumeAcl(
            uuid,
            [](std::vector<std::string>& acl) {
              acl = {kHostNqn};
              return true;
            },
            Opts())
        .status();
  }
  absl::Status DeleteVolume(const std::string& uuid) {
    return lightos_->DeleteVolume(uuid, Opts());
  }
  std::set<std::string> SimVolumeNames() {
    std::set<std::string> out;
    auto vols = lightos_->ListVolumes({}, Opts());
    if (!vols.ok()) return {"<ListVolumes failed: " + std::string(vols.status().message()) + ">"};
    for (const auto& v : *vols) out.insert(v.name);
    return out;
  }

  // ---- CSI
  std::string VolId(const std::string& uuid) const {
    return Cat("mgmt:", mgmt_, "|nguid:", uuid, "|scheme:grpc");
  }
  std::string Staging(const std::string& tag) const {
    return Cat(root_, "/plugins/kubernetes.io/csi/", kDriver, "/",
               kubeletpaths::VolumeHandleSha256(tag), "/globalmount");
  }
  std::string Target(const std::string& tag) const {
    return Cat(root_, "/pods/pod-", tag, "/volumes/kubernetes.io~csi/", tag, "/mount");
  }
  static csi::v1::VolumeCapability Fs(const std::string& fs = "ext4") {
    csi::v1::VolumeCapability c;
    c.mutable_mount()->set_fs_type(fs);
    c.mutable_access_mode()->set_mode(csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
    return c;
  }
  template <typename Req, typename Resp, typename Fn>
  grpc::Status Call(Fn fn, const Req& req, Resp* resp, int seconds = 60) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return ((*node_).*fn)(&ctx, req, resp);
  }
  grpc::Status Stage(const std::string& uuid, const std::string& tag, int seconds = 60) {
    std::filesystem::create_directories(Staging(tag));  // kubelet's job
    csi::v1::NodeStageVolumeRequest r;
    r.set_volume_id(VolId(uuid));
    r.set_staging_target_path(Staging(tag));
    *r.mutable_volume_capability() = Fs();
    auto& pc = *r.mutable_publish_context();
    pc["lightbits.com/subsys-nqn"] = cluster_.subsystem_nqn;
    pc["lightbits.com/nvme-endpoints"] = Join(cluster_.nvme_endpoints);
    pc["lightbits.com/never-written"] = "true";
    (*r.mutable_volume_context())["lightbits.com/created-empty"] = "true";
    csi::v1::NodeStageVolumeResponse resp;
    return Call(&csi::v1::Node::Stub::NodeStageVolume, r, &resp, seconds);
  }
  grpc::Status Publish(const std::string& uuid, const std::string& tag) {
    std::filesystem::create_directories(std::filesystem::path(Target(tag)).parent_path());
    csi::v1::NodePublishVolumeRequest r;
    r.set_volume_id(VolId(uuid));
    r.set_staging_target_path(Staging(tag));
    r.set_target_path(Target(tag));
    *r.mutable_volume_capability() = Fs();
    csi::v1::NodePublishVolumeResponse resp;
    return Call(&csi::v1::Node::Stub::NodePublishVolume, r, &resp);
  }
  grpc::Status Unpublish(const std::string& volume_id, const std::string& tag) {
    csi::v1::NodeUnpublishVolumeRequest r;
    r.set_volume_id(volume_id);
    r.set_target_path(Target(tag));
    csi::v1::NodeUnpublishVolumeResponse resp;
    return Call(&csi::v1::Node::Stub::NodeUnpublishVolume, r, &resp);
  }
  grpc::Status Unstage(const std::string& uuid, const std::string& tag) {
    csi::v1::NodeUnstageVolumeRequest r;
    r.set_volume_id(VolId(uuid));
    r.set_staging_target_path(Staging(tag));
    csi::v1::NodeUnstageVolumeResponse resp;
    return Call(&csi::v1::Node::Stub::NodeUnstageVolume, r, &resp);
  }
  grpc::Status Stats(const std::string& volume_id, const std::string& path) {
    csi::v1::NodeGetVolumeStatsRequest r;
    r.set_volume_id(volume_id);
    r.set_volume_path(path);
    csi::v1::NodeGetVolumeStatsResponse resp;
    return Call(&csi::v1::Node::Stub::NodeGetVolumeStats, r, &resp);
  }
  // Inline volume: kubelet's volume id is "csi-<hash>"; no secrets ever.
  static std::string EphId(const std::string& tag) { return "csi-" + tag; }
  grpc::Status PublishEphemeral(const std::string& tag) {
    std::filesystem::create_directories(std::filesystem::path(Target(tag)).parent_path());
    csi::v1::NodePublishVolumeRequest r;
    r.set_volume_id(EphId(tag));
    r.set_target_path(Target(tag));
    *r.mutable_volume_capability() = Fs();
    (*r.mutable_volume_context())["csi.storage.k8s.io/ephemeral"] = "true";
    (*r.mutable_volume_context())["csi.storage.k8s.io/pod.name"] = "pod-" + tag;
    (*r.mutable_volume_context())["size"] = "64Mi";
    csi::v1::NodePublishVolumeResponse resp;
    return Call(&csi::v1::Node::Stub::NodePublishVolume, r, &resp);
  }

  // ---- what is really there
  static std::vector<std::string> MountsUnder(const std::string& prefix) {
    std::vector<std::string> out;
    std::ifstream in("/proc/self/mountinfo");
    for (std::string line; std::getline(in, line);) {
      auto parts = Split(line, ' ');
      if (parts.size() < 5) continue;
      std::string mp(parts[4]);
      if (mp == prefix || mp.starts_with(prefix + "/")) out.push_back(mp);
    }
    return out;
  }
  std::multiset<std::string> Mounts() const {
    auto v = MountsUnder(root_);
    return {v.begin(), v.end()};
  }
  // Mount points the agent's records say should be there.
  std::multiset<std::string> RecordedMounts() const {
    std::multiset<std::string> out;
    for (const state::VolumeRecord& r : Records()) {
      if (r.stage && !r.stage->block) out.insert(r.stage->path);
      for (const auto& [target, p] : r.publishes) out.insert(target);
      if (r.ephemeral && r.ephemeral->phase == state::EphemeralPhase::kPublished) {
        out.insert(r.ephemeral->staging_path);
        out.insert(r.ephemeral->target_path);
      }
    }
    return out;
  }
  std::vector<state::VolumeRecord> Records() const {
    auto store = state::Store::Open(dir_ + "/agent-state");
    if (!store.ok()) return {};
    auto all = (*store)->LoadAll();
    return all.ok() ? *all : std::vector<state::VolumeRecord>{};
  }
  // Every entry of the state directory's volumes/ (temp files included).
  std::set<std::string> StateFiles() const {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_ + "/agent-state/volumes", ec)) {
      out.insert(e.path().filename());
    }
    return out;
  }
  static std::string StateFileOf(const std::string& volume_id) {
    return state::Store::FileName(volume_id);
  }
  // Loop devices backed by our sim's volume files.
  std::set<std::string> LoopBackings() const {
    const std::string prefix = dir_ + "/sim/volumes/";
    std::set<std::string> out;
    for (const auto& loop : lbcsi::testing::LoopDevicesBackedBy(prefix)) {
      out.insert(loop.backing.substr(prefix.size()));
    }
    return out;
  }
  void ClearLoopDevices() const {
    for (const auto& loop : lbcsi::testing::LoopDevicesBackedBy(dir_ + "/sim/volumes/")) {
      lbcsi::testing::ClearLoopDevice(loop.name);
    }
  }

  const std::string& dir() const { return dir_; }
  const std::string& root() const { return root_; }
  const lightos::ClusterInfo& cluster() const { return cluster_; }

 private:
  NodeStack(std::string build, Options opts) : build_(std::move(build)), opts_(std::move(opts)) {
    char tmpl[] = "/tmp/lbcsi-node-proc-XXXXXX";
    dir_ = mkdtemp(tmpl);
    root_ = dir_ + "/kubelet";
    for (const std::string& d : {root_, dir_ + "/sim", dir_ + "/etc"}) {
      std::filesystem::create_directories(d);
    }
    std::ofstream(dir_ + "/etc/hostnqn") << kHostNqn << "\n";
    std::ofstream(dir_ + "/etc/jwt") << kJwt;
  }
  static std::string Join(const std::vector<std::string>& v) {
    std::string s;
    for (const std::string& e : v) s += (s.empty() ? "" : ",") + e;
    return s;
  }
  void WriteEphemeralConfig() const {
    nlohmann::json j = {{"mgmt_endpoints", mgmt_},  {"scheme", "grpc"},
                        {"project", "default"},     {"token_file", dir_ + "/etc/jwt"},
                        {"max_size", "1Gi"},        {"default_size", "64Mi"},
                        {"default_fs_type", "ext4"}};
    std::ofstream(dir_ + "/etc/ephemeral.json") << j.dump();
  }

  std::string build_;
  Options opts_;
  std::string dir_, root_, mgmt_;
  pid_t sim_ = -1, helper_ = -1, agent_ = -1;
  std::shared_ptr<lightos::Client> lightos_;
  lightos::ClusterInfo cluster_;
  std::unique_ptr<csi::v1::Node::Stub> node_;
  std::unique_ptr<csi::v1::Identity::Stub> identity_;
};

}  // namespace lbcsi::agent::procs
