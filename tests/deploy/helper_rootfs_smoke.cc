// The release lbcsi-helper, started for real with --seccomp=enforce and the NVMe/TCP
// transport, answering every request that needs no NVMe device. Built for
// tests/deploy/helper_rootfs_test.sh, which runs it chrooted in the helper image's
// root filesystem: there the helper loads exactly the image's libraries (glibc,
// libnvme + json-c, libmount, libblkid, libcryptsetup + libdevmapper, gRPC), so a
// syscall one of them makes that the allow-list lacks kills it with SIGSYS here.
//
//   LBCSI_HELPER_BIN  the helper to start (default /usr/bin/lbcsi-helper)

#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include "lbcsi/helper/v1/helper.grpc.pb.h"

namespace lbcsi::helper {
namespace {

namespace v1 = lbcsi::helper::v1;
constexpr uid_t kAgentUid = 65532;
constexpr const char* kVolume = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";  // attached nowhere

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Kubelet-layout paths (kubeletpaths/): the helper accepts no others.
constexpr char kStaging[] = "/plugins/kubernetes.io/csi/pv/smoke/globalmount";
constexpr char kTarget[] = "/pods/0f3c2a1e-smoke/volumes/kubernetes.io~csi/smoke/mount";

bool MountedAt(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" " + path + " ") != std::string::npos) return true;
  }
  return false;
}

class RootfsHelper : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      // helper_rootfs_test.sh counts a skip as a failure too; say so here as well.
      if (const char* ci = std::getenv("CI"); ci && std::string(ci) == "true") {
        FAIL() << "needs root and CI=true";
      }
      GTEST_SKIP() << "needs root (the helper mounts and chowns)";
    }
    char tmpl[] = "/tmp/lbcsi-rootfs-smoke-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    root_ = dir_ + "/kubelet";
    for (const std::string& d : {root_, dir_ + "/etc/nvme", dir_ + "/run"}) {
      std::filesystem::create_directories(d);
    }
    socket_ = dir_ + "/run/helper.sock";
    log_ = dir_ + "/helper.log";
    const char* env = std::getenv("LBCSI_HELPER_BIN");
    const std::string bin = env ? env : "/usr/bin/lbcsi-helper";
    // The host NQN file is missing on purpose: the helper generates it (and the host id).
    const std::vector<std::pair<std::string, std::string>> flags = {
        {"--socket", socket_},
        {"--allowed-uid", std::to_string(kAgentUid)},
        {"--allowed-gid", std::to_string(kAgentUid)},
        {"--root", root_},
        {"--state-dir", dir_ + "/state"},
        {"--host-nqn-file", dir_ + "/etc/nvme/hostnqn"},
        {"--plugin-socket-dir", root_ + "/plugins/csi.lightbitslabs.com"},
        {"--registration-dir", root_ + "/plugins_registry"},
        {"--seccomp", "enforce"},
        {"--log-level", "debug"}};
    std::vector<std::string> args = {bin, "--allow-root-client", "--allow-foreign-netns"};
    for (const auto& [flag, value] : flags) {
      args.push_back(flag);
      args.push_back(value);
    }
    fflush(nullptr);
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      FILE* out = freopen(log_.c_str(), "w", stderr);
      if (out == nullptr) _exit(126);
      dup2(STDERR_FILENO, STDOUT_FILENO);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    stub_ = v1::NodeHelper::NewStub(
        grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials()));
    for (int i = 0; i < 200; ++i) {
      v1::GetInfoResponse info;
      if (access(socket_.c_str(), F_OK) == 0 &&
          Call(&v1::NodeHelper::Stub::GetInfo, v1::GetInfoRequest(), &info, 1).ok()) {
        return;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "the helper exited during start-up: " << Describe(status) << "\n"
               << ReadFile(log_);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "the helper did not come up within 10 s\n" << ReadFile(log_);
  }

  void TearDown() override {
    if (pid_ > 0) {
      stub_.reset();
      kill(pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 200 && waitpid(pid_, &status, WNOHANG) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (i == 199) {
          kill(pid_, SIGKILL);
          waitpid(pid_, &status, 0);
        }
      }
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "the helper did not shut down cleanly: " << Describe(status) << "\n"
          << ReadFile(log_);
      pid_ = -1;
    }
    if (dir_.empty()) return;
    for (const char* m : {kTarget, kStaging}) umount2((root_ + m).c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static std::string Describe(int status) {
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) {
      return "killed by SIGSYS: a library of the image made a syscall the allow-list lacks";
    }
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
    return "status " + std::to_string(status);
  }

  template <typename Req, typename Resp, typename Fn>
  grpc::Status Call(Fn fn, const Req& req, Resp* resp, int seconds = 30) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return ((*stub_).*fn)(&ctx, req, resp);
  }

  // After a call that is meant to fail: the helper must still be there.
  void ExpectAlive(const char* after) {
    v1::GetInfoResponse info;
    const grpc::Status st = Call(&v1::NodeHelper::Stub::GetInfo, v1::GetInfoRequest(), &info, 5);
    int status = 0;
    if (!st.ok() && waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      ADD_FAILURE() << "the helper died after " << after << ": " << Describe(status) << "\n"
                    << ReadFile(log_);
      return;
    }
    EXPECT_TRUE(st.ok()) << "after " << after << ": " << st.error_message();
  }

  std::string dir_, root_, socket_, log_;
  pid_t pid_ = -1;
  std::unique_ptr<v1::NodeHelper::Stub> stub_;
};

TEST_F(RootfsHelper, ReleaseBuildReportsItselfAndItsGeneratedIdentity) {
  v1::GetInfoResponse info;
  ASSERT_TRUE(Call(&v1::NodeHelper::Stub::GetInfo, v1::GetInfoRequest(), &info).ok());
  EXPECT_FALSE(info.development_transport()) << "the release helper has no loop transport";
  EXPECT_FALSE(info.version().empty());
  EXPECT_TRUE(info.host_nqn().starts_with("nqn.")) << info.host_nqn();
  std::string written = ReadFile(dir_ + "/etc/nvme/hostnqn");
  while (!written.empty() && written.back() == '\n') written.pop_back();
  EXPECT_EQ(written, info.host_nqn());
  ASSERT_EQ(info.roots_size(), 1);
  EXPECT_EQ(info.roots(0), root_);
}

TEST_F(RootfsHelper, PreparesSocketDirectoriesForTheAgent) {
  for (v1::SocketDir which : {v1::SOCKET_DIR_PLUGIN, v1::SOCKET_DIR_REGISTRATION}) {
    v1::PrepareSocketDirRequest req;
    req.set_dir(which);
    v1::PrepareSocketDirResponse resp;
    const grpc::Status st = Call(&v1::NodeHelper::Stub::PrepareSocketDir, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message() << "\n" << ReadFile(log_);
    struct stat sb {};
    ASSERT_EQ(stat(resp.path().c_str(), &sb), 0) << resp.path();
    EXPECT_EQ(sb.st_uid, kAgentUid) << resp.path();
    EXPECT_EQ(sb.st_mode & 07777, 0750u) << resp.path();
  }
  struct stat eph {};
  ASSERT_EQ(stat((root_ + "/plugins/csi.lightbitslabs.com/ephemeral").c_str(), &eph), 0);
  EXPECT_EQ(eph.st_uid, 0u);
}

// Real mounts under the root (tmpfs and a bind of it): inventory, statfs, and the

// helper's own umount2 calls through libmount's view of mountinfo.
TEST_F(RootfsHelper, ListsStatsAndUnmountsRealMounts) {
  const std::string staging = root_ + kStaging, target = root_ + kTarget;
  std::filesystem::create_directories(staging);
  std::filesystem::create_directories(target);
  ASSERT_EQ(mount("lbcsi-smoke", staging.c_str(), "tmpfs", 0, "size=8m"), 0) << strerror(errno);
  ASSERT_EQ(mount(staging.c_str(), target.c_str(), nullptr, MS_BIND, nullptr), 0);

  v1::InventoryResponse inv;
  grpc::Status st = Call(&v1::NodeHelper::Stub::Inventory, v1::InventoryRequest(), &inv);
  ASSERT_TRUE(st.ok()) << st.error_message() << "\n" << ReadFile(log_);
  int ours = 0;
  for (const v1::MountedPath& m : inv.mounts()) {
    if (m.path() == staging || m.path() == target) {
      ++ours;
      EXPECT_EQ(m.fs_type(), "tmpfs");
      EXPECT_TRUE(m.volume_uuid().empty());
    }
  }
  EXPECT_EQ(ours, 2);

  v1::StatsRequest sreq;
  sreq.set_path(staging);
  v1::StatsResponse stats;
  st = Call(&v1::NodeHelper::Stub::Stats, sreq, &stats);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(stats.total_bytes(), 8u << 20);
  EXPECT_FALSE(stats.condition().abnormal()) << stats.condition().message();

  v1::UnpublishRequest ureq;
  ureq.set_target_path(target);
  // These tmpfs mounts are not on a device the helper attached: the ownership rule
  // (docs/security.md) refuses to remove them, under the release image's real filter.
  v1::UnpublishResponse unpub;
  st = Call(&v1::NodeHelper::Stub::Unpublish, ureq, &unpub);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_TRUE(MountedAt(target));

  v1::UnmountRequest mreq;
  mreq.set_staging_path(staging);
  mreq.set_remove_staging_path(true);
  v1::UnmountResponse unmount;
  st = Call(&v1::NodeHelper::Stub::Unmount, mreq, &unmount);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_TRUE(MountedAt(staging));
  ExpectAlive("Unmount of a foreign mount");
}

// libnvme (topology scan, host object, fabrics connect) and libcryptsetup /
// libdevmapper lookups for a volume this node does not have.
TEST_F(RootfsHelper, NvmeAndEncryptionPathsForAnAbsentVolume) {
  v1::ProbeRequest probe;
  probe.set_volume_uuid(kVolume);
  v1::ProbeResponse presp;
  grpc::Status st = Call(&v1::NodeHelper::Stub::Probe, probe, &presp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  ExpectAlive("Probe");

  v1::DetachRequest detach;
  detach.set_volume_uuid(kVolume);
  v1::DetachResponse dresp;
  st = Call(&v1::NodeHelper::Stub::Detach, detach, &dresp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(dresp.was_attached());
  ExpectAlive("Detach");

  v1::CloseEncryptedRequest close;
  close.set_volume_uuid(kVolume);
  v1::CloseEncryptedResponse cresp;
  st = Call(&v1::NodeHelper::Stub::CloseEncrypted, close, &cresp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(cresp.was_open());
  ExpectAlive("CloseEncrypted");

  // Nothing listens on this loopback port: the connect fails (or, without the
  // nvme-fabrics device, never starts); either way the helper must survive it.
  v1::AttachRequest attach;
  attach.set_volume_uuid(kVolume);
  attach.set_subsystem_nqn("nqn.2016-01.com.lightbitslabs:uuid:lbcsi-rootfs-smoke");
  v1::TargetAddress* ep = attach.add_nvme_endpoints();
  ep->set_ip("127.0.0.1");
  ep->set_port(4420);
  attach.mutable_options()->set_ctrl_loss_tmo_seconds(0);
  v1::AttachResponse aresp;
  st = Call(&v1::NodeHelper::Stub::Attach, attach, &aresp, 20);
  EXPECT_FALSE(st.ok()) << "attached to nothing?";
  std::printf("Attach without a target: %d %s\n", static_cast<int>(st.error_code()),
              st.error_message().c_str());
  ExpectAlive("Attach");
}

}  // namespace
}  // namespace lbcsi::helper
