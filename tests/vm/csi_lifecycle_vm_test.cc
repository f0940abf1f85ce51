// The whole node path in the VM guest: lightos-sim, lbcsi-controller, lbcsi-helper
// (--transport nvme) and lbcsi-agent as real processes, driven through the CSI API only,
// with the data on real NVMe/TCP (the kernel's nvmet on loopback, two ports).
//
// lightos-sim advertises the nvmet ports as its NVMe and discovery endpoints and the
// nvmet subsystem's NQN, so the controller's publish_context leads the agent and helper
// to the kernel target. guest/sim_sync_loop.sh mirrors the sim's volumes into nvmet
// namespaces and follows the ACL as the controller changes it: a namespace is visible
// only while the volume is published to this node (host NQN
// nqn.2019-09.com.lightbitslabs:host:<node-id>, which the helper reads from its
// --host-nqn-file).
//
// The processes are started once for the suite (start-up under TCG with ASan costs
// seconds); each test runs one volume through its whole lifecycle and checks that nothing
// is left: no controllers of the subsystem, no mounts under the kubelet root, no agent
// records (and for host-encrypted volumes, no LUKS mapping). The daemons log at trace
// level, so every request goes through their (redacting) logs: the encrypted tests check
// that no passphrase reaches a log or an error message.
// Registered only in the guest suite (tests/vm/CMakeLists.txt).

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "csi/v1/csi.grpc.pb.h"
#include "csicontext/keys.h"
#include "tests/vm/guest_util.h"
#include "tests/vm/rpc_assert.h"
#include "volumeid/resource_id.h"

namespace {

using namespace lbcsi::vmtest;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Ctl = csi::v1::Controller::Stub;
using Nd = csi::v1::Node::Stub;
using Mode = csi::v1::VolumeCapability::AccessMode;
using Context = google::protobuf::Map<std::string, std::string>;

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr char kToken[] = "vm-csi-token";
constexpr char kNodeId[] = "vm1.node";
// Host encryption: the node-stage Secret key of the shipped plugin, and passphrases
// distinctive enough to be searched for in every log and error.
constexpr char kPassphraseKey[] = "host-encryption-passphrase";
constexpr char kPass[] = "CSI-vm-LUKS-passphrase-0xC0FFEE-right";
constexpr char kWrong[] = "CSI-vm-LUKS-passphrase-0xBADBAD-wrong";

// A context value, "" when absent.
std::string Get(const Context& context, const std::string& key) {
  auto it = context.find(key);
  return it == context.end() ? "" : it->second;
}

// The nvmet namespace exporting a volume: "" when there is none, else "enabled" or
// "disabled" (the ACL emulation of sim_sync_loop.sh).
std::string NamespaceState(const std::string& nqn, const std::string& uuid) {
  std::error_code ec;
  for (const auto& n :
       fs::directory_iterator("/sys/kernel/config/nvmet/subsystems/" + nqn + "/namespaces", ec)) {
    if (ReadLine(n.path() / "device_uuid") == uuid) {
      return ReadLine(n.path() / "enable") == "1" ? "enabled" : "disabled";
    }
  }
  return "";
}

struct MountEntry {
  std::string target, fstype, source;
};
// Mounts at or below `prefix` (from /proc/self/mountinfo).
std::vector<MountEntry> MountsUnder(const std::string& prefix) {
  std::vector<MountEntry> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string f[5];
    for (auto& x : f) fields >> x;
    if (f[4] != prefix && f[4].rfind(prefix + "/", 0) != 0) continue;
    // After the optional fields comes "-", then fstype and source.
    std::string x, fstype, source;
    while (fields >> x && x != "-") {
    }
    fields >> fstype >> source;
    out.push_back({f[4], fstype, source});
  }
  return out;
}

// The active device-mapper device named `name` ("dm-N"), "" when there is none.
std::string DmDeviceNamed(const std::string& name) {
  std::error_code ec;
  for (const auto& b : fs::directory_iterator("/sys/block", ec)) {
    const std::string k = b.path().filename();
    if (k.rfind("dm-", 0) == 0 && ReadLine(b.path() / "dm" / "name") == name) return k;
  }
  return "";
}

// The size in bytes of a block device from sysfs (512-byte sectors).
uint64_t SysBlockBytes(const std::string& kernel_name) {
  const std::string s = ReadLine("/sys/block/" + kernel_name + "/size");
  return s.empty() ? 0 : std::stoull(s) * 512;
}

// Does the file hold `needle`? Reads only the data extents (the images are sparse).
bool FileContains(const std::string& path, const std::string& needle) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ADD_FAILURE() << "open " << path << ": " << std::strerror(errno);
    return false;
  }
  constexpr size_t kChunk = 8 << 20;
  std::string buf(kChunk + needle.size(), '\0');
  bool found = false;
  for (off_t data = lseek(fd, 0, SEEK_DATA); data >= 0 && !found;) {
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) break;
    // Chunks overlap by the needle's size so a match across a boundary is seen.
    for (off_t at = data; at < hole && !found; at += kChunk) {
      ssize_t n = pread(fd, buf.data(), buf.size(), at);
      if (n <= 0) break;
      found = memmem(buf.data(), static_cast<size_t>(n), needle.data(), needle.size()) != nullptr;
    }
    data = lseek(fd, hole, SEEK_DATA);
  }
  close(fd);
  return found;
}

// `count` bytes of a repeated text marker: easy to search for on the raw volume.
std::string MarkerPayload(const std::string& marker, size_t count) {
  std::string out;
  while (out.size() < count) out += marker;
  out.resize(count);
  return out;
}

// Whole-file comparison with an expected fill.
std::string VerifyFile(const std::string& file, size_t bytes, char fill) {
  std::string got = ReadAll(file);
  if (got.size() != bytes) return file + ": " + std::to_string(got.size()) + " bytes";
  return got == std::string(bytes, fill) ? "" : file + ": different data";
}

// O_DIRECT I/O on a block device at `offset` (aligned buffers), bypassing the page cache.
std::string DirectIo(const std::string& dev, off_t offset, std::string* data, bool write_it) {
  int fd = open(dev.c_str(), (write_it ? O_RDWR : O_RDONLY) | O_DIRECT | O_CLOEXEC);
  if (fd < 0) return "open " + dev + ": " + std::strerror(errno);
  void* buf = nullptr;
  if (posix_memalign(&buf, 4096, data->size()) != 0) {
    close(fd);
    return "posix_memalign failed";
  }
  std::string err;
  if (write_it) {
    std::memcpy(buf, data->data(), data->size());
    if (pwrite(fd, buf, data->size(), offset) != static_cast<ssize_t>(data->size())) {
      err = std::string("pwrite: ") + std::strerror(errno);
    } else if (fsync(fd) != 0) {
      err = std::string("fsync: ") + std::strerror(errno);
    }
  } else if (pread(fd, buf, data->size(), offset) != static_cast<ssize_t>(data->size())) {
    err = std::string("pread: ") + std::strerror(errno);
  } else {
    std::memcpy(data->data(), buf, data->size());
  }
  free(buf);
  close(fd);
  return err;
}

// Polls `done` every `every` for up to `limit`; true when it became true.
template <typename F>
bool WaitFor(F done, std::chrono::milliseconds limit,
             std::chrono::milliseconds every = std::chrono::milliseconds(50)) {
  for (auto end = Clock::now() + limit;; std::this_thread::sleep_for(every)) {
    if (done()) return true;
    if (Clock::now() > end) return false;
  }
}

// One child process, output appended to a log file; it dies with the test binary.
class Child {
 public:
  void Start(std::vector<std::string> argv, const std::string& log, bool group_leader = false) {
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (group_leader) setpgid(0, 0);
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      // Leak checks of the daemons belong to their own tests; here they only cost time.
      // The other sanitizer settings (CI: abort_on_error ...) stay.
      const char* asan = std::getenv("ASAN_OPTIONS");
      std::string opts = asan == nullptr || *asan == '\0' ? "" : std::string(asan) + ":";
      setenv("ASAN_OPTIONS", (opts + "detect_leaks=0").c_str(), 1);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    group_ = group_leader;
  }
  bool Alive() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      status_ = status;
      return false;
    }
    return true;
  }
  void Signal(int sig) {
    if (pid_ > 0) kill(group_ ? -pid_ : pid_, sig);
  }
  // Waits up to 20 s after a Signal(), then SIGKILLs. Returns the wait status.
  int Wait() {
    if (pid_ <= 0) return status_;
    int status = 0;
    for (auto end = Clock::now() + std::chrono::seconds(20);;) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) break;
      if (Clock::now() > end) {
        kill(group_ ? -pid_ : pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (group_) kill(-pid_, SIGKILL);  // a sync subshell still running
    pid_ = -1;
    status_ = status;
    return status;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  bool group_ = false;
};

// A channel that retries a socket that is not there yet within 100-500 ms, not gRPC's
// default back-off of 1 s growing to minutes.
std::shared_ptr<grpc::Channel> Channel(const std::string& socket) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  return grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args);
}

bool ProbeReady(csi::v1::Identity::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  csi::v1::ProbeResponse resp;
  return stub.Probe(&ctx, {}, &resp).ok() && (!resp.has_ready() || resp.ready().value());
}

csi::v1::VolumeCapability MountCap() {
  csi::v1::VolumeCapability c;
  c.mutable_mount()->set_fs_type("ext4");
  c.mutable_access_mode()->set_mode(Mode::SINGLE_NODE_WRITER);
  return c;
}
csi::v1::VolumeCapability BlockCap() {
  csi::v1::VolumeCapability c;
  c.mutable_block();
  c.mutable_access_mode()->set_mode(Mode::SINGLE_NODE_WRITER);
  return c;
}

class CsiLifecycleVmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite_t0_ = Clock::now();
    suite_error_ = StartStack();
    SuiteNote(suite_error_.empty() ? "stack ready" : "stack failed: " + suite_error_);
  }

  static void TearDownTestSuite() {
    controller_stub_.reset();
    node_stub_.reset();
    // Each daemon must shut down cleanly on SIGTERM (exit 0). All are told at once: each
    // takes seconds under TCG.
    const std::pair<Child*, const char*> daemons[] = {{&agent_, "lbcsi-agent"},
                                                      {&helper_, "lbcsi-helper"},
                                                      {&controller_, "lbcsi-controller"},
                                                      {&sim_, "lightos-sim"}};
    for (const auto& [child, name] : daemons) child->Signal(SIGTERM);
    for (const auto& [child, name] : daemons) {
      bool was_running = child->pid() > 0;
      int status = child->Wait();
      if (was_running && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        ADD_FAILURE() << name << " did not exit cleanly on SIGTERM (wait status " << status << ")\n"
                      << ReadAll(dir_ + "/" + name + ".log");
      }
    }
    sync_loop_.Signal(SIGKILL);
    sync_loop_.Wait();
    SuiteNote("processes stopped");
    if (!Env("LBCSI_CSI_VM_LOGS").empty()) {
      for (const char* name :
           {"lightos-sim", "lbcsi-controller", "lbcsi-helper", "lbcsi-agent", "sim-sync"}) {
        std::printf("== %s ==\n%s\n", name, ReadAll(dir_ + "/" + name + ".log").c_str());
      }
    }
    // What a failed test may have left: mounts, controllers, the target.
    if (!dir_.empty()) {
      for (int pass = 0; pass < 3; ++pass) {
        for (const auto& m : MountsUnder(dir_)) umount2(m.target.c_str(), MNT_DETACH);
      }
    }
    // LUKS mappings an encrypted test left open (they hold the namespaces).
    std::error_code dm_ec;
    for (const auto& b : fs::directory_iterator("/sys/block", dm_ec)) {
      const std::string name = ReadLine(b.path() / "dm" / "name");
      if (name.rfind("lbcsi-", 0) == 0) Capture("dmsetup remove --force " + name);
    }
    DeleteControllers(nqn_);
    if (target_up_) Nvmet("nvmet_teardown");
    target_up_ = false;
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  void SetUp() override {
    ASSERT_TRUE(suite_error_.empty()) << suite_error_;
    t0_ = Clock::now();
  }

  void TearDown() override {
    if (HasFailure()) {
      std::printf("---- logs of the failed test (%s) ----\n", dir_.c_str());
      for (const char* name : {"lbcsi-agent", "lbcsi-helper", "lbcsi-controller", "sim-sync"}) {
        std::printf("== %s ==\n%s\n", name, ReadAll(dir_ + "/" + name + ".log").c_str());
      }
      Nvmet("nvmet_show");
    }
  }

  static std::string StartStack() {
    if (Env("LBCSI_IN_VM") != "1") return "runs inside the VM guest only (tests/vm/run-in-vm.sh)";
    if (geteuid() != 0) return "needs root (the guest runs tests as root)";
    const std::string build = Env("LBCSI_BUILD_DIR"), src = Env("LBCSI_SOURCE_DIR");
    if (build.empty() || src.empty()) return "LBCSI_BUILD_DIR / LBCSI_SOURCE_DIR are not set";
    const std::string sim_bin = build + "/tests/lightos-sim/lightos-sim";
    const std::string ctrl_bin = build + "/controller/lbcsi-controller";
    const std::string helper_bin = build + "/helper/lbcsi-helper";
    const std::string agent_bin = build + "/agent/lbcsi-agent";
    for (const auto& b : {sim_bin, ctrl_bin, helper_bin, agent_bin}) {
      if (!fs::exists(b)) return "missing binary " + b;
    }
    char tmpl[] = "/var/tmp/csi-vm.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return "mkdtemp failed";
    dir_ = tmpl;
    kubelet_ = dir_ + "/kubelet";
    for (const char* d : {"/kubelet/pods", "/kubelet/plugins", "/sim", "/etc"}) {
      fs::create_directories(dir_ + d);
    }
    // The helper's host NQN must be the one the controller puts in the ACL for kNodeId.
    host_nqn_ = lbcsi::csictx::HostNqnForNode(kNodeId);
    std::ofstream(dir_ + "/etc/hostnqn") << host_nqn_ << "\n";

    // The target: one subsystem on two loopback ports, namespaces come from the sync loop.
    nqn_ = "nqn.2016-01.com.lightbitslabs:uuid:" + NewUuid();
    if (!Nvmet("nvmet_need_cfg; nvmet_subsys " + nqn_ + "; nvmet_port_add " + nqn_ +
               " 1 127.0.0.1 4420; nvmet_port_add " + nqn_ + " 2 127.0.0.1 4421")) {
      return "cannot set up the nvmet subsystem and ports";
    }
    target_up_ = true;
    sync_loop_.Start({"/bin/bash", src + "/tests/vm/guest/sim_sync_loop.sh", nqn_, dir_ + "/sim",
                      host_nqn_, "0.1"},
                     dir_ + "/sim-sync.log", /*group_leader=*/true);

    // The helper keeps its production LUKS2 settings (argon2id benchmarked for 2 s, 64 MiB):
    // under TCG argon2's minimum cost dominates anyway (a lower time target saved nothing).
    // The sim, the helper and the controller start in parallel, the agent once the helper
    // serves (it would retry with a growing back-off otherwise). Under TCG each exec of
    // these ASan binaries alone costs seconds.
    // Trace level: every request (redacted) and helper call is logged, so the redaction
    // checks of the encrypted tests search logs that saw the secrets go by.
    const std::string log_level =
        Env("LBCSI_CSI_VM_LOG_LEVEL").empty() ? "trace" : Env("LBCSI_CSI_VM_LOG_LEVEL");
    std::vector<std::string> sim_args = {
        sim_bin,           "--data-dir",   dir_ + "/sim",
        "--jwt",           kToken,         "--listen",
        "127.0.0.1:0",     "--ready-file", dir_ + "/sim-ready.json",
        "--subsystem-nqn", nqn_,           "--log-level",
        log_level};
    // Both nvmet ports are the cluster's NVMe endpoints and its discovery endpoints (an
    // nvmet port also answers for the discovery subsystem, listing itself).
    for (std::string ep : {"127.0.0.1:4420", "127.0.0.1:4421"}) {
      sim_args.insert(sim_args.end(), {"--nvme-endpoint", ep, "--discovery-endpoint", ep});
    }
    sim_.Start(sim_args, dir_ + "/lightos-sim.log");
    helper_.Start(
        {helper_bin, "--socket", dir_ + "/helper.sock", "--allowed-uid", "0", "--allowed-gid", "0",
         "--allow-root-client", "--root", kubelet_, "--state-dir", dir_ + "/helper-state",
         "--host-nqn-file", dir_ + "/etc/hostnqn", "--transport", "nvme", "--log-level", log_level,
         // As deployed (deploy/systemd, the chart): the filter on, whatever the default.
         "--seccomp", "enforce"},
        dir_ + "/lbcsi-helper.log");
    std::string mgmt;
    WaitFor(
        [&] {
          auto doc = nlohmann::json::parse(ReadAll(dir_ + "/sim-ready.json"), nullptr, false);
          if (doc.is_discarded() || !doc.contains("endpoints")) return !sim_.Alive();
          mgmt = doc["endpoints"][0].get<std::string>();
          return true;
        },
        std::chrono::seconds(90));
    if (mgmt.empty()) {
      return "lightos-sim did not become ready:\n" + ReadAll(dir_ + "/lightos-sim.log");
    }
    mgmt_ = mgmt;
    SuiteNote("lightos-sim serving on " + mgmt_);
    // No --cluster (list mode is not exercised here): StorageClass parameters and secrets
    // in each request reach it. The sim speaks plaintext grpc, which tokens may use only to
    // a cluster the operator listed with scheme:grpc.
    controller_.Start({ctrl_bin, "--endpoint", "unix://" + dir_ + "/controller.sock",
                       "--default-scheme", "grpc", "--trusted-cluster", mgmt_ + "|scheme:grpc",
                       "--metrics-address", "", "--log-level", log_level},
                      dir_ + "/lbcsi-controller.log");
    if (!WaitFor([&] { return fs::exists(dir_ + "/helper.sock") || !helper_.Alive(); },
                 std::chrono::seconds(90)) ||
        !helper_.Alive()) {
      return "lbcsi-helper did not create its socket:\n" + ReadAll(dir_ + "/lbcsi-helper.log");
    }
    SuiteNote("lbcsi-helper serving");
    agent_.Start({agent_bin, "--endpoint", "unix://" + dir_ + "/node.sock", "--node-id", kNodeId,
                  "--helper-socket", dir_ + "/helper.sock", "--kubelet-root", kubelet_,
                  "--state-dir", dir_ + "/agent-state", "--log-level", log_level},
                 dir_ + "/lbcsi-agent.log");

    auto ctrl_channel = Channel(dir_ + "/controller.sock");
    auto node_channel = Channel(dir_ + "/node.sock");
    auto ctrl_identity = csi::v1::Identity::NewStub(ctrl_channel);
    auto node_identity = csi::v1::Identity::NewStub(node_channel);
    // Probes every 200 ms: each failed one costs this (ASan) process CPU the daemons need.
    if (!WaitFor([&] { return ProbeReady(*ctrl_identity) || !controller_.Alive(); },
                 std::chrono::seconds(90), std::chrono::milliseconds(200)) ||
        !controller_.Alive()) {
      return "lbcsi-controller did not become ready:\n" + ReadAll(dir_ + "/lbcsi-controller.log");
    }
    SuiteNote("lbcsi-controller ready");
    controller_stub_ = csi::v1::Controller::NewStub(ctrl_channel);
    if (!WaitFor([&] { return ProbeReady(*node_identity) || !agent_.Alive(); },
                 std::chrono::seconds(90), std::chrono::milliseconds(200)) ||
        !agent_.Alive()) {
      return "lbcsi-agent did not become ready:\n" + ReadAll(dir_ + "/lbcsi-agent.log") +
             "\n--- helper ---\n" + ReadAll(dir_ + "/lbcsi-helper.log");
    }
    node_stub_ = csi::v1::Node::NewStub(node_channel);
    return "";
  }

  static void SuiteNote(const std::string& what) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - suite_t0_);
    std::printf("[suite %6ld ms] %s\n", static_cast<long>(ms.count()), what.c_str());
  }
  void Note(const std::string& what) const {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0_);
    std::printf("[%6ld ms] %s\n", static_cast<long>(ms.count()), what.c_str());
    std::fflush(stdout);
  }

  // One CSI call with a deadline.
  template <typename Stub, typename Req, typename Resp>
  static grpc::Status Call(grpc::Status (Stub::*fn)(grpc::ClientContext*, const Req&, Resp*),
                           const Req& req, Resp* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(90));
    grpc::Status st;
    if constexpr (std::is_same_v<Stub, Ctl>) {
      st = (controller_stub_.get()->*fn)(&ctx, req, resp);
    } else {
      st = (node_stub_.get()->*fn)(&ctx, req, resp);
    }
    // Every error message goes through the redaction check of the encrypted tests.
    if (!st.ok()) errors_seen_.push_back(st.error_message());
    return st;
  }
  template <typename Stub, typename Req, typename Resp>
  static grpc::Status Call(grpc::Status (Stub::*fn)(grpc::ClientContext*, const Req&, Resp*),
                           const Req& req) {
    Resp resp;
    return Call(fn, req, &resp);
  }

  // ---- CO-like requests: kubelet-style paths under the kubelet root ----
  // The pre-1.24 pv layout for filesystem volumes; kubelet's volumeDevices paths for a PV once
  // it was staged or published as raw block (the helper accepts no other paths).
  static std::string Staging(const std::string& pv) {
    if (block_pvs_.count(pv))
      return kubelet_ + "/plugins/kubernetes.io/csi/volumeDevices/staging/" + pv;
    return kubelet_ + "/plugins/kubernetes.io/csi/pv/" + pv + "/globalmount";
  }
  static std::string Target(const std::string& pv) {
    if (block_pvs_.count(pv)) {
      return kubelet_ + "/plugins/kubernetes.io/csi/volumeDevices/publish/" + pv + "/pod1";
    }
    return kubelet_ + "/pods/pod1/volumes/kubernetes.io~csi/" + pv + "/mount";
  }
  // What kubelet does first: the staging dir and the target's parent exist (both volume modes:
  // which one a PV has is known at stage time).
  static void PrepareNodeDirs(const std::string& pv) {
    fs::create_directories(kubelet_ + "/plugins/kubernetes.io/csi/pv/" + pv + "/globalmount");
    fs::create_directories(kubelet_ + "/plugins/kubernetes.io/csi/volumeDevices/staging/" + pv);
    fs::create_directories(kubelet_ + "/plugins/kubernetes.io/csi/volumeDevices/publish/" + pv);
    fs::create_directories(kubelet_ + "/pods/pod1/volumes/kubernetes.io~csi/" + pv);
  }
  // Controller secrets. With `encrypted`, the Secret also holds the passphrase, as when
  // one Secret serves the provisioner, the attacher and node-stage: the controller sees
  // it go by and must not log it.
  template <typename Req>
  static void AddSecrets(Req* r, bool encrypted = false) {
    (*r->mutable_secrets())["jwt"] = kToken;
    if (encrypted) (*r->mutable_secrets())[kPassphraseKey] = kPass;
  }

  csi::v1::CreateVolumeRequest CreateReq(const std::string& name,
                                         const csi::v1::VolumeCapability& cap,
                                         bool encrypted = false) const {
    csi::v1::CreateVolumeRequest r;
    r.set_name(name);
    *r.add_volume_capabilities() = cap;
    r.mutable_capacity_range()->set_required_bytes(kGiB);
    (*r.mutable_parameters())["mgmt-endpoint"] = mgmt_;
    (*r.mutable_parameters())["mgmt-scheme"] = "grpc";
    (*r.mutable_parameters())["replica-count"] = "1";
    if (encrypted) (*r.mutable_parameters())["host-encryption"] = "enabled";
    AddSecrets(&r, encrypted);
    return r;
  }
  static bool IsEncryptedId(const std::string& id) {
    auto parsed = lbcsi::ParseResourceId(id);
    return parsed.ok() && parsed->host_encryption;
  }
  csi::v1::ControllerPublishVolumeRequest PublishReq(const std::string& id,
                                                     const csi::v1::VolumeCapability& cap) const {
    csi::v1::ControllerPublishVolumeRequest r;
    r.set_volume_id(id);
    r.set_node_id(kNodeId);
    *r.mutable_volume_capability() = cap;
    AddSecrets(&r, IsEncryptedId(id));
    return r;
  }
  csi::v1::ControllerUnpublishVolumeRequest UnpublishReq(const std::string& id) const {
    csi::v1::ControllerUnpublishVolumeRequest r;
    r.set_volume_id(id);
    r.set_node_id(kNodeId);
    AddSecrets(&r, IsEncryptedId(id));
    return r;
  }
  csi::v1::DeleteVolumeRequest DeleteReq(const std::string& id) const {
    csi::v1::DeleteVolumeRequest r;
    r.set_volume_id(id);
    AddSecrets(&r, IsEncryptedId(id));
    return r;
  }
  // `passphrase`, when set, goes in the node-stage Secret as kubelet passes it.
  csi::v1::NodeStageVolumeRequest StageReq(const std::string& id, const std::string& pv,
                                           const Context& pc, const Context& vc,
                                           const csi::v1::VolumeCapability& cap,
                                           const std::string& passphrase = "") const {
    csi::v1::NodeStageVolumeRequest r;
    if (cap.has_block()) block_pvs_.insert(pv);
    r.set_volume_id(id);
    r.set_staging_target_path(Staging(pv));
    *r.mutable_volume_capability() = cap;
    *r.mutable_publish_context() = pc;
    *r.mutable_volume_context() = vc;
    if (!passphrase.empty()) (*r.mutable_secrets())[kPassphraseKey] = passphrase;
    return r;
  }
  csi::v1::NodeUnstageVolumeRequest UnstageReq(const std::string& id, const std::string& pv) const {
    csi::v1::NodeUnstageVolumeRequest r;
    r.set_volume_id(id);
    r.set_staging_target_path(Staging(pv));
    return r;
  }
  csi::v1::NodePublishVolumeRequest NodePublishReq(const std::string& id, const std::string& pv,
                                                   const Context& pc, const Context& vc,
                                                   const csi::v1::VolumeCapability& cap) const {
    csi::v1::NodePublishVolumeRequest r;
    if (cap.has_block()) block_pvs_.insert(pv);
    r.set_volume_id(id);
    r.set_staging_target_path(Staging(pv));
    r.set_target_path(Target(pv));
    *r.mutable_volume_capability() = cap;
    *r.mutable_publish_context() = pc;
    *r.mutable_volume_context() = vc;
    return r;
  }
  csi::v1::NodeUnpublishVolumeRequest NodeUnpublishReq(const std::string& id,
                                                       const std::string& pv) const {
    csi::v1::NodeUnpublishVolumeRequest r;
    r.set_volume_id(id);
    r.set_target_path(Target(pv));
    return r;
  }
  csi::v1::NodeGetVolumeStatsRequest StatsReq(const std::string& id, const std::string& pv) const {
    csi::v1::NodeGetVolumeStatsRequest r;
    r.set_volume_id(id);
    r.set_volume_path(Target(pv));
    return r;
  }
  csi::v1::ControllerExpandVolumeRequest ControllerExpandReq(const std::string& id,
                                                             const csi::v1::VolumeCapability& cap,
                                                             int64_t bytes) const {
    csi::v1::ControllerExpandVolumeRequest r;
    r.set_volume_id(id);
    r.mutable_capacity_range()->set_required_bytes(bytes);
    *r.mutable_volume_capability() = cap;
    AddSecrets(&r, IsEncryptedId(id));
    return r;
  }
  csi::v1::NodeExpandVolumeRequest NodeExpandReq(const std::string& id, const std::string& pv,
                                                 const csi::v1::VolumeCapability& cap,
                                                 int64_t bytes) const {
    csi::v1::NodeExpandVolumeRequest r;
    r.set_volume_id(id);
    r.set_volume_path(Target(pv));
    r.set_staging_target_path(Staging(pv));
    r.mutable_capacity_range()->set_required_bytes(bytes);
    *r.mutable_volume_capability() = cap;
    return r;
  }

  // ---- steps shared by the tests ----

  // CreateVolume: 1 GiB, created empty, its image and a hidden namespace appear.
  void Create(const std::string& name, const csi::v1::VolumeCapability& cap, std::string* id,
              std::string* uuid, Context* volume_context, bool encrypted = false) {
    csi::v1::CreateVolumeResponse created;
    ASSERT_RPC_OK(Call(&Ctl::CreateVolume, CreateReq(name, cap, encrypted), &created));
    *id = created.volume().volume_id();
    *volume_context = created.volume().volume_context();
    EXPECT_EQ(created.volume().capacity_bytes(), kGiB);
    EXPECT_EQ(Get(*volume_context, lbcsi::csictx::kCreatedEmpty), "true");
    if (encrypted) {
      EXPECT_NE(id->find("|hostcrypto:luks2"), std::string::npos) << *id;
    }
    auto parsed = lbcsi::ParseResourceId(*id);
    ASSERT_TRUE(parsed.ok()) << *id;
    *uuid = parsed->uuid;
    EXPECT_EQ(fs::file_size(Image(*uuid)), static_cast<uintmax_t>(kGiB));
    // Not published yet: the namespace exists but this host must not see it.
    ASSERT_TRUE(WaitFor([&] { return NamespaceState(nqn_, *uuid) == "disabled"; },
                        std::chrono::seconds(10)))
        << "nvmet namespace state: '" << NamespaceState(nqn_, *uuid) << "'";
    Note("CreateVolume " + *id);
  }

  // ControllerPublishVolume: the ACL gains this node's host NQN, publish_context points at
  // the nvmet ports, the namespace becomes visible.
  void Publish(const std::string& id, const std::string& uuid, const csi::v1::VolumeCapability& cap,
               Context* pc) {
    csi::v1::ControllerPublishVolumeResponse published;
    ASSERT_RPC_OK(Call(&Ctl::ControllerPublishVolume, PublishReq(id, cap), &published));
    *pc = published.publish_context();
    EXPECT_EQ(Get(*pc, lbcsi::csictx::kSubsysNqn), nqn_);
    EXPECT_EQ(Get(*pc, lbcsi::csictx::kNvmeEndpoints), "127.0.0.1:4420,127.0.0.1:4421");
    EXPECT_EQ(Get(*pc, lbcsi::csictx::kDiscoveryEndpoints), "127.0.0.1:4420,127.0.0.1:4421");
    EXPECT_EQ(Get(*pc, lbcsi::csictx::kNeverWritten), "true");
    EXPECT_EQ(ReadAll(Acl(uuid)), host_nqn_ + "\n");
    ASSERT_TRUE(
        WaitFor([&] { return NamespaceState(nqn_, uuid) == "enabled"; }, std::chrono::seconds(10)))
        << "the ACL admits this host but the namespace is '" << NamespaceState(nqn_, uuid) << "'";
    Note("ControllerPublishVolume: ACL holds " + host_nqn_ + ", namespace enabled");
  }

  // A volume as one test drives it: its PV name, CSI volume id, LightOS UUID, and the
  // contexts CreateVolume and ControllerPublishVolume returned.
  struct Volume {
    std::string pv, id, uuid;
    Context vc, pc;
  };
  // Create, then Publish, then the node dirs kubelet makes first.
  void Provision(const std::string& name, const std::string& pv,
                 const csi::v1::VolumeCapability& cap, bool encrypted, Volume* v) {
    v->pv = pv;
    ASSERT_NO_FATAL_FAILURE(Create(name, cap, &v->id, &v->uuid, &v->vc, encrypted));
    ASSERT_NO_FATAL_FAILURE(Publish(v->id, v->uuid, cap, &v->pc));
    PrepareNodeDirs(pv);
  }

  // Both paths through the discovery log: two live controllers of the subsystem.
  void ExpectTwoLivePaths() {
    auto ctrls = ControllersOf(nqn_);
    EXPECT_EQ(ctrls.size(), 2u);
    for (const auto& [name, state] : ctrls) EXPECT_EQ(state, "live") << name;
  }

  // NodeUnstage leaves no controller of the subsystem and no mount under the kubelet root.
  void ExpectNodeClean(const std::string& what) {
    EXPECT_TRUE(ControllersOf(nqn_).empty()) << what << ": controllers left";
    for (const auto& m : MountsUnder(kubelet_))
      ADD_FAILURE() << what << ": mount left " << m.target;
  }

  // ControllerUnpublish hides the namespace again, DeleteVolume removes image and namespace.
  void UnpublishAndDelete(const std::string& id, const std::string& uuid) {
    ASSERT_RPC_OK(Call(&Ctl::ControllerUnpublishVolume, UnpublishReq(id)));
    EXPECT_EQ(ReadAll(Acl(uuid)), "ALLOW_NONE\n");
    EXPECT_TRUE(
        WaitFor([&] { return NamespaceState(nqn_, uuid) == "disabled"; }, std::chrono::seconds(10)))
        << "namespace '" << NamespaceState(nqn_, uuid) << "' after ControllerUnpublish";
    Note("ControllerUnpublishVolume: ACL ALLOW_NONE, namespace disabled");
    ASSERT_RPC_OK(Call(&Ctl::DeleteVolume, DeleteReq(id)));
    EXPECT_TRUE(WaitFor([&] { return !fs::exists(Image(uuid)); }, std::chrono::seconds(10)));
    EXPECT_TRUE(
        WaitFor([&] { return NamespaceState(nqn_, uuid).empty(); }, std::chrono::seconds(10)))
        << "namespace still there after DeleteVolume";
    Note("DeleteVolume: image and namespace gone");
    ExpectNodeClean("end of test");
    std::error_code ec;
    size_t records = 0;
    for (const auto& e : fs::directory_iterator(dir_ + "/agent-state/volumes", ec)) {
      ++records;
      ADD_FAILURE() << "agent record left: " << e.path() << "\n" << ReadAll(e.path());
    }
    EXPECT_EQ(records, 0u);
  }

  // ---- host encryption ----

  static std::string MapperName(const std::string& uuid) { return "lbcsi-" + uuid; }

  // ExpectNodeClean, and the volume's LUKS mapping is closed: no device-mapper device of
  // the volume, no /dev/mapper node for it.
  void ExpectEncryptedNodeClean(const std::string& uuid, const std::string& what) {
    ExpectNodeClean(what);
    EXPECT_EQ(DmDeviceNamed(MapperName(uuid)), "") << what << ": the LUKS mapping is still open";
    EXPECT_FALSE(fs::exists("/dev/mapper/" + MapperName(uuid))) << what;
  }

  // The volume as LightOS stores it (the image behind nvmet): a LUKS2 header at offset 0,
  // and nowhere the plaintext marker written through the decrypted device.
  void ExpectCiphertextOnly(const std::string& uuid, const std::string& marker) {
    std::ifstream img(Image(uuid), std::ios::binary);
    char head[8] = {};
    img.read(head, sizeof(head));
    EXPECT_EQ(std::string(head, 6), std::string("LUKS\xba\xbe", 6)) << "no LUKS magic";
    EXPECT_EQ(head[6], 0);
    EXPECT_EQ(head[7], 2) << "not a LUKS2 header";
    EXPECT_FALSE(FileContains(Image(uuid), marker)) << "plaintext found on the raw volume";
  }

  // The shipped plugin's LUKS parameters on a volume our helper formatted.
  void ExpectShippedLuksParameters(const std::string& uuid) {
    const std::string dump = Capture("cryptsetup luksDump " + Image(uuid));
    EXPECT_NE(dump.find("Version:       \t2"), std::string::npos) << dump;
    EXPECT_NE(dump.find("aes-xts-plain64"), std::string::npos) << dump;
    EXPECT_EQ(VolumeKeyBits(dump), 256) << dump;
    EXPECT_NE(dump.find("sha256"), std::string::npos) << dump;
    EXPECT_NE(dump.find("argon2id"), std::string::npos) << dump;
  }

  // Redaction: the passphrases never appear in a daemon's log (trace level: every request
  // was logged, redacted) or in any error message a CSI call returned so far.
  // `staged`: an encrypted volume was staged, so the agent and helper logs must show it.
  void ExpectNoPassphraseAnywhere(bool staged) {
    for (const char* name : {"lbcsi-agent", "lbcsi-helper", "lbcsi-controller", "lightos-sim"}) {
      const std::string log = ReadAll(dir_ + "/" + name + ".log");
      EXPECT_EQ(log.find(kPass), std::string::npos) << name << "'s log holds the passphrase";
      EXPECT_EQ(log.find(kWrong), std::string::npos) << name << "'s log holds a passphrase";
    }
    if (Env("LBCSI_CSI_VM_LOG_LEVEL").empty()) {
      // The logs did see the secrets' requests go by (redacted), so the search above
      // means something.
      EXPECT_NE(ReadAll(dir_ + "/lbcsi-controller.log").find(kPassphraseKey), std::string::npos);
      if (staged) {
        const std::string agent = ReadAll(dir_ + "/lbcsi-agent.log");
        EXPECT_NE(agent.find(kPassphraseKey), std::string::npos);
        EXPECT_NE(agent.find("OpenEncrypted"), std::string::npos);
        EXPECT_NE(ReadAll(dir_ + "/lbcsi-helper.log").find("OpenEncrypted"), std::string::npos);
      }
    }
    for (const std::string& e : errors_seen_) {
      EXPECT_EQ(e.find(kPass), std::string::npos) << e;
      EXPECT_EQ(e.find(kWrong), std::string::npos) << e;
    }
    Note("no passphrase in the agent, helper, controller or sim logs, nor in " +
         std::to_string(errors_seen_.size()) + " error message(s)");
  }

  // NodeExpandVolume as kubelet calls it: again while UNAVAILABLE (the host has not seen
  // the new namespace size yet).
  grpc::Status NodeExpandRetrying(const csi::v1::NodeExpandVolumeRequest& req,
                                  csi::v1::NodeExpandVolumeResponse* resp, int* attempts) {
    grpc::Status st;
    *attempts = 0;
    for (auto end = Clock::now() + std::chrono::seconds(30);;) {
      ++*attempts;
      st = Call(&Nd::NodeExpandVolume, req, resp);
      if (st.error_code() != grpc::StatusCode::UNAVAILABLE || Clock::now() > end) return st;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  // NodeGetVolumeStats of the published target, with at least one usage entry.
  void Stats(const std::string& id, const std::string& pv,
             csi::v1::NodeGetVolumeStatsResponse* stats) {
    ASSERT_RPC_OK(Call(&Nd::NodeGetVolumeStats, StatsReq(id, pv), stats));
    ASSERT_GE(stats->usage_size(), 1);
  }

  // An online expand as the CO drives it: ControllerExpandVolume (LightOS grows the
  // volume), then NodeExpandVolume until the host has seen the new size.
  struct Expansion {
    csi::v1::ControllerExpandVolumeResponse controller;
    csi::v1::NodeExpandVolumeResponse node;
    int node_attempts = 0;
    Clock::time_point node_start;  // when the first NodeExpandVolume call went out
  };
  void ExpandOnline(const std::string& id, const std::string& pv,
                    const csi::v1::VolumeCapability& cap, int64_t bytes, Expansion* out) {
    ASSERT_RPC_OK(
        Call(&Ctl::ControllerExpandVolume, ControllerExpandReq(id, cap, bytes), &out->controller));
    out->node_start = Clock::now();
    grpc::Status st =
        NodeExpandRetrying(NodeExpandReq(id, pv, cap, bytes), &out->node, &out->node_attempts);
    ASSERT_TRUE(st.ok()) << st.error_code() << " " << st.error_message();
  }

  static long MsSince(Clock::time_point t) {
    return static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
  }

  static std::string Image(const std::string& uuid) {
    return dir_ + "/sim/volumes/" + uuid + ".img";
  }
  static std::string Acl(const std::string& uuid) { return dir_ + "/sim/volumes/" + uuid + ".acl"; }

  inline static Clock::time_point suite_t0_;
  inline static std::string suite_error_, dir_, kubelet_, nqn_, host_nqn_, mgmt_;
  inline static bool target_up_ = false;
  inline static Child sim_, controller_, helper_, agent_, sync_loop_;
  inline static std::unique_ptr<Ctl> controller_stub_;
  inline static std::unique_ptr<Nd> node_stub_;
  inline static std::vector<std::string> errors_seen_;  // every CSI error message
  inline static std::set<std::string> block_pvs_;       // PVs used as raw block volumes
  Clock::time_point t0_;
};

// An ext4 volume from CreateVolume to DeleteVolume, with data, stats and an online expand.
TEST_F(CsiLifecycleVmTest, FilesystemVolumeFullLifecycle) {
  Volume vol;
  ASSERT_NO_FATAL_FAILURE(Provision("vm-fs-volume", "pv-fs", MountCap(), false, &vol));
  const auto& [pv, id, uuid, vc, pc] = vol;
  ASSERT_RPC_OK(Call(&Nd::NodeStageVolume, StageReq(id, pv, pc, vc, MountCap())));
  {
    auto mounts = MountsUnder(Staging(pv));
    ASSERT_EQ(mounts.size(), 1u);
    EXPECT_EQ(mounts[0].fstype, "ext4");
    const std::string dev = fs::path(mounts[0].source).filename();
    EXPECT_EQ(dev.rfind("nvme", 0), 0u) << mounts[0].source;
    EXPECT_EQ(ReadLine("/sys/block/" + dev + "/uuid"), uuid) << dev;
    Note("NodeStageVolume: ext4 on " + mounts[0].source + " at the staging path");
  }
  ExpectTwoLivePaths();

  ASSERT_RPC_OK(Call(&Nd::NodePublishVolume, NodePublishReq(id, pv, pc, vc, MountCap())));
  ASSERT_EQ(MountsUnder(Target(pv)).size(), 1u) << "target is not a mount point";
  EXPECT_EQ(WriteAndVerify(Target(pv) + "/data", 1 << 20, 'x'), "");
  Note("NodePublishVolume; wrote, synced and read back 1 MiB through the target");

  csi::v1::NodeGetVolumeStatsResponse stats;
  ASSERT_NO_FATAL_FAILURE(Stats(id, pv, &stats));
  EXPECT_EQ(stats.usage(0).unit(), csi::v1::VolumeUsage::BYTES);
  EXPECT_GT(stats.usage(0).total(), kGiB * 8 / 10);
  EXPECT_LE(stats.usage(0).total(), kGiB);
  EXPECT_GE(stats.usage(0).used(), 1 << 20);
  EXPECT_FALSE(stats.volume_condition().abnormal()) << stats.volume_condition().message();
  const int64_t total_before = stats.usage(0).total();
  Note("NodeGetVolumeStats: total " + std::to_string(total_before >> 20) + " MiB, used " +
       std::to_string(stats.usage(0).used() >> 20) + " MiB, " + stats.volume_condition().message());

  // Expand to 2 GiB: LightOS (the sim) grows the image, the sync loop makes nvmet re-read
  // it (AEN to the host), then the agent grows ext4 online.
  Expansion ex;
  ASSERT_NO_FATAL_FAILURE(ExpandOnline(id, pv, MountCap(), 2 * kGiB, &ex));
  EXPECT_EQ(ex.controller.capacity_bytes(), 2 * kGiB);
  EXPECT_TRUE(ex.controller.node_expansion_required());
  EXPECT_EQ(fs::file_size(Image(uuid)), static_cast<uintmax_t>(2 * kGiB));
  EXPECT_EQ(ex.node.capacity_bytes(), 2 * kGiB);
  Note("ControllerExpandVolume: 2 GiB; NodeExpandVolume: " +
       std::to_string(ex.node.capacity_bytes() >> 20) + " MiB after " +
       std::to_string(ex.node_attempts) + " call(s)");

  struct statvfs sv {};
  ASSERT_EQ(statvfs(Target(pv).c_str(), &sv), 0);
  const uint64_t fs_bytes = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize;
  EXPECT_GT(fs_bytes, static_cast<uint64_t>(kGiB) * 18 / 10);
  EXPECT_LE(fs_bytes, static_cast<uint64_t>(2 * kGiB));
  ASSERT_NO_FATAL_FAILURE(Stats(id, pv, &stats));
  EXPECT_GE(stats.usage(0).total(), total_before + kGiB * 9 / 10);
  EXPECT_EQ(VerifyFile(Target(pv) + "/data", 1 << 20, 'x'), "");
  EXPECT_EQ(WriteAndVerify(Target(pv) + "/after-grow", 1 << 20, 'y'), "");
  Note("filesystem now " + std::to_string(fs_bytes >> 20) + " MiB; data intact, writes work");

  ASSERT_RPC_OK(Call(&Nd::NodeUnpublishVolume, NodeUnpublishReq(id, pv)));
  EXPECT_TRUE(MountsUnder(Target(pv)).empty());
  ASSERT_RPC_OK(Call(&Nd::NodeUnstageVolume, UnstageReq(id, pv)));
  ExpectNodeClean("after NodeUnstageVolume");
  Note("NodeUnpublishVolume + NodeUnstageVolume: no mounts, controllers disconnected");

  // Staged again (a pod moving back): the existing filesystem is found and mounted, not
  // formatted; the data and the grown size survived the detach.
  ASSERT_RPC_OK(Call(&Nd::NodeStageVolume, StageReq(id, pv, pc, vc, MountCap())));
  EXPECT_EQ(VerifyFile(Staging(pv) + "/data", 1 << 20, 'x'), "");
  EXPECT_EQ(VerifyFile(Staging(pv) + "/after-grow", 1 << 20, 'y'), "");
  ASSERT_EQ(statvfs(Staging(pv).c_str(), &sv), 0);
  EXPECT_EQ(static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize, fs_bytes);
  ASSERT_RPC_OK(Call(&Nd::NodeUnstageVolume, UnstageReq(id, pv)));
  ExpectNodeClean("after the second NodeUnstageVolume");
  Note("re-staged: data and size intact; unstaged again");

  UnpublishAndDelete(id, uuid);
}

// A raw block volume: the pod's target is the device itself; data written through it
// lands in the volume's image on the target side.
TEST_F(CsiLifecycleVmTest, RawBlockVolumeStagePublish) {
  Volume vol;
  ASSERT_NO_FATAL_FAILURE(Provision("vm-block-volume", "pv-block", BlockCap(), false, &vol));
  const auto& [pv, id, uuid, vc, pc] = vol;
  ASSERT_RPC_OK(Call(&Nd::NodeStageVolume, StageReq(id, pv, pc, vc, BlockCap())));
  ExpectTwoLivePaths();
  ASSERT_RPC_OK(Call(&Nd::NodePublishVolume, NodePublishReq(id, pv, pc, vc, BlockCap())));
  struct stat sb {};
  ASSERT_EQ(stat(Target(pv).c_str(), &sb), 0);
  ASSERT_TRUE(S_ISBLK(sb.st_mode));
  Note("NodeStageVolume + NodePublishVolume (block): target is a block device");

  // 1 MiB at offset 3 MiB, written and read back with O_DIRECT through the target, then
  // found at the same offset of the image behind the nvmet namespace.
  std::string payload(1 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 131) ^ (i >> 9));
  std::string data = payload;
  ASSERT_EQ(DirectIo(Target(pv), 3 << 20, &data, /*write_it=*/true), "");
  std::string back(payload.size(), '\0');
  ASSERT_EQ(DirectIo(Target(pv), 3 << 20, &back, /*write_it=*/false), "");
  EXPECT_TRUE(back == payload) << "read back through the target differs";
  {
    std::ifstream img(Image(uuid), std::ios::binary);
    img.seekg(3 << 20);
    std::string on_target(payload.size(), '\0');
    img.read(on_target.data(), static_cast<std::streamsize>(on_target.size()));
    EXPECT_TRUE(img.good() && on_target == payload) << "the image does not hold the written data";
  }
  Note("1 MiB written through the target is in the volume's image");

  csi::v1::NodeGetVolumeStatsResponse stats;
  ASSERT_NO_FATAL_FAILURE(Stats(id, pv, &stats));
  EXPECT_EQ(stats.usage(0).total(), kGiB);
  EXPECT_FALSE(stats.volume_condition().abnormal()) << stats.volume_condition().message();

  ASSERT_RPC_OK(Call(&Nd::NodeUnpublishVolume, NodeUnpublishReq(id, pv)));
  EXPECT_FALSE(fs::exists(Target(pv)));
  ASSERT_RPC_OK(Call(&Nd::NodeUnstageVolume, UnstageReq(id, pv)));
  ExpectNodeClean("after NodeUnstageVolume");
  Note("NodeUnpublishVolume + NodeUnstageVolume (block): controllers disconnected");

  UnpublishAndDelete(id, uuid);
}

// A host-encrypted ext4 volume (StorageClass host-encryption: enabled) through the CSI API
// only: LUKS2 under the filesystem, the passphrase from the node-stage Secret; unstage
// closes the mapping and leaves only ciphertext; a wrong passphrase fails cleanly; the
// data comes back with the right one; online expand grows the mapping then ext4.
TEST_F(CsiLifecycleVmTest, EncryptedFilesystemVolumeLifecycle) {
  Volume vol;
  ASSERT_NO_FATAL_FAILURE(Provision("vm-crypt-volume", "pv-crypt", MountCap(), true, &vol));
  const auto& [pv, id, uuid, vc, pc] = vol;
  EXPECT_TRUE(IsEncryptedId(id)) << id;

  // First stage: LUKS2 format (never written), open, mkfs.ext4 inside, mount.
  auto t = Clock::now();
  ASSERT_RPC_OK(Call(&Nd::NodeStageVolume, StageReq(id, pv, pc, vc, MountCap(), kPass)));
  const long first_stage_ms = MsSince(t);
  const std::string dm = DmDeviceNamed(MapperName(uuid));
  ASSERT_FALSE(dm.empty()) << "no mapping " << MapperName(uuid) << " after NodeStageVolume";
  std::string raw_disk;
  {
    auto mounts = MountsUnder(Staging(pv));
    ASSERT_EQ(mounts.size(), 1u);
    EXPECT_EQ(mounts[0].fstype, "ext4");
    // Mounted from the decrypted device, never from the namespace itself.
    struct stat src {};
    ASSERT_EQ(stat(mounts[0].source.c_str(), &src), 0) << mounts[0].source;
    EXPECT_EQ(std::to_string(major(src.st_rdev)) + ":" + std::to_string(minor(src.st_rdev)),
              ReadLine("/sys/block/" + dm + "/dev"))
        << mounts[0].source << " is not " << dm;
    // The mapping sits on the volume's namespace, and only on it.
    std::vector<std::string> slaves;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/sys/block/" + dm + "/slaves", ec)) {
      slaves.push_back(e.path().filename());
    }
    ASSERT_EQ(slaves.size(), 1u);
    raw_disk = slaves[0];
    EXPECT_EQ(ReadLine("/sys/block/" + raw_disk + "/uuid"), uuid) << raw_disk;
    EXPECT_EQ(ReadLine("/sys/block/" + dm + "/dm/uuid").rfind("CRYPT-LUKS2-", 0), 0u);
    Note("NodeStageVolume (LUKS2 format + open + mkfs + mount) in " +
         std::to_string(first_stage_ms) + " ms: ext4 on " + mounts[0].source + " = " + dm +
         " over " + raw_disk);
  }
  ExpectTwoLivePaths();
  ExpectShippedLuksParameters(uuid);
  {
    // The agent's crash-safe record says encrypted, and never holds the passphrase.
    std::error_code ec;
    size_t records = 0;
    for (const auto& e : fs::directory_iterator(dir_ + "/agent-state/volumes", ec)) {
      ++records;
      EXPECT_EQ(ReadAll(e.path()).find(kPass), std::string::npos) << e.path();
    }
    EXPECT_EQ(records, 1u);
  }

  ASSERT_RPC_OK(Call(&Nd::NodePublishVolume, NodePublishReq(id, pv, pc, vc, MountCap())));
  ASSERT_EQ(MountsUnder(Target(pv)).size(), 1u) << "target is not a mount point";
  const std::string marker = "lbcsi-csi-plaintext-marker-5b1d";
  const std::string payload = MarkerPayload(marker, 1 << 20);
  EXPECT_EQ(WriteAndVerify(Target(pv) + "/data", payload), "");
  Note("NodePublishVolume; 1 MiB of a text marker written, synced, read back");

  csi::v1::NodeGetVolumeStatsResponse stats;
  ASSERT_NO_FATAL_FAILURE(Stats(id, pv, &stats));
  EXPECT_GT(stats.usage(0).total(), kGiB * 8 / 10);
  EXPECT_LT(stats.usage(0).total(), kGiB) << "the LUKS2 header takes its share";
  EXPECT_GE(stats.usage(0).used(), 1 << 20);
  EXPECT_FALSE(stats.volume_condition().abnormal()) << stats.volume_condition().message();
  const int64_t total_before = stats.usage(0).total();
  Note("NodeGetVolumeStats: total " + std::to_string(total_before >> 20) + " MiB, used " +
       std::to_string(stats.usage(0).used() >> 20) + " MiB, " + stats.volume_condition().message());

  // Online expand: LightOS grows the volume, the agent grows the mapping then ext4.
  // (ControllerExpandVolume leaves the filesystem as it is: its size before is taken first.)
  struct statvfs sv {};
  ASSERT_EQ(statvfs(Target(pv).c_str(), &sv), 0);
  const uint64_t fs_before = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize;
  Expansion ex;
  ASSERT_NO_FATAL_FAILURE(ExpandOnline(id, pv, MountCap(), 2 * kGiB, &ex));
  const long expand_ms = MsSince(ex.node_start);
  EXPECT_EQ(ex.controller.capacity_bytes(), 2 * kGiB);
  EXPECT_TRUE(ex.controller.node_expansion_required());
  EXPECT_EQ(ex.node.capacity_bytes(), 2 * kGiB);
  const uint64_t mapping_bytes = SysBlockBytes(dm);
  EXPECT_GT(mapping_bytes, static_cast<uint64_t>(2 * kGiB - (32 << 20)));
  EXPECT_LT(mapping_bytes, static_cast<uint64_t>(2 * kGiB));
  ASSERT_EQ(statvfs(Target(pv).c_str(), &sv), 0);
  const uint64_t fs_bytes = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize;
  EXPECT_GT(fs_bytes, fs_before + static_cast<uint64_t>(kGiB) * 9 / 10) << "statfs did not grow";
  EXPECT_GT(fs_bytes, static_cast<uint64_t>(kGiB) * 18 / 10);
  EXPECT_LE(fs_bytes, mapping_bytes);
  ASSERT_NO_FATAL_FAILURE(Stats(id, pv, &stats));
  EXPECT_GE(stats.usage(0).total(), total_before + kGiB * 9 / 10);
  EXPECT_TRUE(ReadAll(Target(pv) + "/data") == payload) << "data changed by the expand";
  EXPECT_EQ(WriteAndVerify(Target(pv) + "/after-grow", MarkerPayload(marker, 1 << 20)), "");
  Note("expanded online in " + std::to_string(expand_ms) + " ms (" +
       std::to_string(ex.node_attempts) + " NodeExpandVolume call(s)): mapping " +
       std::to_string(mapping_bytes >> 20) + " MiB, ext4 statfs " +
       std::to_string(fs_before >> 20) + " -> " + std::to_string(fs_bytes >> 20) + " MiB");

  ASSERT_RPC_OK(Call(&Nd::NodeUnpublishVolume, NodeUnpublishReq(id, pv)));
  t = Clock::now();
  ASSERT_RPC_OK(Call(&Nd::NodeUnstageVolume, UnstageReq(id, pv)));
  const long unstage_ms = MsSince(t);
  ExpectEncryptedNodeClean(uuid, "after NodeUnstageVolume");
  ExpectCiphertextOnly(uuid, marker);
  Note("NodeUnpublish + NodeUnstage (" + std::to_string(unstage_ms) +
       " ms): mapping closed, controllers gone; the image holds a LUKS2 header and no "
       "plaintext");

  // A missing passphrase is refused before anything is attached.
  grpc::Status st = Call(&Nd::NodeStageVolume, StageReq(id, pv, pc, vc, MountCap()));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_NE(st.error_message().find(kPassphraseKey), std::string::npos) << st.error_message();
  ExpectNodeClean("after a stage without passphrase");

  // A wrong passphrase: PERMISSION_DENIED, and the failed stage leaves nothing behind
  // (no mapping, mount, controller or agent record): kubelet will not call unstage.
  t = Clock::now();
  st = Call(&Nd::NodeStageVolume, StageReq(id, pv, pc, vc, MountCap(), kWrong));
  const long wrong_ms = MsSince(t);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  EXPECT_NE(st.error_message().find("passphrase"), std::string::npos) << st.error_message();
  ExpectEncryptedNodeClean(uuid, "after a wrong passphrase");
  {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_ + "/agent-state/volumes", ec)) {
      ADD_FAILURE() << "agent record left after a failed stage: " << ReadAll(e.path());
    }
  }
  Note("wrong passphrase refused in " + std::to_string(wrong_ms) +
       " ms: " + std::to_string(st.error_code()) + " \"" + st.error_message() + "\"; nothing left");

  // Staged again with the right one: opened (not re-formatted), data and size intact.
  t = Clock::now();
  ASSERT_RPC_OK(Call(&Nd::NodeStageVolume, StageReq(id, pv, pc, vc, MountCap(), kPass)));
  const long restage_ms = MsSince(t);
  EXPECT_FALSE(DmDeviceNamed(MapperName(uuid)).empty());
  EXPECT_TRUE(ReadAll(Staging(pv) + "/data") == payload) << "data lost across unstage/stage";
  EXPECT_TRUE(ReadAll(Staging(pv) + "/after-grow") == MarkerPayload(marker, 1 << 20));
  ASSERT_EQ(statvfs(Staging(pv).c_str(), &sv), 0);
  EXPECT_EQ(static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize, fs_bytes);
  Note("NodeStageVolume again (open + mount) in " + std::to_string(restage_ms) +
       " ms: data and size intact");
  // A repeated stage (kubelet retries) must prove the passphrase again.
  st = Call(&Nd::NodeStageVolume, StageReq(id, pv, pc, vc, MountCap(), kWrong));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  EXPECT_EQ(MountsUnder(Staging(pv)).size(), 1u) << "a refused repeat must not unstage";
  ASSERT_RPC_OK(Call(&Nd::NodeUnstageVolume, UnstageReq(id, pv)));
  ExpectEncryptedNodeClean(uuid, "after the second NodeUnstageVolume");
  ExpectCiphertextOnly(uuid, marker);

  UnpublishAndDelete(id, uuid);
  ExpectNoPassphraseAnywhere(/*staged=*/true);
}

// A host-encrypted raw block volume: the pod gets the decrypted device (the shipped plugin
// publishes the raw one); what the namespace holds is ciphertext. Stats and an online
// expand go through the mapping.
TEST_F(CsiLifecycleVmTest, EncryptedRawBlockVolumePublishesTheDecryptedDevice) {
  Volume vol;
  ASSERT_NO_FATAL_FAILURE(Provision("vm-crypt-block", "pv-crypt-block", BlockCap(), true, &vol));
  const auto& [pv, id, uuid, vc, pc] = vol;
  auto t = Clock::now();
  ASSERT_RPC_OK(Call(&Nd::NodeStageVolume, StageReq(id, pv, pc, vc, BlockCap(), kPass)));
  const long stage_ms = MsSince(t);
  const std::string dm = DmDeviceNamed(MapperName(uuid));
  ASSERT_FALSE(dm.empty()) << "no mapping after NodeStageVolume";
  ExpectShippedLuksParameters(uuid);
  ASSERT_RPC_OK(Call(&Nd::NodePublishVolume, NodePublishReq(id, pv, pc, vc, BlockCap())));
  struct stat sb {};
  ASSERT_EQ(stat(Target(pv).c_str(), &sb), 0);
  ASSERT_TRUE(S_ISBLK(sb.st_mode));
  EXPECT_EQ(std::to_string(major(sb.st_rdev)) + ":" + std::to_string(minor(sb.st_rdev)),
            ReadLine("/sys/block/" + dm + "/dev"))
      << "the published device is not the decrypted " << dm;
  std::string raw_disk;
  {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/sys/block/" + dm + "/slaves", ec)) {
      raw_disk = e.path().filename();
    }
  }
  ASSERT_FALSE(raw_disk.empty());
  EXPECT_EQ(ReadLine("/sys/block/" + raw_disk + "/uuid"), uuid);
  Note("NodeStageVolume (LUKS2 format + open) in " + std::to_string(stage_ms) +
       " ms; NodePublishVolume: the target is " + dm + " over " + raw_disk);

  // Plaintext through the target; the decrypted device shows it, the namespace does not.
  const std::string marker = "lbcsi-csi-block-marker-9e2c";
  const std::string payload = MarkerPayload(marker, 1 << 20);
  std::string data = payload;
  ASSERT_EQ(DirectIo(Target(pv), 3 << 20, &data, /*write_it=*/true), "");
  std::string back(payload.size(), '\0');
  ASSERT_EQ(DirectIo("/dev/" + dm, 3 << 20, &back, /*write_it=*/false), "");
  EXPECT_TRUE(back == payload) << "the decrypted device does not read back the data";
  // The first 32 MiB of the namespace (the 16 MiB LUKS2 header area, then the written
  // region at 16 + 3 MiB) hold no plaintext.
  std::string raw(32 << 20, '\0');
  ASSERT_EQ(DirectIo("/dev/" + raw_disk, 0, &raw, /*write_it=*/false), "");
  EXPECT_EQ(raw.compare(0, 6, std::string("LUKS\xba\xbe", 6)), 0)
      << "no LUKS header on the namespace";
  EXPECT_EQ(memmem(raw.data(), raw.size(), marker.data(), marker.size()), nullptr)
      << "plaintext readable on the raw namespace";
  EXPECT_FALSE(FileContains(Image(uuid), marker)) << "plaintext in the volume's image";
  Note("1 MiB written through the target reads back from " + dm + "; " + raw_disk +
       " and the image hold ciphertext only");

  csi::v1::NodeGetVolumeStatsResponse stats;
  ASSERT_NO_FATAL_FAILURE(Stats(id, pv, &stats));
  EXPECT_EQ(static_cast<uint64_t>(stats.usage(0).total()), SysBlockBytes(dm))
      << "block stats are of the decrypted device";
  EXPECT_LT(stats.usage(0).total(), kGiB);
  EXPECT_FALSE(stats.volume_condition().abnormal()) << stats.volume_condition().message();

  // Online expand of the block volume: the mapping follows the namespace.
  Expansion ex;
  ASSERT_NO_FATAL_FAILURE(ExpandOnline(id, pv, BlockCap(), 2 * kGiB, &ex));
  EXPECT_GT(SysBlockBytes(dm), static_cast<uint64_t>(2 * kGiB - (32 << 20)));
  ASSERT_NO_FATAL_FAILURE(Stats(id, pv, &stats));
  EXPECT_EQ(static_cast<uint64_t>(stats.usage(0).total()), SysBlockBytes(dm));
  back.assign(payload.size(), '\0');
  ASSERT_EQ(DirectIo(Target(pv), 3 << 20, &back, /*write_it=*/false), "");
  EXPECT_TRUE(back == payload) << "data changed by the expand";
  Note("block expand in " + std::to_string(MsSince(ex.node_start)) + " ms (" +
       std::to_string(ex.node_attempts) + " call(s)): mapping " +
       std::to_string(SysBlockBytes(dm) >> 20) + " MiB");

  ASSERT_RPC_OK(Call(&Nd::NodeUnpublishVolume, NodeUnpublishReq(id, pv)));
  EXPECT_FALSE(fs::exists(Target(pv)));
  ASSERT_RPC_OK(Call(&Nd::NodeUnstageVolume, UnstageReq(id, pv)));
  ExpectEncryptedNodeClean(uuid, "after NodeUnstageVolume");
  ExpectCiphertextOnly(uuid, marker);
  Note("NodeUnpublish + NodeUnstage (block): mapping closed, controllers gone");

  UnpublishAndDelete(id, uuid);
  ExpectNoPassphraseAnywhere(/*staged=*/true);
}

// The shipped plugin's rule: encrypted data does not compress, so the pair is refused
// before anything is created in LightOS.
TEST_F(CsiLifecycleVmTest, CompressionWithHostEncryptionIsRefused) {
  csi::v1::CreateVolumeRequest req = CreateReq("vm-crypt-compressed", MountCap(), true);
  (*req.mutable_parameters())["compression"] = "enabled";
  std::error_code ec;
  const auto images = [&] {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_ + "/sim/volumes", ec)) {
      n += e.path().extension() == ".img";
    }
    return n;
  };
  const size_t before = images();
  grpc::Status st = Call(&Ctl::CreateVolume, req);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_NE(st.error_message().find("compression"), std::string::npos) << st.error_message();
  EXPECT_EQ(images(), before) << "a volume was created";
  ExpectNoPassphraseAnywhere(/*staged=*/false);
}

}  // namespace
