// The real node data path in the VM guest: lbcsi-helper (--transport nvme) driven over
// its socket against the kernel NVMe target on loopback (tests/vm/nvmet.sh).
// One helper process serves every test (its start-up costs seconds under TCG); each test
// has its own subsystem NQN, volumes and staging directories, and tears its target down.
//   - attach by UUID with multipath -> probe -> format -> mount -> write/verify -> stats ->
//     a target port goes away (I/O continues, stats "1 of 2 paths down") -> unmount -> detach;
//   - online expand (ext4 and xfs) after growing the namespaces; detach disconnects the
//     controllers only once no volume of the subsystem is in use;
//   - a namespace hidden by the ACL: a clear error before the request deadline.
// Registered only in the guest suite (tests/vm/CMakeLists.txt).

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "lbcsi/helper/v1/helper.grpc.pb.h"
#include "tests/vm/guest_util.h"
#include "tests/vm/rpc_assert.h"

namespace {

using namespace lbcsi::vmtest;
namespace fs = std::filesystem;
namespace hv1 = ::lbcsi::helper::v1;
using Clock = std::chrono::steady_clock;
using Stub = hv1::NodeHelper::Stub;

class HelperNvmeVmTest : public ::testing::Test {
 protected:
  // ---- one helper for the whole suite ----
  static void SetUpTestSuite() {
    suite_error_.clear();
    if (Env("LBCSI_IN_VM") != "1") {
      suite_error_ = "runs inside the VM guest only (tests/vm/run-in-vm.sh)";
      return;
    }
    char tmpl[] = "/var/tmp/helper-vm.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      suite_error_ = "mkdtemp failed";
      return;
    }
    suite_dir_ = tmpl;
    fs::create_directories(suite_dir_ + "/root");
    fs::create_directories(suite_dir_ + "/state");
    fs::create_directories(suite_dir_ + "/etc");
    socket_ = suite_dir_ + "/helper.sock";
    const std::string helper = Env("LBCSI_HELPER_BIN");
    if (helper.empty()) {
      suite_error_ = "LBCSI_HELPER_BIN (set by the guest suite) is missing";
      return;
    }
    std::vector<std::string> args = {helper,
                                     "--socket",
                                     socket_,
                                     "--allowed-uid",
                                     "0",
                                     "--allowed-gid",
                                     "0",
                                     "--allow-root-client",
                                     "--root",
                                     suite_dir_ + "/root",
                                     "--state-dir",
                                     suite_dir_ + "/state",
                                     "--host-nqn-file",
                                     suite_dir_ + "/etc/hostnqn",
                                     "--transport",
                                     "nvme",
                                     "--ctrl-loss-tmo",
                                     "5",
                                     "--seccomp",  // as deployed, whatever the default
                                     "enforce"};
    helper_pid_ = fork();
    if (helper_pid_ < 0) {
      suite_error_ = "fork failed";
      return;
    }
    if (helper_pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test must not leave the helper running
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    // Under TCG the helper's start-up (ASan, seccomp, spawner) takes seconds.
    for (auto end = Clock::now() + std::chrono::seconds(60); !fs::exists(socket_);) {
      int status = 0;
      if (waitpid(helper_pid_, &status, WNOHANG) != 0) {
        helper_pid_ = -1;
        suite_error_ = "lbcsi-helper exited early";
        return;
      }
      if (Clock::now() > end) {
        suite_error_ = "lbcsi-helper did not create its socket in 60 s";
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    stub_ = hv1::NodeHelper::NewStub(
                grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials()))
                .release();
  }

  static void TearDownTestSuite() {
    delete stub_;
    stub_ = nullptr;
    if (helper_pid_ > 0) {
      kill(helper_pid_, SIGTERM);
      int status = 0;
      for (auto end = Clock::now() + std::chrono::seconds(20);
           waitpid(helper_pid_, &status, WNOHANG) == 0;) {
        if (Clock::now() >= end) {
          kill(helper_pid_, SIGKILL);
          waitpid(helper_pid_, &status, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      helper_pid_ = -1;
    }
    std::error_code ec;
    if (!suite_dir_.empty()) fs::remove_all(suite_dir_, ec);
  }

  // ---- per test: a subsystem of its own on ports 4420 and 4421 ----
  void SetUp() override {
    ASSERT_TRUE(suite_error_.empty()) << suite_error_;
    ASSERT_EQ(geteuid(), 0u);
    dir_ = suite_dir_ + "/root/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_);
    nqn_ = "nqn.2016-01.com.lightbitslabs:uuid:" + NewUuid();
    ASSERT_TRUE(Nvmet("nvmet_need_cfg; nvmet_subsys " + nqn_ + "; nvmet_port_add " + nqn_ +
                      " 1 127.0.0.1 4420; nvmet_port_add " + nqn_ + " 2 127.0.0.1 4421"));
    target_up_ = true;
    t0_ = Clock::now();
  }

  void TearDown() override {
    // Whatever a failed test left: mounts, controllers of our subsystem, the target.
    for (const std::string& m : mounts_) std::system(("umount -q " + m + " 2>/dev/null").c_str());
    DeleteControllers(nqn_);
    if (target_up_) Nvmet("nvmet_teardown");
    std::error_code ec;
    for (const std::string& img : images_) fs::remove(img, ec);
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  long Ms() const {
    return static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0_).count());
  }
  void Note(const std::string& what) const { std::printf("[%6ld ms] %s\n", Ms(), what.c_str()); }

  // A volume: a sparse image exported as namespace NSID, visible unless `visible` is false.
  std::string AddVolume(int nsid, const std::string& size, bool visible = true) {
    std::string uuid = NewUuid();
    std::string img = suite_dir_ + "/" + uuid + ".img";
    images_.push_back(img);
    EXPECT_TRUE(Nvmet("truncate -s " + size + " " + img + "; nvmet_ns_add " + nqn_ + " " +
                      std::to_string(nsid) + " " + uuid + " " + img +
                      (visible ? "" : " --disabled")));
    return uuid;
  }

  // kubelet's pre-1.24 staging layout (the helper accepts no other path), one PV per test and name.
  std::string Staging(const std::string& name) {
    std::string pv =
        std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" + name;
    for (char& c : pv) {
      const auto u = static_cast<unsigned char>(c);
      c = std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '-';
    }
    std::string p = suite_dir_ + "/root/plugins/kubernetes.io/csi/pv/" + pv + "/globalmount";
    fs::create_directories(p);
    mounts_.push_back(p);
    return p;
  }

  template <typename Req, typename Resp>
  grpc::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                    const Req& req, Resp* resp,
                    std::chrono::seconds deadline = std::chrono::seconds(120)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    return (stub_->*method)(&ctx, req, resp);
  }

  hv1::AttachRequest AttachReq(const std::string& uuid) {
    hv1::AttachRequest a;
    a.set_volume_uuid(uuid);
    a.set_subsystem_nqn(nqn_);
    for (uint32_t port : {4420u, 4421u}) {
      auto* ep = a.add_nvme_endpoints();
      ep->set_ip("127.0.0.1");
      ep->set_port(port);
    }
    return a;
  }

  // Attach + Probe (blank) + Format + Mount: the NodeStage sequence.
  void Stage(const std::string& uuid, hv1::FsType fs, const std::string& staging,
             hv1::AttachResponse* attached, const hv1::AttachRequest* custom = nullptr) {
    ASSERT_RPC_OK(Call(&Stub::Attach, custom ? *custom : AttachReq(uuid), attached));
    hv1::ProbeRequest probe;
    probe.set_volume_uuid(uuid);
    hv1::ProbeResponse probed;
    ASSERT_RPC_OK(Call(&Stub::Probe, probe, &probed));
    ASSERT_EQ(probed.kind(), hv1::CONTENT_KIND_BLANK);
    hv1::FormatRequest format;
    format.set_volume_uuid(uuid);
    format.set_fs_type(fs);
    format.set_proof(hv1::NEVER_WRITTEN_PROOF_CREATED_EMPTY);
    hv1::FormatResponse formatted;
    ASSERT_RPC_OK(Call(&Stub::Format, format, &formatted));
    ASSERT_TRUE(formatted.formatted());
    hv1::MountRequest mount;
    mount.set_volume_uuid(uuid);
    mount.set_staging_path(staging);
    mount.set_fs_type(fs);
    hv1::MountResponse mounted;
    ASSERT_RPC_OK(Call(&Stub::Mount, mount, &mounted));
    ASSERT_FALSE(mounted.already_mounted());
  }

  hv1::StatsResponse Stats(const std::string& uuid, const std::string& path) {
    hv1::StatsRequest req;
    req.set_volume_uuid(uuid);
    req.set_path(path);
    hv1::StatsResponse resp;
    grpc::Status st = Call(&Stub::Stats, req, &resp);
    EXPECT_TRUE(st.ok()) << "Stats " << path << ": " << st.error_message();
    return resp;
  }

  void Unmount(const std::string& staging) {
    hv1::UnmountRequest req;
    req.set_staging_path(staging);
    hv1::UnmountResponse resp;
    ASSERT_RPC_OK(Call(&Stub::Unmount, req, &resp));
    EXPECT_TRUE(resp.was_mounted()) << staging;
  }

  hv1::DetachResponse Detach(const std::string& uuid) {
    hv1::DetachRequest req;
    req.set_volume_uuid(uuid);
    req.set_subsystem_nqn(nqn_);
    hv1::DetachResponse resp;
    grpc::Status st = Call(&Stub::Detach, req, &resp);
    EXPECT_TRUE(st.ok()) << "Detach " << uuid << ": " << st.error_message();
    return resp;
  }

  // Grows a volume's image and makes the target re-read it (nvmet sends an AEN).
  void GrowVolume(const std::string& uuid, int nsid, const std::string& size) {
    ASSERT_TRUE(Nvmet("truncate -s " + size + " " + suite_dir_ + "/" + uuid +
                      ".img; nvmet_ns_resize " + nqn_ + " " + std::to_string(nsid)));
  }

  inline static std::string suite_error_, suite_dir_, socket_;
  inline static pid_t helper_pid_ = -1;
  inline static Stub* stub_ = nullptr;

  std::string dir_, nqn_;
  std::vector<std::string> mounts_, images_;
  bool target_up_ = false;
  Clock::time_point t0_;
};

// The full cycle on one volume, with a path lost while mounted.
TEST_F(HelperNvmeVmTest, MultipathStageStatsPathLossDetach) {
  hv1::GetInfoResponse info;
  ASSERT_RPC_OK(Call(&Stub::GetInfo, hv1::GetInfoRequest{}, &info));
  EXPECT_TRUE(info.native_multipath());
  EXPECT_FALSE(info.development_transport());
  EXPECT_FALSE(info.host_nqn().empty());

  const std::string volume = AddVolume(1, "256M");
  const std::string staging = Staging("staging");
  // Keep a lost path's controller around (reconnecting) for the whole test: the default
  // 5 s of this helper would delete it, and with it the evidence of the lost path.
  hv1::AttachRequest attach = AttachReq(volume);
  attach.mutable_options()->set_ctrl_loss_tmo_seconds(60);
  attach.mutable_options()->set_reconnect_delay_seconds(1);
  hv1::AttachResponse attached;
  ASSERT_NO_FATAL_FAILURE(Stage(volume, hv1::FS_TYPE_EXT4, staging, &attached, &attach));
  Note("staged " + attached.device_name() + ": " + std::to_string(attached.paths_live()) + " of " +
       std::to_string(attached.paths_total()) + " paths live");
  EXPECT_EQ(attached.size_bytes(), 256ull << 20);
  EXPECT_EQ(attached.paths_total(), 2u);
  EXPECT_EQ(attached.paths_live(), 2u);

  EXPECT_EQ(WriteAndVerify(staging + "/data", 1 << 20, 'x'), "");
  hv1::StatsResponse st = Stats(volume, staging);
  EXPECT_GT(st.total_bytes(), 200ull << 20);
  EXPECT_GE(st.used_bytes(), 1ull << 20);
  EXPECT_FALSE(st.is_block());
  EXPECT_FALSE(st.condition().abnormal()) << st.condition().message();
  Note("wrote/read 1 MiB, stats normal");

  // Port 2 goes away: the path's controller drops to "connecting"; I/O uses port 1.
  ASSERT_TRUE(Nvmet("nvmet_port_remove " + nqn_ + " 2"));
  std::string message;
  for (auto end = Clock::now() + std::chrono::seconds(30); Clock::now() < end;) {
    st = Stats(volume, staging);
    message = st.condition().message();
    if (st.condition().abnormal()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(st.condition().abnormal()) << "no path loss reported; last condition: " << message;
  EXPECT_EQ(message, "1 of 2 paths down");
  Note("port 2 removed; stats: " + message);
  EXPECT_EQ(WriteAndVerify(staging + "/after-path-loss", 1 << 20, 'y'), "");
  Note("wrote/read 1 MiB over the remaining path");

  Unmount(staging);
  hv1::DetachResponse detached = Detach(volume);
  EXPECT_TRUE(detached.was_attached());
  EXPECT_TRUE(detached.controllers_disconnected());
  EXPECT_TRUE(ControllersOf(nqn_).empty()) << "controllers left after Detach";
  Note("unmounted and detached");
}

// Two volumes of one subsystem: online expand of ext4 and xfs, then detach keeps the
// controllers while the other volume is mounted and disconnects them after the last.
TEST_F(HelperNvmeVmTest, ExpandAndDetachOnlyWhenSubsystemIdle) {
  const std::string ext4_vol = AddVolume(1, "256M");
  const std::string xfs_vol = AddVolume(2, "512M");  // mkfs.xfs wants 300 MiB at least
  const std::string ext4_dir = Staging("ext4"), xfs_dir = Staging("xfs");
  hv1::AttachResponse a1, a2;
  ASSERT_NO_FATAL_FAILURE(Stage(ext4_vol, hv1::FS_TYPE_EXT4, ext4_dir, &a1));
  ASSERT_NO_FATAL_FAILURE(Stage(xfs_vol, hv1::FS_TYPE_XFS, xfs_dir, &a2));
  EXPECT_EQ(a2.size_bytes(), 512ull << 20);
  Note("staged ext4 on " + a1.device_name() + " and xfs on " + a2.device_name());
  const uint64_t ext4_before = Stats(ext4_vol, ext4_dir).total_bytes();
  const uint64_t xfs_before = Stats(xfs_vol, xfs_dir).total_bytes();
  EXPECT_EQ(WriteAndVerify(ext4_dir + "/before", 1 << 20, 'a'), "");

  // A mounted volume cannot be detached.
  {
    hv1::DetachRequest req;
    req.set_volume_uuid(ext4_vol);
    req.set_subsystem_nqn(nqn_);
    hv1::DetachResponse resp;
    grpc::Status st = Call(&Stub::Detach, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
    EXPECT_NE(st.error_message().find("in use"), std::string::npos) << st.error_message();
  }

  GrowVolume(ext4_vol, 1, "384M");
  GrowVolume(xfs_vol, 2, "768M");
  for (const auto& [uuid, path, want] :
       {std::tuple{ext4_vol, ext4_dir, 384ull << 20}, std::tuple{xfs_vol, xfs_dir, 768ull << 20}}) {
    hv1::ExpandFilesystemRequest req;
    req.set_volume_uuid(uuid);
    req.set_mount_path(path);
    hv1::ExpandFilesystemResponse resp;
    ASSERT_RPC_OK(Call(&Stub::ExpandFilesystem, req, &resp));
    EXPECT_EQ(resp.device_size_bytes(), want) << path;
    EXPECT_GT(resp.filesystem_size_bytes(), want * 9 / 10) << path;
    EXPECT_LE(resp.filesystem_size_bytes(), want) << path;
  }
  const uint64_t ext4_after = Stats(ext4_vol, ext4_dir).total_bytes();
  const uint64_t xfs_after = Stats(xfs_vol, xfs_dir).total_bytes();
  Note("expanded: ext4 " + std::to_string(ext4_before >> 20) + " -> " +
       std::to_string(ext4_after >> 20) + " MiB, xfs " + std::to_string(xfs_before >> 20) + " -> " +
       std::to_string(xfs_after >> 20) + " MiB");
  EXPECT_GE(ext4_after, ext4_before + (100ull << 20));
  EXPECT_GE(xfs_after, xfs_before + (200ull << 20));
  EXPECT_EQ(WriteAndVerify(ext4_dir + "/after-grow", 1 << 20, 'b'), "");
  EXPECT_EQ(WriteAndVerify(xfs_dir + "/after-grow", 1 << 20, 'c'), "");

  // The xfs volume goes; the ext4 one stays mounted: controllers must stay.
  Unmount(xfs_dir);
  hv1::DetachResponse d = Detach(xfs_vol);
  EXPECT_TRUE(d.was_attached());
  EXPECT_FALSE(d.controllers_disconnected());
  auto ctrls = ControllersOf(nqn_);
  EXPECT_EQ(ctrls.size(), 2u);
  for (const auto& [name, state] : ctrls) EXPECT_EQ(state, "live") << name;
  EXPECT_EQ(WriteAndVerify(ext4_dir + "/after-other-detach", 1 << 20, 'd'), "");
  EXPECT_FALSE(Stats(ext4_vol, ext4_dir).condition().abnormal());
  Note("detached xfs volume; controllers kept, ext4 volume still works");

  Unmount(ext4_dir);
  d = Detach(ext4_vol);
  EXPECT_TRUE(d.was_attached());
  EXPECT_TRUE(d.controllers_disconnected());
  EXPECT_TRUE(ControllersOf(nqn_).empty()) << "controllers left after the last Detach";
  Note("detached the last volume; controllers disconnected");
}

// The host is not in the volume's ACL: the namespace stays disabled and never appears.
TEST_F(HelperNvmeVmTest, AttachOutsideAclFailsClearlyBeforeDeadline) {
  hv1::GetInfoResponse info;
  ASSERT_RPC_OK(Call(&Stub::GetInfo, hv1::GetInfoRequest{}, &info));
  const std::string volume = AddVolume(1, "64M", /*visible=*/false);
  hv1::AttachResponse attached;
  const auto start = Clock::now();
  grpc::Status st = Call(&Stub::Attach, AttachReq(volume), &attached, std::chrono::seconds(5));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  Note("attach outside the ACL: " + std::to_string(st.error_code()) + " after " +
       std::to_string(took.count()) + " ms: " + st.error_message());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_NE(st.error_message().find("ACL"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find(info.host_nqn()), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find(volume), std::string::npos) << st.error_message();
  EXPECT_LT(took, std::chrono::seconds(5));
}

}  // namespace
