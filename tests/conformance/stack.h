#pragma once
// The whole driver as real processes on local sockets, for the conformance
// suite and the fault test: lightos-sim (plaintext gRPC, one JWT), the
// controller, the root helper (loop transport over the sim's data directory)
// and the agent. Every process can be killed (any signal) and restarted on
// the same sockets/ports, so volume ids stay valid across restarts.
//
// Cleanup() stops everything and removes what a failed test may have left:
// mounts under the scratch directory and loop devices backed by the sim's
// volume files. It runs from the destructor too.

#include <fcntl.h>
#include <linux/loop.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/create_channel.h>
#include <nlohmann/json.hpp>

#include "csi/v1/csi.grpc.pb.h"

namespace lbcsi::conformance {

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One child process: stdout+stderr appended to a log file.
class Child {
 public:
  Child() = default;
  ~Child() { Stop(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void Start(const std::string& bin, std::vector<std::string> args, const std::string& log) {
    Stop();
    pid_ = ::fork();
    if (pid_ == 0) {
      if (FILE* f = std::fopen(log.c_str(), "a")) {
        ::dup2(fileno(f), 1);
        ::dup2(fileno(f), 2);
      }
      // Killed children cannot run LeakSanitizer meaningfully; keep logs quiet.
      ::setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
      std::vector<char*> argv{const_cast<char*>(bin.c_str())};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
  }
  bool Alive() {
    if (pid_ <= 0) return false;
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  // SIGKILL: reaped at once. Other signals: bounded wait, then SIGKILL.
  void Kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    if (sig != SIGKILL) {
      for (int i = 0; i < 200; ++i) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
          pid_ = -1;
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      ::kill(pid_, SIGKILL);
    }
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void Stop() { Kill(SIGTERM); }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

enum class Component { kSim, kController, kHelper, kAgent };
inline const char* ComponentName(Component c) {
  switch (c) {
    case Component::kSim: return "lightos-sim";
    case Component::kController: return "controller";
    case Component::kHelper: return "helper";
    case Component::kAgent: return "agent";
  }
  return "?";
}

// Mount points equal to or below `prefix` (from /proc/self/mountinfo).
inline std::vector<std::string> MountsUnder(const std::string& prefix) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string f[5];
    for (auto& x : f) fields >> x;
    if (f[4] == prefix || f[4].rfind(prefix + "/", 0) == 0) out.push_back(f[4]);
  }
  return out;
}

// Loop devices whose backing file lies below `prefix`; with `detach` they are
// also released (cleanup after a failed test).
inline std::vector<std::string> LoopDevicesBackedBy(const std::string& prefix, bool detach) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& ent : std::filesystem::directory_iterator("/sys/block", ec)) {
    std::string name = ent.path().filename();
    if (name.rfind("loop", 0) != 0) continue;
    std::ifstream bf(ent.path() / "loop/backing_file");
    std::string backing;
    std::getline(bf, backing);
    if (backing.rfind(prefix, 0) != 0) continue;
    out.push_back(name);
    if (detach) {
      int fd = ::open(("/dev/" + name).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        ::ioctl(fd, LOOP_CLR_FD, 0);
        ::close(fd);
      }
    }
  }
  return out;
}

class Stack {
 public:
  static constexpr char kToken[] = "conformance-token";
  static constexpr char kNodeId[] = "n1.node";
  static constexpr char kHostNqn[] = "nqn.2019-09.com.lightbitslabs:host:n1.node";

  Stack() = default;
  ~Stack() { Cleanup(); }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  // Empty string on success, else what failed (with the process log).
  std::string Start() {
    const char* build = std::getenv("LBCSI_BUILD_DIR");
    if (build == nullptr) return "LBCSI_BUILD_DIR is not set (run through ctest)";
    std::string b = build;
    sim_bin_ = b + "/tests/lightos-sim/lightos-sim";
    ctrl_bin_ = b + "/controller/lbcsi-controller";
    helper_bin_ = b + "/helper/lbcsi-helper";
    agent_bin_ = b + "/agent/lbcsi-agent";
    for (const auto& p : {sim_bin_, ctrl_bin_, helper_bin_, agent_bin_}) {
      if (!std::filesystem::exists(p)) return "missing binary " + p;
    }
    char tmpl[] = "/tmp/lbcsi-stack-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return "mkdtemp failed";
    dir_ = tmpl;
    kubelet_ = dir_ + "/kubelet";
    std::filesystem::create_directories(kubelet_ + "/pods");
    std::filesystem::create_directories(kubelet_ + "/plugins");
    std::filesystem::create_directories(dir_ + "/sim");
    std::filesystem::create_directories(dir_ + "/etc");
    std::ofstream(dir_ + "/etc/hostnqn") << kHostNqn << "\n";
    std::ofstream(dir_ + "/jwt") << kToken << "\n";
    // One channel per socket for the whole run: restarts reuse the socket
    // paths, so clients reconnect by themselves and the stubs stay valid while
    // another thread restarts a process. Short reconnect backoff, like a CO
    // that keeps retrying.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    ctrl_channel_ = grpc::CreateCustomChannel("unix:" + controller_socket(),
                                              grpc::InsecureChannelCredentials(), args);
    ctrl_identity_ = csi::v1::Identity::NewStub(ctrl_channel_);
    controller_ = csi::v1::Controller::NewStub(ctrl_channel_);
    node_channel_ = grpc::CreateCustomChannel("unix:" + node_socket(),
                                              grpc::InsecureChannelCredentials(), args);
    node_identity_ = csi::v1::Identity::NewStub(node_channel_);
    node_ = csi::v1::Node::NewStub(node_channel_);
    for (Component c :
         {Component::kSim, Component::kController, Component::kHelper, Component::kAgent}) {
      if (std::string err = StartComponent(c); !err.empty()) return err;
    }
    return "";
  }

  // Starts (or restarts) one component and waits until it serves. Safe to call
  // from another thread while CSI calls are in flight (the stubs stay).
  std::string StartComponent(Component c) {
    switch (c) {
      case Component::kSim: return StartSim();
      case Component::kController: return StartController();
      case Component::kHelper: return StartHelper();
      case Component::kAgent: return StartAgent();
    }
    return "unknown component";
  }
  // Extra flags for a component's next (re)start, e.g. another --trusted-cluster.
  void SetExtraArgs(Component c, std::vector<std::string> args) {
    extra_args_[static_cast<int>(c)] = std::move(args);
  }
  void KillComponent(Component c, int sig) { child(c).Kill(sig); }
  bool Alive(Component c) { return child(c).Alive(); }
  pid_t pid(Component c) { return child(c).pid(); }
  std::string Restart(Component c, int sig) {
    KillComponent(c, sig);
    return StartComponent(c);
  }

  void Cleanup() {
    if (dir_.empty()) return;
    for (Component c :
         {Component::kAgent, Component::kHelper, Component::kController, Component::kSim}) {
      child(c).Stop();
    }
    ReleaseLeftovers();
    std::error_code ec;
    if (std::getenv("LBCSI_KEEP_STACK_DIR") == nullptr) std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }
  // Unmounts everything under the scratch dir and detaches its loop devices.
  void ReleaseLeftovers() {
    for (int pass = 0; pass < 4; ++pass) {
      auto mounts = MountsUnder(dir_);
      std::sort(mounts.begin(), mounts.end(),
                [](const auto& a, const auto& b) { return a.size() > b.size(); });
      for (const auto& m : mounts) ::umount2(m.c_str(), MNT_DETACH);
    }
    LoopDevicesBackedBy(dir_ + "/sim/", /*detach=*/true);
  }

  // StorageClass parameters for CreateVolume.
  std::map<std::string, std::string> Parameters() const {
    return {{"mgmt-endpoint", mgmt_}, {"replica-count", "1"}, {"mgmt-scheme", "grpc"}};
  }
  std::map<std::string, std::string> Secrets() const { return {{"jwt", kToken}}; }

  std::string Log(Component c) const { return ReadFile(LogPath(c)); }
  std::string LogPath(Component c) const { return dir_ + "/" + ComponentName(c) + ".log"; }

  const std::string& dir() const { return dir_; }
  const std::string& kubelet_root() const { return kubelet_; }
  std::string sim_volumes_dir() const { return dir_ + "/sim/volumes"; }
  std::string agent_state_dir() const { return dir_ + "/agent-state"; }
  const std::string& mgmt() const { return mgmt_; }
  std::string controller_socket() const { return dir_ + "/controller.sock"; }
  std::string node_socket() const { return dir_ + "/node.sock"; }
  csi::v1::Identity::Stub& controller_identity() { return *ctrl_identity_; }
  csi::v1::Controller::Stub& controller() { return *controller_; }
  csi::v1::Identity::Stub& node_identity() { return *node_identity_; }
  csi::v1::Node::Stub& node() { return *node_; }
  std::shared_ptr<grpc::Channel> controller_channel() { return ctrl_channel_; }
  std::shared_ptr<grpc::Channel> node_channel() { return node_channel_; }

 private:
  Child& child(Component c) {
    switch (c) {
      case Component::kSim: return sim_;
      case Component::kController: return ctrl_;
      case Component::kHelper: return helper_;
      case Component::kAgent: return agent_;
    }
    return sim_;
  }

  std::string StartSim() {
    // The first start picks free ports; restarts reuse them (the volume ids name them).
    std::vector<std::string> args{"--data-dir",
                                  dir_ + "/sim",
                                  "--jwt",
                                  kToken,
                                  "--create-delay-ms",
                                  "0",
                                  "--delete-delay-ms",
                                  "0",
                                  "--ready-file",
                                  dir_ + "/sim-ready.json",
                                  "--log-level",
                                  "warn"};
    if (sim_ports_.empty()) {
      args.insert(args.end(), {"--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"});
    } else {
      for (const auto& ep : sim_ports_) args.insert(args.end(), {"--listen", ep});
    }
    std::filesystem::remove(dir_ + "/sim-ready.json");
    sim_.Start(sim_bin_, args, LogPath(Component::kSim));
    for (int i = 0; i < 600; ++i) {
      auto doc = nlohmann::json::parse(ReadFile(dir_ + "/sim-ready.json"), nullptr, false);
      if (!doc.is_discarded() && doc.contains("endpoints")) {
        if (sim_ports_.empty()) {
          for (const auto& e : doc["endpoints"]) sim_ports_.push_back(e.get<std::string>());
          std::sort(sim_ports_.begin(), sim_ports_.end());
          mgmt_ = sim_ports_[0] + "," + sim_ports_[1];
        }
        return "";
      }
      if (!sim_.Alive()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "lightos-sim did not become ready:\n" + Log(Component::kSim);
  }

  std::vector<std::string> WithExtra(Component c, std::vector<std::string> args) const {
    const auto& extra = extra_args_[static_cast<int>(c)];
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  std::string StartController() {
    std::filesystem::remove(controller_socket());
    ctrl_.Start(ctrl_bin_,
                WithExtra(Component::kController,
                          {"--endpoint", "unix://" + controller_socket(), "--default-scheme",
                           "grpc", "--jwt-file", dir_ + "/jwt", "--cluster", mgmt_ + "|scheme:grpc",
                           "--metrics-address", "", "--alpha-capabilities", "--log-level", "warn"}),
                LogPath(Component::kController));
    if (!WaitProbe(*ctrl_identity_, ctrl_)) {
      return "controller did not become ready:\n" + Log(Component::kController);
    }
    return "";
  }

  std::string StartHelper() {
    std::filesystem::remove(dir_ + "/helper.sock");
    helper_.Start(helper_bin_,
                  {"--socket",
                   dir_ + "/helper.sock",
                   "--allowed-uid",
                   "0",
                   "--allowed-gid",
                   "0",
                   "--allow-root-client",
                   "--root",
                   kubelet_,
                   "--state-dir",
                   dir_ + "/helper-state",
                   "--host-nqn-file",
                   dir_ + "/etc/hostnqn",
                   "--transport",
                   "loop",
                   "--sim-data-dir",
                   dir_ + "/sim",
                   "--allow-foreign-netns",
                   "--seccomp",
                   "enforce",  // as deployed, whatever the default
                   "--log-level",
                   "warn"},
                  LogPath(Component::kHelper));
    for (int i = 0; i < 600; ++i) {
      if (std::filesystem::exists(dir_ + "/helper.sock")) return "";
      if (!helper_.Alive()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "helper did not create its socket:\n" + Log(Component::kHelper);
  }

  std::string StartAgent() {
    std::filesystem::remove(node_socket());
    agent_.Start(agent_bin_,
                 WithExtra(Component::kAgent,
                           {"--endpoint", "unix://" + node_socket(), "--node-id", kNodeId,
                            "--helper-socket", dir_ + "/helper.sock", "--kubelet-root", kubelet_,
                            "--state-dir", agent_state_dir(), "--log-level", "warn"}),
                 LogPath(Component::kAgent));
    if (!WaitProbe(*node_identity_, agent_)) {
      return "agent did not become ready:\n" + Log(Component::kAgent) + "\n--- helper ---\n" +
             Log(Component::kHelper);
    }
    return "";
  }

  // Probe until ready=true (bounded: 60 s, sanitizer builds start slowly).
  static bool WaitProbe(csi::v1::Identity::Stub& stub, Child& proc) {
    for (int i = 0; i < 600; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      csi::v1::ProbeResponse resp;
      if (stub.Probe(&ctx, {}, &resp).ok() && (!resp.has_ready() || resp.ready().value())) {
        return true;
      }
      if (!proc.Alive()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  std::string sim_bin_, ctrl_bin_, helper_bin_, agent_bin_;
  std::string dir_, kubelet_, mgmt_;
  std::vector<std::string> sim_ports_;
  Child sim_, ctrl_, helper_, agent_;
  std::vector<std::string> extra_args_[4];
  std::shared_ptr<grpc::Channel> ctrl_channel_, node_channel_;
  std::unique_ptr<csi::v1::Identity::Stub> ctrl_identity_, node_identity_;
  std::unique_ptr<csi::v1::Controller::Stub> controller_;
  std::unique_ptr<csi::v1::Node::Stub> node_;
};

}  // namespace lbcsi::conformance
