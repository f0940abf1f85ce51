#pragma once
// HelperProcess with the sim's volume files on a filesystem of their own (an
// ext4 image on an auto-clearing loop device, mounted over <dir>/sim/volumes).
// The test can then freeze it, so every write to any volume blocks in the
// kernel (a call held in flight as long as the test wants, with no timing
// guesswork), or shut it down, so every volume I/O returns EIO.

#include <linux/fs.h>
#include <linux/loop.h>

#include <functional>
#include <optional>
#include <sstream>

#include "tests/helper/helper_fixture.h"

namespace lbcsi::helper::testing {

// Runs a tool quietly; true when it exited 0.
inline bool RunQuiet(std::vector<std::string> argv) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execv(a[0], a.data());
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

// One line of /proc/<pid>/stat: state and parent.
struct ProcStat {
  char state = '?';
  pid_t ppid = 0;
};
inline std::optional<ProcStat> ReadProcStat(pid_t pid) {
  std::ifstream in(Cat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  size_t close_paren = line.rfind(')');  // comm may hold spaces and parens
  if (close_paren == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close_paren + 1));
  ProcStat s;
  rest >> s.state >> s.ppid;
  return s;
}

inline std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& ent : std::filesystem::directory_iterator("/proc")) {
    const std::string name = ent.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = std::stoi(name);
    std::optional<ProcStat> s = ReadProcStat(pid);
    if (s && s->ppid == parent) out.push_back(pid);
  }
  return out;
}

// Polls `done` every 50 ms for up to `seconds`; true when it held.
inline bool WaitFor(const std::function<bool()>& done, int seconds) {
  for (int i = 0; i < seconds * 20; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

class BackedHelper : public HelperProcess {
 protected:
  void SetUp() override {
    HelperProcess::SetUp();
    if (dir_.empty() || HasFatalFailure() || IsSkipped()) return;
    volumes_ = dir_ + "/sim/volumes";
    // The loop transport opens volume files by path, so a mount over the
    // directory after the helper started is what it uses from then on.
    const std::string image = dir_ + "/backing.img";
    int fd = open(image.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, 4ll << 30), 0);
    ASSERT_TRUE(RunQuiet({"/usr/sbin/mkfs.ext4", "-q", "-F", image}));
    int control = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    ASSERT_GE(control, 0);
    int held = -1;  // auto-clear fires on the last close: hold the device until mounted
    for (int attempt = 0; attempt < 16 && held < 0; ++attempt) {
      int n = ioctl(control, LOOP_CTL_GET_FREE);
      ASSERT_GE(n, 0);
      std::string dev = Cat("/dev/loop", n);
      int lfd = -1;
      for (int i = 0; i < 50 && lfd < 0; ++i) {  // devtmpfs may lag behind
        lfd = open(dev.c_str(), O_RDWR | O_CLOEXEC);
        if (lfd < 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      ASSERT_GE(lfd, 0) << dev;
      loop_config cfg{};
      cfg.fd = static_cast<__u32>(fd);
      cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;  // freed when the last user (the mount) goes
      if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
        backing_dev_ = dev;
        held = lfd;
      } else {
        close(lfd);
      }
    }
    close(control);
    close(fd);
    ASSERT_GE(held, 0) << "no free loop device";
    int rc = mount(backing_dev_.c_str(), volumes_.c_str(), "ext4", 0, nullptr);
    int err = errno;
    close(held);
    ASSERT_EQ(rc, 0) << std::strerror(err);
    mounted_ = true;
  }

  void TearDown() override {
    if (dir_.empty()) return;
    Thaw();
    StopHelper();
    if (mounted_) {
      // The volumes' own loop devices go first (their backing paths must still
      // resolve through our mount), then the backing filesystem, whose loop
      // device clears itself once nothing uses it.
      for (int pass = 0; pass < 2; ++pass) {
        std::vector<std::string> ms = MountsUnder(root_);
        std::sort(ms.begin(), ms.end(), [](auto& a, auto& b) { return a.size() > b.size(); });
        for (const std::string& m : ms) umount2(m.c_str(), MNT_DETACH);
      }
      ClearVolumeLoops();
      WaitFor([&] { return VolumeLoops().empty(); }, 30);
      umount2(volumes_.c_str(), MNT_DETACH);
      // Compared by backing file: another test may take the number right away.
      const std::string backing_file =
          Cat("/sys/block/", backing_dev_.substr(5), "/loop/backing_file");
      EXPECT_TRUE(WaitFor(
          [&] {
            std::ifstream bf(backing_file);
            std::string backing;
            std::getline(bf, backing);
            return backing != dir_ + "/backing.img";
          },
          30))
          << backing_dev_ << " still attached";
    }
    Cleanup();
  }

  // Loop devices whose backing file is a volume of this test.
  std::vector<std::string> VolumeLoops() {
    std::vector<std::string> out;
    for (const auto& loop : lbcsi::testing::LoopDevicesBackedBy(volumes_ + "/")) {
      out.push_back(loop.name);
    }
    return out;
  }

  // Busy ones are cleared by the kernel on last close.
  void ClearVolumeLoops() {
    for (const std::string& name : VolumeLoops()) lbcsi::testing::ClearLoopDevice(name);
  }

  // Every write to a volume blocks until Thaw() (reads still work).
  void Freeze() {
    int fd = open(volumes_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ioctl(fd, FIFREEZE, 0), 0) << std::strerror(errno);
    close(fd);
    frozen_ = true;
  }
  void Thaw() {
    if (!frozen_) return;
    int fd = open(volumes_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      EXPECT_EQ(ioctl(fd, FITHAW, 0), 0) << std::strerror(errno);
      close(fd);
    }
    frozen_ = false;
  }
  // Every volume read and write fails with EIO from now on (ext4 going down
  // without flushing its journal, as after a lost disk).
  void ShutDownBacking() {
    constexpr unsigned long kExt4Shutdown = _IOR('X', 125, __u32);
    constexpr __u32 kNoLogFlush = 2;
    int fd = open(volumes_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    __u32 how = kNoLogFlush;
    ASSERT_EQ(ioctl(fd, kExt4Shutdown, &how), 0) << std::strerror(errno);
    close(fd);
  }

  // The running mkfs processes of our helper (children of its spawner).
  std::vector<pid_t> MkfsProcesses() {
    std::vector<pid_t> out;
    if (pid_ <= 0) return out;
    for (pid_t spawner : ChildrenOf(pid_)) {
      for (pid_t p : ChildrenOf(spawner)) out.push_back(p);
    }
    return out;
  }

  // Blocks until a mkfs of our helper sleeps uninterruptibly (on the frozen backing).
  std::optional<pid_t> WaitForBlockedMkfs(int seconds) {
    std::optional<pid_t> found;
    WaitFor(
        [&] {
          for (pid_t p : MkfsProcesses()) {
            std::optional<ProcStat> s = ReadProcStat(p);
            if (s && s->state == 'D') {
              found = p;
              return true;
            }
          }
          return false;
        },
        seconds);
    return found;
  }

  // SIGKILL, as a crash would; the next StartHelper() begins afresh.
  void KillHelper() {
    ASSERT_GT(pid_, 0);
    stub_.reset();
    channel_.reset();
    ASSERT_EQ(kill(pid_, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid_, &status, 0), pid_);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
    pid_ = -1;
  }

  // A stub of its own for a call made from another thread (StartHelper replaces stub_).
  std::unique_ptr<v1::NodeHelper::Stub> NewStub() {
    return v1::NodeHelper::NewStub(
        grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials()));
  }
  template <typename Req, typename Resp, typename Fn>
  static grpc::Status CallOn(v1::NodeHelper::Stub& stub, Fn fn, const Req& req, Resp* resp,
                             int seconds) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return (stub.*fn)(&ctx, req, resp);
  }

  std::string FormatRecord(const std::string& uuid) const {
    return Cat(dir_, "/state/format/", uuid);
  }

  v1::FormatRequest FormatReq(const std::string& uuid, v1::FsType fs) {
    v1::FormatRequest req;
    req.set_volume_uuid(uuid);
    req.set_fs_type(fs);
    req.set_proof(v1::NEVER_WRITTEN_PROOF_CREATED_EMPTY);
    return req;
  }

  std::string volumes_, backing_dev_;
  bool mounted_ = false, frozen_ = false;
};

// Runs `fn` when it goes out of scope (thaw before joining a blocked call).
class OnExit {
 public:
  explicit OnExit(std::function<void()> fn) : fn_(std::move(fn)) {}
  ~OnExit() { fn_(); }
  OnExit(const OnExit&) = delete;
  OnExit& operator=(const OnExit&) = delete;

 private:
  std::function<void()> fn_;
};

}  // namespace lbcsi::helper::testing
