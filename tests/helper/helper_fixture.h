#pragma once
// Runs the real lbcsi-helper binary (loop transport) over its real socket in a
// temp directory, and cleans up mounts, loop devices and the process after
// each test, even when the test failed.

#include <fcntl.h>
#include <linux/loop.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "common/strings.h"
#include "helper/paths/mountinfo.h"
#include "kubeletpaths/kubelet_paths.h"
#include "lbcsi/helper/v1/helper.grpc.pb.h"
#include "tests/common/loop_devices.h"

namespace lbcsi::helper::testing {

namespace v1 = lbcsi::helper::v1;

inline bool RequireRoot() {
  if (geteuid() == 0) return true;
  const char* ci = std::getenv("CI");
  if (ci && std::string(ci) == "true") {
    ADD_FAILURE() << "this test needs root (loop devices, mounts) and CI=true";
  } else {
    std::printf("SKIPPED: needs root (loop devices, mounts)\n");
  }
  return false;
}

inline std::string Sha256File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  std::string out;
  for (unsigned i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
  return out;
}

inline std::vector<std::string> MountsUnder(const std::string& prefix) {
  std::vector<std::string> out;
  auto entries = ReadMountInfo();
  if (!entries.ok()) return out;
  for (const MountEntry& e : *entries) {
    if (e.mount_point == prefix || e.mount_point.starts_with(prefix + "/")) {
      out.push_back(e.mount_point);
    }
  }
  return out;
}

class HelperProcess : public ::testing::Test {
 protected:
  static constexpr const char* kHostNqn =
      "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-4333-8444-555555555555";

  void SetUp() override {
    if (!RequireRoot()) GTEST_SKIP() << "needs root: loop devices and mounts";
    char tmpl[] = "/tmp/lbcsi-helper-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    root_ = dir_ + "/kubelet";
    outside_ = dir_ + "/outside";
    for (const std::string& d : {root_, outside_, dir_ + "/sim/volumes", dir_ + "/etc"}) {
      std::filesystem::create_directories(d);
    }
    std::ofstream(dir_ + "/etc/hostnqn") << kHostNqn << "\n";
    std::ofstream(outside_ + "/sentinel") << "do not touch\n";
    StartHelper();
  }

  void TearDown() override {
    if (dir_.empty()) return;
    StopHelper();
    Cleanup();
  }

  void StartHelper(std::vector<std::string> extra = {}) {
    socket_ = dir_ + "/helper.sock";
    std::string bin = Cat(std::getenv("LBCSI_BUILD_DIR"), "/helper/lbcsi-helper");
    std::vector<std::string> args = {bin,
                                     "--socket",
                                     socket_,
                                     "--allowed-uid",
                                     "4242",
                                     "--allowed-gid",
                                     "4242",
                                     "--allow-root-client",
                                     "--root",
                                     root_,
                                     "--state-dir",
                                     dir_ + "/state",
                                     "--host-nqn-file",
                                     dir_ + "/etc/hostnqn",
                                     "--transport",
                                     "loop",
                                     "--sim-data-dir",
                                     dir_ + "/sim",
                                     "--allow-foreign-netns",
                                     "--seccomp",
                                     SeccompMode(),
                                     "--log-level",
                                     LogLevel()};
    for (auto& e : ExtraArgs()) args.push_back(e);
    for (auto& e : extra) args.push_back(e);
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      setenv("ASAN_OPTIONS", "detect_leaks=0", 1);  // LeakSanitizer needs ptrace
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    channel_ = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
    stub_ = v1::NodeHelper::NewStub(channel_);
    for (int i = 0; i < 300; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
      v1::GetInfoResponse info;
      if (access(socket_.c_str(), F_OK) == 0 &&
          stub_->GetInfo(&ctx, v1::GetInfoRequest(), &info).ok()) {
        ASSERT_EQ(info.host_nqn(), kHostNqn);
        ASSERT_TRUE(info.development_transport());
        return;
      }
      int status;
      ASSERT_EQ(waitpid(pid_, &status, WNOHANG), 0) << "helper exited early, status " << status;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "helper did not come up";
  }

  virtual const char* SeccompMode() const { return "enforce"; }
  virtual const char* LogLevel() const { return "warn"; }
  virtual std::vector<std::string> ExtraArgs() const { return {}; }

  void StopHelper() {
    if (pid_ <= 0) return;
    stub_.reset();
    channel_.reset();
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100 && waitpid(pid_, &status, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (i == 99) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
      }
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "helper did not exit cleanly: " << status;
    pid_ = -1;
  }

  // Unmount everything under the temp dir (deepest first), free our loop devices.
  void Cleanup() {
    for (int pass = 0; pass < 4; ++pass) {
      std::vector<std::string> mounts = MountsUnder(dir_);
      std::sort(mounts.begin(), mounts.end(),
                [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
      for (const std::string& m : mounts) umount2(m.c_str(), MNT_DETACH);
    }
    for (const auto& loop : lbcsi::testing::LoopDevicesBackedBy(dir_ + "/sim/volumes/")) {
      lbcsi::testing::ClearLoopDevice(loop.name);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // A sparse volume file and its ACL (holding our NQN unless acl is false).
  std::string MakeVolume(const std::string& uuid, uint64_t size, bool acl = true) {
    std::string img = Cat(dir_, "/sim/volumes/", uuid, ".img");
    int fd = open(img.c_str(), O_RDWR | O_CREAT, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
    close(fd);
    std::ofstream(Cat(dir_, "/sim/volumes/", uuid, ".acl"))
        << (acl ? kHostNqn : "ALLOW_NONE") << "\n";
    return img;
  }

  // kubelet's paths for this helper's root and driver (the helper accepts no others). Each
  // creates the parent directories, as kubelet does; staging paths also the leaf (kubelet makes
  // globalmount and the block staging directory before NodeStageVolume).
  kubeletpaths::KubeletLayouts Layouts() const {
    return *kubeletpaths::KubeletLayouts::Create(std::filesystem::canonical(root_).string(),
                                                 "csi.lightbitslabs.com");
  }
  std::string StagingPath(std::string_view tag) const {
    std::string p = Layouts().StageMountPathForHandle(tag);
    std::filesystem::create_directories(p);
    return p;
  }
  // The driver's own inline-volume directory (not created: the helper makes it).
  std::string EphemeralPath(std::string_view tag) const {
    std::string p = Layouts().EphemeralPath(kubeletpaths::VolumeHandleSha256(tag).substr(0, 40));
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    return p;
  }
  std::string PublishPath(std::string_view pod, std::string_view name) const {
    std::string p = Layouts().PublishMountPath(pod, name);
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    return p;
  }
  std::string BlockStagingPath(std::string_view pv) const {
    std::string p = Layouts().StageBlockPath(pv);
    std::filesystem::create_directories(p);
    return p;
  }
  std::string BlockPublishPath(std::string_view pv, std::string_view pod) const {
    std::string p = Layouts().PublishBlockPath(pv, pod);
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    return p;
  }

  template <typename Req, typename Resp, typename Fn>
  grpc::Status Call(Fn fn, const Req& req, Resp* resp, int seconds = 60) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return ((*stub_).*fn)(&ctx, req, resp);
  }

  v1::AttachResponse Attach(const std::string& uuid, int seconds = 30) {
    v1::AttachRequest req;
    req.set_volume_uuid(uuid);
    req.set_subsystem_nqn("nqn.2016-01.com.lightbitslabs:uuid:sim");
    v1::AttachResponse resp;
    grpc::Status st = Call(&v1::NodeHelper::Stub::Attach, req, &resp, seconds);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  grpc::Status Detach(const std::string& uuid, v1::DetachResponse* resp) {
    v1::DetachRequest req;
    req.set_volume_uuid(uuid);
    req.set_subsystem_nqn("nqn.2016-01.com.lightbitslabs:uuid:sim");
    return Call(&v1::NodeHelper::Stub::Detach, req, resp);
  }

  std::string dir_, root_, outside_, socket_;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::NodeHelper::Stub> stub_;
};

}  // namespace lbcsi::helper::testing
