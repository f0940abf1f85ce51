#include "helper/spawner/spawner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/helper/confine_test_util.h"

namespace lbcsi::helper {
namespace {

using testing::ProbeType;
using testing::TempLoopDevice;

constexpr off_t kSmall = 64 << 20;     // enough for ext4
constexpr off_t kXfsSize = 320 << 20;  // mkfs.xfs 6.x wants at least 300 MiB

std::unique_ptr<Spawner> StartOrDie(const SpawnerConfig& config = {}) {
  auto spawner = Spawner::Start(config);
  EXPECT_TRUE(spawner.ok()) << spawner.status();
  return spawner.ok() ? std::move(*spawner) : nullptr;
}

TEST(SpawnerArgv, IsFixedAndNeverDiscards) {
  EXPECT_EQ(MkfsArgv(MkfsFs::kExt4),
            (std::vector<std::string>{"mkfs.ext4", "-q", "-E",
                                      "nodiscard,lazy_itable_init=1,lazy_journal_init=1",
                                      "/proc/self/fd/3"}));
  EXPECT_EQ(MkfsArgv(MkfsFs::kXfs),
            (std::vector<std::string>{"mkfs.xfs", "-q", "-K", "/proc/self/fd/3"}));
  // Resuming the helper's own interrupted format: -f for xfs only, ext4 unchanged.
  EXPECT_EQ(MkfsArgv(MkfsFs::kXfs, MkfsMode::kResume),
            (std::vector<std::string>{"mkfs.xfs", "-q", "-K", "-f", "/proc/self/fd/3"}));
  EXPECT_EQ(MkfsArgv(MkfsFs::kExt4, MkfsMode::kResume), MkfsArgv(MkfsFs::kExt4));
}

TEST(SpawnerArgv, MkfsOptionsGoBeforeTheDevice) {
  mkfsopts::MkfsOptions ext4;
  ext4.block_size = 1024;
  ext4.cluster_size = 16384;
  EXPECT_EQ(MkfsArgv(MkfsFs::kExt4, MkfsMode::kNew, ext4),
            (std::vector<std::string>{"mkfs.ext4", "-q", "-E",
                                      "nodiscard,lazy_itable_init=1,lazy_journal_init=1", "-b",
                                      "1024", "-O", "bigalloc", "-C", "16384", "/proc/self/fd/3"}));
  mkfsopts::MkfsOptions xfs;
  xfs.inode_size = 1024;
  xfs.xfs_reflink = mkfsopts::Switch::kOff;
  EXPECT_EQ(MkfsArgv(MkfsFs::kXfs, MkfsMode::kResume, xfs),
            (std::vector<std::string>{"mkfs.xfs", "-q", "-K", "-f", "-i", "size=1024", "-m",
                                      "reflink=0", "/proc/self/fd/3"}));
}

TEST(SpawnerArgv, PreenIsE2fsckDashPOnTheDeviceFd) {
  EXPECT_EQ(PreenArgv(), (std::vector<std::string>{"e2fsck", "-p", "/proc/self/fd/3"}));
}

uint32_t Le32(const unsigned char* p) {
  return p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24;
}
uint32_t Be32(const unsigned char* p) {
  return uint32_t(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

TEST(SpawnerStart, RefusesMissingOrWritableBinary) {
  SpawnerConfig missing;
  missing.mkfs_ext4 = "/nonexistent/mkfs.ext4";
  EXPECT_EQ(Spawner::Start(missing).status().code(), absl::StatusCode::kFailedPrecondition);

  char tmpl[] = "/tmp/lbcsi-spawn-bin-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string bin = dir + "/mkfs.xfs";
  std::filesystem::copy_file("/bin/true", bin);
  chmod(bin.c_str(), 0777);  // world-writable: anyone could change what runs
  SpawnerConfig writable;
  writable.mkfs_xfs = bin;
  EXPECT_EQ(Spawner::Start(writable).status().code(), absl::StatusCode::kFailedPrecondition);
  std::filesystem::remove_all(dir);
}

TEST(Spawner, FormatsExt4) {
  LBCSI_REQUIRE_ROOT();
  TempLoopDevice dev(kSmall);
  ASSERT_GE(dev.fd(), 0) << dev.error();
  ASSERT_EQ(ProbeType(dev.fd()), "");
  auto spawner = StartOrDie();
  ASSERT_NE(spawner, nullptr);
  auto result = spawner->RunMkfs(MkfsFs::kExt4, dev.fd());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->output_tail;
  EXPECT_EQ(ProbeType(dev.fd()), "ext4");
}

TEST(Spawner, FormatsXfs) {
  LBCSI_REQUIRE_ROOT();
  TempLoopDevice dev(kXfsSize);
  ASSERT_GE(dev.fd(), 0) << dev.error();
  auto spawner = StartOrDie();
  ASSERT_NE(spawner, nullptr);
  auto result = spawner->RunMkfs(MkfsFs::kXfs, dev.fd());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->output_tail;
  EXPECT_EQ(ProbeType(dev.fd()), "xfs");
}

// The options reach mkfs: read back from the superblocks it wrote.
TEST(Spawner, Ext4OptionsShapeTheFilesystem) {
  LBCSI_REQUIRE_ROOT();
  TempLoopDevice dev(kSmall);
  ASSERT_GE(dev.fd(), 0) << dev.error();
  auto spawner = StartOrDie();
  ASSERT_NE(spawner, nullptr);
  mkfsopts::MkfsOptions o;
  o.block_size = 1024;
  o.inode_size = 512;
  o.cluster_size = 16384;
  auto result =
      spawner->RunMkfs(MkfsFs::kExt4, dev.fd(), absl::InfiniteFuture(), MkfsMode::kNew, o);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->exit_code, 0) << result->output_tail;
  unsigned char sb[1024];
  ASSERT_EQ(pread(dev.fd(), sb, sizeof(sb), 1024), 1024);
  EXPECT_EQ(1024u << Le32(sb + 24), 1024u);   // s_log_block_size
  EXPECT_EQ(1024u << Le32(sb + 28), 16384u);  // s_log_cluster_size
  EXPECT_EQ(sb[88] | sb[89] << 8, 512);       // s_inode_size
  EXPECT_NE(Le32(sb + 100) & 0x200, 0u);      // RO_COMPAT_BIGALLOC
}

TEST(Spawner, XfsOptionsShapeTheFilesystem) {
  LBCSI_REQUIRE_ROOT();
  TempLoopDevice dev(kXfsSize);
  ASSERT_GE(dev.fd(), 0) << dev.error();
  auto spawner = StartOrDie();
  ASSERT_NE(spawner, nullptr);
  mkfsopts::MkfsOptions o;
  o.block_size = 2048;
  o.inode_size = 1024;
  auto result = spawner->RunMkfs(MkfsFs::kXfs, dev.fd(), absl::InfiniteFuture(), MkfsMode::kNew, o);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->exit_code, 0) << result->output_tail;
  unsigned char sb[512];
  ASSERT_EQ(pread(dev.fd(), sb, sizeof(sb), 0), 512);
  EXPECT_EQ(Be32(sb + 4), 2048u);           // sb_blocksize
  EXPECT_EQ(sb[104] << 8 | sb[105], 1024);  // sb_inodesize
}

TEST(Spawner, RefusesOptionsThatDoNotFitTheFilesystemBeforeRunningMkfs) {
  LBCSI_REQUIRE_ROOT();
  TempLoopDevice dev(kXfsSize);
  ASSERT_GE(dev.fd(), 0) << dev.error();
  auto spawner = StartOrDie();
  ASSERT_NE(spawner, nullptr);
  mkfsopts::MkfsOptions ext4_only;
  ext4_only.bytes_per_inode = 8192;
  auto result =
      spawner->RunMkfs(MkfsFs::kXfs, dev.fd(), absl::InfiniteFuture(), MkfsMode::kNew, ext4_only);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  mkfsopts::MkfsOptions odd_block;
  odd_block.block_size = 3000;
  result =
      spawner->RunMkfs(MkfsFs::kExt4, dev.fd(), absl::InfiniteFuture(), MkfsMode::kNew, odd_block);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_EQ(ProbeType(dev.fd()), "");  // nothing was written
}

TEST(Spawner, FailureCarriesExitCodeAndOutputAndXfsDoesNotOverwrite) {
  LBCSI_REQUIRE_ROOT();
  TempLoopDevice dev(kXfsSize);
  ASSERT_GE(dev.fd(), 0) << dev.error();
  auto spawner = StartOrDie();
  ASSERT_NE(spawner, nullptr);
  ASSERT_EQ(spawner->RunMkfs(MkfsFs::kExt4, dev.fd())->exit_code, 0);
  // No -f: mkfs.xfs refuses a device that holds a filesystem, and says why.
  auto result = spawner->RunMkfs(MkfsFs::kXfs, dev.fd());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_NE(result->exit_code, 0);
  EXPECT_NE(result->output_tail.find("existing filesystem"), std::string::npos)
      << result->output_tail;
  EXPECT_EQ(ProbeType(dev.fd()), "ext4");
}

TEST(Spawner, ResumeModeWritesOverTheXfsItLeft) {
  LBCSI_REQUIRE_ROOT();
  TempLoopDevice dev(kXfsSize);
  ASSERT_GE(dev.fd(), 0) << dev.error();
  auto spawner = StartOrDie();
  ASSERT_NE(spawner, nullptr);
  ASSERT_EQ(spawner->RunMkfs(MkfsFs::kXfs, dev.fd())->exit_code, 0);
  auto refused = spawner->RunMkfs(MkfsFs::kXfs, dev.fd());
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_NE(refused->exit_code, 0) << "without resume mode xfs must not overwrite";
  auto result = spawner->RunMkfs(MkfsFs::kXfs, dev.fd(), absl::InfiniteFuture(), MkfsMode::kResume);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->output_tail;
  EXPECT_EQ(ProbeType(dev.fd()), "xfs");
}

// debugfs edits the superblock and inodes of an unmounted ext4 filesystem.
void Debugfs(const std::string& device, const std::string& request) {
  const std::string cmd =
      "/usr/sbin/debugfs -w -R '" + request + "' " + device + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// e2fsck -p's three outcomes the helper tells apart: clean (0), repaired (1)
// and damage it leaves for a person (4).
TEST(Spawner, PreenReportsCleanRepairedAndUnrepairable) {
  LBCSI_REQUIRE_ROOT();
  TempLoopDevice dev(kSmall);
  ASSERT_GE(dev.fd(), 0) << dev.error();
  auto spawner = StartOrDie();
  ASSERT_NE(spawner, nullptr);
  ASSERT_EQ(spawner->RunMkfs(MkfsFs::kExt4, dev.fd())->exit_code, 0);

  auto clean = spawner->RunPreen(dev.fd());
  ASSERT_TRUE(clean.ok()) << clean.status();
  EXPECT_EQ(clean->exit_code, 0) << clean->output_tail;

  // The kernel marks a filesystem with errors; free counts that are wrong are
  // what a full check then finds and fixes.
  Debugfs(dev.path(), "ssv state 2");
  Debugfs(dev.path(), "ssv free_blocks_count 1234");
  auto repaired = spawner->RunPreen(dev.fd());
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  EXPECT_EQ(repaired->exit_code, 1) << repaired->output_tail;
  EXPECT_EQ(spawner->RunPreen(dev.fd())->exit_code, 0);  // and it stays repaired

  // A cleared root inode is not something preen mode fixes.
  Debugfs(dev.path(), "clri <2>");
  Debugfs(dev.path(), "ssv state 2");
  auto damaged = spawner->RunPreen(dev.fd());
  ASSERT_TRUE(damaged.ok()) << damaged.status();
  EXPECT_EQ(damaged->exit_code, 4) << damaged->output_tail;
  EXPECT_NE(damaged->output_tail.find("RUN fsck MANUALLY"), std::string::npos)
      << damaged->output_tail;
}

TEST(Spawner, RefusesRegularFile) {
  LBCSI_REQUIRE_ROOT();
  char tmpl[] = "/tmp/lbcsi-spawn-file-XXXXXX";
  const int fd = mkostemp(tmpl, O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, kSmall), 0);
  auto spawner = StartOrDie();
  ASSERT_NE(spawner, nullptr);
  auto result = spawner->RunMkfs(MkfsFs::kExt4, fd);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_EQ(ProbeType(fd), "");  // untouched
  close(fd);
  unlink(tmpl);
}

TEST(Spawner, SwappedBinaryAfterStartDoesNotChangeWhatRuns) {
  LBCSI_REQUIRE_ROOT();
  char tmpl[] = "/tmp/lbcsi-spawn-swap-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string bin = dir + "/mkfs.ext4";
  const std::string marker = dir + "/swapped-binary-ran";
  std::filesystem::copy_file("/usr/sbin/mkfs.ext4", bin);
  ASSERT_EQ(chmod(bin.c_str(), 0755), 0);
  SpawnerConfig config;
  config.mkfs_ext4 = bin;
  auto spawner = StartOrDie(config);
  ASSERT_NE(spawner, nullptr);

  // Put an impostor at the configured path.
  const std::string impostor = dir + "/impostor";
  std::ofstream(impostor) << "#!/bin/sh\ntouch " << marker << "\nexit 42\n";
  ASSERT_EQ(chmod(impostor.c_str(), 0755), 0);
  ASSERT_EQ(rename(impostor.c_str(), bin.c_str()), 0);

  TempLoopDevice dev(kSmall);
  ASSERT_GE(dev.fd(), 0) << dev.error();
  auto result = spawner->RunMkfs(MkfsFs::kExt4, dev.fd());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->output_tail;
  EXPECT_EQ(ProbeType(dev.fd()), "ext4");
  EXPECT_FALSE(std::filesystem::exists(marker));
  spawner.reset();
  std::filesystem::remove_all(dir);
}

TEST(Spawner, ConcurrentCallsFromManyThreads) {
  LBCSI_REQUIRE_ROOT();
  constexpr int kDevices = 3;
  std::vector<std::unique_ptr<TempLoopDevice>> devs;
  for (int i = 0; i < kDevices; ++i) {
    devs.push_back(std::make_unique<TempLoopDevice>(kSmall));
    ASSERT_GE(devs.back()->fd(), 0) << devs.back()->error();
  }
  auto spawner = StartOrDie();
  ASSERT_NE(spawner, nullptr);
  std::vector<int> exit_codes(kDevices, -100);
  std::vector<std::thread> threads;
  for (int i = 0; i < kDevices; ++i) {
    threads.emplace_back([&, i] {
      auto r = spawner->RunMkfs(MkfsFs::kExt4, devs[i]->fd());
      exit_codes[i] = r.ok() ? r->exit_code : -200;
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kDevices; ++i) {
    EXPECT_EQ(exit_codes[i], 0) << "device " << i;
    EXPECT_EQ(ProbeType(devs[i]->fd()), "ext4") << "device " << i;
  }
}

TEST(Spawner, AbandonedWaitDoesNotStopMkfs) {
  LBCSI_REQUIRE_ROOT();
  TempLoopDevice dev(kXfsSize);
  ASSERT_GE(dev.fd(), 0) << dev.error();
  auto spawner = StartOrDie();
  ASSERT_NE(spawner, nullptr);
  auto result = spawner->RunMkfs(MkfsFs::kXfs, dev.fd(), absl::Now());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  // The format completes anyway; the destructor waits for the spawner to finish it.
  spawner.reset();
  EXPECT_EQ(ProbeType(dev.fd()), "xfs");
}

TEST(Spawner, DiesWithItsParent) {
  LBCSI_REQUIRE_ROOT();
  // Orphans are re-parented to us, so we can see how the spawner ended.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int pipefd[2];
  ASSERT_EQ(pipe2(pipefd, O_CLOEXEC), 0);
  const pid_t parent = fork();
  ASSERT_GE(parent, 0);
  if (parent == 0) {
    auto spawner = Spawner::Start({});
    pid_t pid = spawner.ok() ? (*spawner)->pid() : -1;
    (void)!write(pipefd[1], &pid, sizeof(pid));
    pause();
    _exit(0);
  }
  close(pipefd[1]);
  pid_t spawner_pid = -1;
  ASSERT_EQ(read(pipefd[0], &spawner_pid, sizeof(spawner_pid)),
            static_cast<ssize_t>(sizeof(spawner_pid)));
  close(pipefd[0]);
  ASSERT_GT(spawner_pid, 0);
  ASSERT_EQ(kill(spawner_pid, 0), 0) << "spawner should be running";

  kill(parent, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(parent, &status, 0), parent);
  // Bounded: the spawner must be gone within 10 s.
  pid_t reaped = 0;
  for (int i = 0; i < 1000 && reaped == 0; ++i) {
    reaped = waitpid(spawner_pid, &status, WNOHANG);
    if (reaped == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  ASSERT_EQ(reaped, spawner_pid) << "spawner outlived its parent";
  // Either PR_SET_PDEATHSIG's SIGKILL or, if it saw the channel close first, a clean exit.
  EXPECT_TRUE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
              (WIFEXITED(status) && WEXITSTATUS(status) == 0))
      << "status " << status;
  EXPECT_NE(kill(spawner_pid, 0), 0);
}

}  // namespace
}  // namespace lbcsi::helper
