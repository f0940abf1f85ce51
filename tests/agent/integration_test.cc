// Real processes over real sockets: lbcsi-helper (loop transport over a
// lightos-sim-style data directory) + lbcsi-agent, driven through CSI. Needs
// root (loop devices, mounts).
#include <fcntl.h>
#include <linux/loop.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include "common/strings.h"
#include "csi/v1/csi.grpc.pb.h"
#include "tests/common/loop_devices.h"

namespace lbcsi::agent::testing {
namespace {

constexpr char kNodeId[] = "itest.node";
constexpr char kHostNqn[] = "nqn.2019-09.com.lightbitslabs:host:itest.node";
constexpr char kSubsys[] = "nqn.2016-01.com.lightbitslabs:uuid:sim";

std::string Uuid(int n) {
  return fmt::format("2c3d4e5f-0000-4000-8000-{:012d}", n);
}
std::string VolId(int n) {
  return "mgmt:127.0.0.1:443|nguid:" + Uuid(n) + "|scheme:grpc";
}

std::vector<std::string> MountsUnder(const std::string& prefix) {
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

pid_t Spawn(std::vector<std::string> args) {
  pid_t pid = fork();
  if (pid == 0) {
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

void Stop(pid_t& pid, int sig) {
  if (pid <= 0) return;
  kill(pid, sig);
  int status = 0;
  for (int i = 0; i < 100 && waitpid(pid, &status, WNOHANG) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (i == 99) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
  }
  pid = -1;
}

class AgentIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      const char* ci = std::getenv("CI");
      if (ci && std::string(ci) == "true") FAIL() << "needs root and CI=true";
      GTEST_SKIP() << "needs root (loop devices, mounts)";
    }
    const char* build_env = std::getenv("LBCSI_BUILD_DIR");
    ASSERT_NE(build_env, nullptr) << "run through ctest (LBCSI_BUILD_DIR)";
    std::string build = build_env;
    helper_bin_ = build + "/helper/lbcsi-helper";
    agent_bin_ = build + "/agent/lbcsi-agent";
    if (!std::filesystem::exists(helper_bin_)) {
      if (const char* ci = std::getenv("CI"); ci && std::string(ci) == "true") {
        FAIL() << "lbcsi-helper not built at " << helper_bin_;
      }
      GTEST_SKIP() << "lbcsi-helper not built at " << helper_bin_;
    }
    char tmpl[] = "/tmp/lbcsi-agent-it-XXXXXX";
    dir_ = mkdtemp(tmpl);
    root_ = dir_ + "/kubelet";
    for (auto d : {root_, dir_ + "/sim/volumes", dir_ + "/etc"})
      std::filesystem::create_directories(d);
    std::ofstream(dir_ + "/etc/hostnqn") << kHostNqn << "\n";
    StartHelper();
    StartAgent();
  }
  void TearDown() override {
    if (dir_.empty()) return;
    Stop(agent_, SIGTERM);
    Stop(helper_, SIGTERM);
    for (int pass = 0; pass < 4; ++pass) {
      auto mounts = MountsUnder(dir_);
      std::sort(mounts.begin(), mounts.end(), [](auto& a, auto& b) { return a.size() > b.size(); });
      for (auto& m : mounts) umount2(m.c_str(), MNT_DETACH);
    }
    EXPECT_EQ(LoopDevices(), 0) << "loop devices leaked";
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // Our loop devices, freed as they are counted.
  int LoopDevices() {
    const auto loops = lbcsi::testing::LoopDevicesBackedBy(dir_ + "/sim/volumes/");
    for (const auto& loop : loops) lbcsi::testing::ClearLoopDevice(loop.name);
    return static_cast<int>(loops.size());
  }
  void StartHelper() {
    helper_ = Spawn({helper_bin_,
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
  }
  void StartAgent() {
    agent_ = Spawn({agent_bin_, "--endpoint", "unix://" + dir_ + "/csi.sock", "--node-id", kNodeId,
                    "--helper-socket", dir_ + "/helper.sock", "--kubelet-root", root_,
                    "--state-dir", dir_ + "/agent-state", "--log-level", "warn"});
    auto ch = grpc::CreateChannel("unix:" + dir_ + "/csi.sock", grpc::InsecureChannelCredentials());
    node_ = csi::v1::Node::NewStub(ch);
    identity_ = csi::v1::Identity::NewStub(ch);
    for (int i = 0; i < 400; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
      csi::v1::ProbeResponse resp;
      if (identity_->Probe(&ctx, {}, &resp).ok() && resp.ready().value()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "agent never became ready";
  }
  void MakeVolume(int n, uint64_t size) {
    std::string img = Cat(dir_, "/sim/volumes/", Uuid(n), ".img");
    int fd = open(img.c_str(), O_RDWR | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
    close(fd);
    std::ofstream(Cat(dir_, "/sim/volumes/", Uuid(n), ".acl")) << kHostNqn << "\n";
  }
  // kubelet's paths (the helper accepts no others): the pre-1.24 pv layout for filesystem
  // volumes, volumeDevices for the ones staged as raw block.
  std::string Staging(int n) {
    if (block_.count(n))
      return Cat(root_, "/plugins/kubernetes.io/csi/volumeDevices/staging/pv", n);
    return Cat(root_, "/plugins/kubernetes.io/csi/pv/pv", n, "/globalmount");
  }
  std::string Target(int n) {
    if (block_.count(n))
      return Cat(root_, "/plugins/kubernetes.io/csi/volumeDevices/publish/pv", n, "/p");
    return Cat(root_, "/pods/p/volumes/kubernetes.io~csi/pv", n, "/mount");
  }
  std::set<int> block_;

  template <typename Req, typename Resp, typename Fn>
  grpc::Status Call(Fn fn, const Req& req, Resp* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    return ((*node_).*fn)(&ctx, req, resp);
  }
  grpc::Status Stage(int n, const csi::v1::VolumeCapability& cap) {
    if (cap.has_block()) block_.insert(n);
    std::filesystem::create_directories(Staging(n));  // kubelet's job
    csi::v1::NodeStageVolumeRequest r;
    r.set_volume_id(VolId(n));
    r.set_staging_target_path(Staging(n));
    *r.mutable_volume_capability() = cap;
    (*r.mutable_publish_context())["lightbits.com/subsys-nqn"] = kSubsys;
    (*r.mutable_publish_context())["lightbits.com/nvme-endpoints"] = "127.0.0.1:4420";
    (*r.mutable_publish_context())["lightbits.com/never-written"] = "true";
    csi::v1::NodeStageVolumeResponse resp;
    return Call(&csi::v1::Node::Stub::NodeStageVolume, r, &resp);
  }
  grpc::Status Publish(int n, const csi::v1::VolumeCapability& cap, bool ro = false) {
    std::filesystem::create_directories(std::filesystem::path(Target(n)).parent_path());
    csi::v1::NodePublishVolumeRequest r;
    r.set_volume_id(VolId(n));
    r.set_staging_target_path(Staging(n));
    r.set_target_path(Target(n));
    *r.mutable_volume_capability() = cap;
    r.set_readonly(ro);
    csi::v1::NodePublishVolumeResponse resp;
    return Call(&csi::v1::Node::Stub::NodePublishVolume, r, &resp);
  }
  grpc::Status Unpublish(int n) {
    csi::v1::NodeUnpublishVolumeRequest r;
    r.set_volume_id(VolId(n));
    r.set_target_path(Target(n));
    csi::v1::NodeUnpublishVolumeResponse resp;
    return Call(&csi::v1::Node::Stub::NodeUnpublishVolume, r, &resp);
  }
  grpc::Status Unstage(int n) {
    csi::v1::NodeUnstageVolumeRequest r;
    r.set_volume_id(VolId(n));
    r.set_staging_target_path(Staging(n));
    csi::v1::NodeUnstageVolumeResponse resp;
    return Call(&csi::v1::Node::Stub::NodeUnstageVolume, r, &resp);
  }
  static csi::v1::VolumeCapability Fs(const std::string& fs) {
    csi::v1::VolumeCapability c;
    c.mutable_mount()->set_fs_type(fs);
    c.mutable_access_mode()->set_mode(
        csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_MULTI_WRITER);
    return c;
  }
  static csi::v1::VolumeCapability Block() {
    csi::v1::VolumeCapability c;
    c.mutable_block();
    c.mutable_access_mode()->set_mode(
        csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_MULTI_WRITER);
    return c;
  }

  std::string dir_, root_, helper_bin_, agent_bin_;
  pid_t helper_ = -1, agent_ = -1;
  std::unique_ptr<csi::v1::Node::Stub> node_;
  std::unique_ptr<csi::v1::Identity::Stub> identity_;
};

TEST_F(AgentIntegration, FilesystemLifecyclesWithRealMounts) {
  int n = 0;
  for (const std::string fs : {"ext4", "xfs"}) {
    ++n;
    SCOPED_TRACE(fs);
    MakeVolume(n, 512ull << 20);
    for (int i = 0; i < 2; ++i) {
      grpc::Status st = Stage(n, Fs(fs));
      ASSERT_TRUE(st.ok()) << st.error_message();
    }
    ASSERT_TRUE(Publish(n, Fs(fs)).ok());
    auto mounts = MountsUnder(root_);
    EXPECT_NE(std::find(mounts.begin(), mounts.end(), Staging(n)), mounts.end());
    EXPECT_NE(std::find(mounts.begin(), mounts.end(), Target(n)), mounts.end());
    std::ofstream(Target(n) + "/hello") << "data";
    csi::v1::NodeGetVolumeStatsRequest sreq;
    sreq.set_volume_id(VolId(n));
    sreq.set_volume_path(Target(n));
    csi::v1::NodeGetVolumeStatsResponse sresp;
    grpc::Status st = Call(&csi::v1::Node::Stub::NodeGetVolumeStats, sreq, &sresp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_GT(sresp.usage(0).total(), 0);
    ASSERT_TRUE(Unpublish(n).ok());
    ASSERT_TRUE(Unpublish(n).ok());
    ASSERT_TRUE(Unstage(n).ok());
    ASSERT_TRUE(Unstage(n).ok());
    EXPECT_TRUE(MountsUnder(root_).empty());
    // Staged again, the data is still there (no re-format).
    ASSERT_TRUE(Stage(n, Fs(fs)).ok());
    ASSERT_TRUE(Publish(n, Fs(fs), /*ro=*/true).ok());
    std::string got;
    {
      std::ifstream in(Target(n) + "/hello");  // closed before unpublish
      in >> got;
    }
    EXPECT_EQ(got, "data");
    ASSERT_TRUE(Unpublish(n).ok());
    ASSERT_TRUE(Unstage(n).ok());
    EXPECT_TRUE(MountsUnder(root_).empty());
  }
}

TEST_F(AgentIntegration, BlockLifecycle) {
  MakeVolume(5, 64ull << 20);
  grpc::Status st = Stage(5, Block());
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = Publish(5, Block());
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(MountsUnder(root_).size(), 1u);
  ASSERT_TRUE(Unpublish(5).ok());
  ASSERT_TRUE(Unstage(5).ok());
  EXPECT_TRUE(MountsUnder(root_).empty());
}

TEST_F(AgentIntegration, KillNineAgentAfterStageThenContinue) {
  MakeVolume(6, 512ull << 20);
  ASSERT_TRUE(Stage(6, Fs("ext4")).ok());
  Stop(agent_, SIGKILL);
  StartAgent();
  ASSERT_TRUE(Publish(6, Fs("ext4")).ok());
  ASSERT_TRUE(Unpublish(6).ok());
  ASSERT_TRUE(Unstage(6).ok());
  EXPECT_TRUE(MountsUnder(root_).empty());
  EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/agent-state/volumes"));
}

}  // namespace
}  // namespace lbcsi::agent::testing
