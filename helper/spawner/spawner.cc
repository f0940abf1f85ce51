#include "helper/spawner/spawner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::helper {
namespace {

// The tool sees the device as fd 3 and is exec'd from fd 4.
constexpr int kChildDeviceFd = 3;
constexpr int kChildBinaryFd = 4;
constexpr size_t kTailBytes = 4096;
constexpr uint32_t kMagic = 0x6c626d6b;  // "lbmk"

enum class ReplyKind : uint32_t { kRan = 0, kNotBlockDevice, kBadRequest, kBusy, kSpawnFailed };

// The order of the binaries Start() opens.
enum BinaryIndex { kMkfsExt4Binary = 0, kMkfsXfsBinary = 1, kE2fsckBinary = 2, kBinaryCount = 3 };

struct Request {
  uint32_t magic;
  uint32_t fs;
  uint64_t id;
  uint32_t tool;  // SpawnTool
  uint32_t mode;  // MkfsMode
  // mkfsopts::MkfsOptions, field by field; checked again by the spawner.
  uint32_t block_size;
  uint32_t inode_size;
  uint32_t bytes_per_inode;
  uint32_t cluster_size;
  uint32_t xfs_reflink;  // mkfsopts::Switch
  uint32_t xfs_crc;
};

mkfsopts::Fs OptionsFs(MkfsFs fs) {
  return fs == MkfsFs::kExt4 ? mkfsopts::Fs::kExt4 : mkfsopts::Fs::kXfs;
}

// The options a request carries, or nullopt when they are not acceptable for its filesystem.
std::optional<mkfsopts::MkfsOptions> RequestOptions(const Request& req) {
  constexpr uint32_t kLastSwitch = static_cast<uint32_t>(mkfsopts::Switch::kOff);
  if (req.xfs_reflink > kLastSwitch || req.xfs_crc > kLastSwitch) return std::nullopt;
  mkfsopts::MkfsOptions o;
  o.block_size = req.block_size;
  o.inode_size = req.inode_size;
  o.bytes_per_inode = req.bytes_per_inode;
  o.cluster_size = req.cluster_size;
  o.xfs_reflink = static_cast<mkfsopts::Switch>(req.xfs_reflink);
  o.xfs_crc = static_cast<mkfsopts::Switch>(req.xfs_crc);
  if (!mkfsopts::Check(o, OptionsFs(static_cast<MkfsFs>(req.fs))).ok()) return std::nullopt;
  return o;
}

struct Reply {
  uint32_t magic;
  ReplyKind kind;
  uint64_t id;
  int32_t exit_code;
  int32_t term_signal;
  int32_t err;  // errno for kSpawnFailed / kNotBlockDevice
  uint32_t tail_len;
  char tail[kTailBytes];
};

std::string Errno(std::string_view what) {
  return Cat(what, ": ", strerror(errno));
}

// Moves `fd` to a number >= 3 so that it can never be mistaken for stdio.
int AboveStdio(int fd) {
  if (fd >= 3) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return moved;
}

absl::StatusOr<int> OpenBinary(const std::string& path) {
  int fd = open(path.c_str(), O_PATH | O_CLOEXEC);
  if (fd < 0) return absl::FailedPreconditionError(Errno(Cat("opening ", path)));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 0111) == 0) {
    close(fd);
    return absl::FailedPreconditionError(Cat(path, " is not an executable regular file"));
  }
  if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022) != 0) {
    close(fd);
    return absl::FailedPreconditionError(
        Cat(path, " must be owned by root and not group/world-writable"));
  }
  return AboveStdio(fd);
}

// Closes every fd except those in `keep` (sorted, ascending).
void CloseAllExcept(std::vector<int> keep) {
  std::sort(keep.begin(), keep.end());
  unsigned next = 0;
  for (int fd : keep) {
    if (static_cast<unsigned>(fd) > next) close_range(next, fd - 1, 0);
    next = fd + 1;
  }
  close_range(next, ~0U, 0);
}

void ResetSignals() {
  for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// ---- the spawner process ----------------------------------------------------------------

struct Job {
  uint64_t id;
  pid_t pid;
  int pidfd;
  int out;  // read end of the tool's stdout+stderr
  bool exited = false;
  int status = 0;
  std::string tail;
};

void AppendTail(std::string& tail, const char* data, size_t n) {
  tail.append(data, n);
  if (tail.size() > 2 * kTailBytes) tail.erase(0, tail.size() - kTailBytes);
}

void SendReply(int sock, Reply& reply) {
  reply.magic = kMagic;
  // Only the used part of the tail travels.
  const size_t size = offsetof(Reply, tail) + reply.tail_len;
  while (send(sock, &reply, size, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

void SendSimple(int sock, uint64_t id, ReplyKind kind, int err) {
  Reply r{};
  r.id = id;
  r.kind = kind;
  r.err = err;
  SendReply(sock, r);
}

[[noreturn]] void ExecTool(const std::vector<std::string>& args, int binary_fd, int device_fd,
                           int out_fd, pid_t spawner) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != spawner) _exit(127);
  ResetSignals();
  // Park everything above the target numbers before placing it.
  const int bin = fcntl(binary_fd, F_DUPFD_CLOEXEC, 10);
  const int dev = fcntl(device_fd, F_DUPFD_CLOEXEC, 10);
  const int out = fcntl(out_fd, F_DUPFD_CLOEXEC, 10);
  const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (bin < 0 || dev < 0 || out < 0 || null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 ||
      dup2(out, 2) < 0 || dup2(dev, kChildDeviceFd) < 0 || dup2(bin, kChildBinaryFd) < 0 ||
      fcntl(kChildBinaryFd, F_SETFD, FD_CLOEXEC) < 0) {
    _exit(127);
  }
  close_range(kChildBinaryFd + 1, ~0U, 0);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  char path_env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char lang_env[] = "LANG=C";
  char lc_env[] = "LC_ALL=C";
  char* envp[] = {path_env, lang_env, lc_env, nullptr};
  fexecve(kChildBinaryFd, argv.data(), envp);
  const std::string msg = Errno("spawner: fexecve");
  (void)!write(2, msg.data(), msg.size());
  _exit(127);
}

void StartJob(int sock, const Request& req, const mkfsopts::MkfsOptions& options, int device_fd,
              const int binaries[kBinaryCount], std::vector<Job>& jobs, int max_jobs) {
  struct stat st {};
  if (fstat(device_fd, &st) != 0 || !S_ISBLK(st.st_mode)) {
    SendSimple(sock, req.id, ReplyKind::kNotBlockDevice, errno);
    close(device_fd);
    return;
  }
  if (static_cast<int>(jobs.size()) >= max_jobs) {
    SendSimple(sock, req.id, ReplyKind::kBusy, 0);
    close(device_fd);
    return;
  }
  const MkfsFs fs = static_cast<MkfsFs>(req.fs);
  const bool preen = static_cast<SpawnTool>(req.tool) == SpawnTool::kPreen;
  // Built before fork: the child only places fds and execs.
  const std::vector<std::string> args =
      preen ? PreenArgv() : MkfsArgv(fs, static_cast<MkfsMode>(req.mode), options);
  const int binary = binaries[preen                 ? kE2fsckBinary
                              : fs == MkfsFs::kExt4 ? kMkfsExt4Binary
                                                    : kMkfsXfsBinary];
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    SendSimple(sock, req.id, ReplyKind::kSpawnFailed, errno);
    close(device_fd);
    return;
  }
  const pid_t self = getpid();
  const pid_t pid = fork();
  if (pid == 0) ExecTool(args, binary, device_fd, pipefd[1], self);
  const int fork_errno = errno;
  close(pipefd[1]);
  close(device_fd);
  if (pid < 0) {
    close(pipefd[0]);
    SendSimple(sock, req.id, ReplyKind::kSpawnFailed, fork_errno);
    return;
  }
  fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  jobs.push_back(Job{req.id, pid, pidfd, pipefd[0]});
}

// Reads a request and its fd. Returns false when the serving process is gone.
bool ReadRequest(int sock, const int binaries[kBinaryCount], std::vector<Job>& jobs, int max_jobs) {
  Request req{};
  iovec iov{&req, sizeof(req)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return false;
  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.push_back(fd);
    }
  }
  const bool valid_fs = req.fs == static_cast<uint32_t>(MkfsFs::kExt4) ||
                        req.fs == static_cast<uint32_t>(MkfsFs::kXfs);
  const bool valid_mode = req.mode == static_cast<uint32_t>(MkfsMode::kNew) ||
                          req.mode == static_cast<uint32_t>(MkfsMode::kResume);
  std::optional<mkfsopts::MkfsOptions> options;
  if (n == sizeof(req) && valid_fs) options = RequestOptions(req);
  // A preen is e2fsck on ext4 and nothing else: no mode, no options.
  const bool valid_tool =
      req.tool == static_cast<uint32_t>(SpawnTool::kMkfs) ||
      (req.tool == static_cast<uint32_t>(SpawnTool::kPreen) &&
       req.fs == static_cast<uint32_t>(MkfsFs::kExt4) &&
       req.mode == static_cast<uint32_t>(MkfsMode::kNew) && options && options->empty());
  if (n != sizeof(req) || !valid_tool || req.magic != kMagic || !valid_fs || !valid_mode ||
      !options || fds.size() != 1 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    for (int fd : fds) close(fd);
    SendSimple(sock, req.id, ReplyKind::kBadRequest, 0);
    return true;
  }
  StartJob(sock, req, *options, fds[0], binaries, jobs, max_jobs);
  return true;
}

void DrainOutput(Job& job) {
  if (job.out < 0) return;
  char buf[4096];
  while (true) {
    const ssize_t n = read(job.out, buf, sizeof(buf));
    if (n > 0) {
      AppendTail(job.tail, buf, n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return;  // EOF or EAGAIN
  }
}

void FinishJob(int sock, Job& job) {
  DrainOutput(job);
  Reply r{};
  r.id = job.id;
  r.kind = ReplyKind::kRan;
  if (WIFEXITED(job.status)) {
    r.exit_code = WEXITSTATUS(job.status);
  } else {
    r.exit_code = -1;
    r.term_signal = WIFSIGNALED(job.status) ? WTERMSIG(job.status) : 0;
  }
  const std::string_view tail = std::string_view(job.tail).substr(
      job.tail.size() > kTailBytes ? job.tail.size() - kTailBytes : 0);
  r.tail_len = static_cast<uint32_t>(tail.size());
  memcpy(r.tail, tail.data(), tail.size());
  SendReply(sock, r);
  if (job.out >= 0) close(job.out);
  if (job.pidfd >= 0) close(job.pidfd);
}

[[noreturn]] void SpawnerMain(int sock, const int binaries[kBinaryCount], int max_jobs,
                              pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(0);  // the parent died before we armed the signal
  prctl(PR_SET_NAME, "lbcsi-mkfs-spawn");
  ResetSignals();
  // Termination comes through the parent (PDEATHSIG) or the closed channel; a
  // SIGTERM sent to the whole group must not cut a format short.
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGHUP);
  sigprocmask(SIG_BLOCK, &block, nullptr);
  signal(SIGPIPE, SIG_IGN);

  CloseAllExcept({2, sock, binaries[0], binaries[1], binaries[2]});
  const int null = open("/dev/null", O_RDWR);  // lands on 0
  if (null != 0 || dup2(null, 1) != 1) _exit(1);

  std::vector<Job> jobs;
  bool open_channel = true;
  while (open_channel || !jobs.empty()) {
    std::vector<pollfd> fds;
    fds.push_back({open_channel ? sock : -1, POLLIN, 0});
    for (const Job& j : jobs) {
      fds.push_back({j.out, POLLIN, 0});
      fds.push_back({j.pidfd, POLLIN, 0});
    }
    // Without a pidfd (old kernel) the job is polled every 100 ms.
    const bool need_timeout =
        std::any_of(jobs.begin(), jobs.end(), [](const Job& j) { return j.pidfd < 0; });
    if (poll(fds.data(), fds.size(), need_timeout ? 100 : -1) < 0 && errno != EINTR) _exit(1);
    const size_t polled = jobs.size();  // ReadRequest may append a job
    if (open_channel && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      open_channel = ReadRequest(sock, binaries, jobs, max_jobs);
    }
    for (size_t i = 0; i < polled; ++i) {
      const short ev = fds[1 + 2 * i].revents;
      if (ev & POLLIN) DrainOutput(jobs[i]);
      if ((ev & (POLLHUP | POLLERR)) && !(ev & POLLIN)) {  // writer closed: stop polling it
        close(jobs[i].out);
        jobs[i].out = -1;
      }
    }
    for (auto it = jobs.begin(); it != jobs.end();) {
      if (waitpid(it->pid, &it->status, WNOHANG) == it->pid) {
        FinishJob(sock, *it);
        it = jobs.erase(it);
      } else {
        ++it;
      }
    }
  }
  _exit(0);
}

}  // namespace

std::vector<std::string> MkfsArgv(MkfsFs fs, MkfsMode mode, const mkfsopts::MkfsOptions& options) {
  std::vector<std::string> argv;
  if (fs == MkfsFs::kExt4) {
    // mkfs.ext4 never asks without a terminal: the same argv resumes.
    argv = {"mkfs.ext4", "-q", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1"};
  } else {
    argv = {"mkfs.xfs", "-q", "-K"};
    if (mode == MkfsMode::kResume) argv.emplace_back("-f");
  }
  for (std::string& a : mkfsopts::Arguments(options, OptionsFs(fs))) argv.push_back(std::move(a));
  argv.push_back(Cat("/proc/self/fd/", kChildDeviceFd));
  return argv;
}

std::vector<std::string> PreenArgv() {
  return {"e2fsck", "-p", Cat("/proc/self/fd/", kChildDeviceFd)};
}

struct Spawner::Pending {
  bool done = false;
  Reply reply{};
};

absl::StatusOr<std::unique_ptr<Spawner>> Spawner::Start(const SpawnerConfig& config) {
  int binaries[kBinaryCount];
  const std::string* paths[kBinaryCount] = {&config.mkfs_ext4, &config.mkfs_xfs, &config.e2fsck};
  const auto close_binaries = [&binaries](int count) {
    for (int i = 0; i < count; ++i) close(binaries[i]);
  };
  for (int i = 0; i < kBinaryCount; ++i) {
    absl::StatusOr<int> fd = OpenBinary(*paths[i]);
    if (!fd.ok()) {
      close_binaries(i);
      return fd.status();
    }
    binaries[i] = *fd;
  }
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    close_binaries(kBinaryCount);
    return absl::InternalError(Errno("socketpair"));
  }
  pair[0] = AboveStdio(pair[0]);
  pair[1] = AboveStdio(pair[1]);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) SpawnerMain(pair[1], binaries, std::max(1, config.max_concurrent), parent);
  const int fork_errno = errno;
  close(pair[1]);
  close_binaries(kBinaryCount);
  if (pid < 0) {
    close(pair[0]);
    errno = fork_errno;
    return absl::InternalError(Errno("fork of the spawner"));
  }
  return std::unique_ptr<Spawner>(new Spawner(pid, pair[0]));
}

Spawner::Spawner(pid_t pid, int sock) : pid_(pid), sock_(sock) {}

Spawner::~Spawner() {
  shutdown(sock_, SHUT_RDWR);
  if (reader_.joinable()) reader_.join();
  close(sock_);
  int status;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

void Spawner::ReadResponses() {
  while (true) {
    Reply reply{};
    const ssize_t n = recv(sock_, &reply, sizeof(reply), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < static_cast<ssize_t>(offsetof(Reply, tail)) || reply.magic != kMagic ||
        reply.tail_len > kTailBytes) {
      break;  // EOF, error or garbage: the spawner is gone or broken
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(reply.id);
    if (it == pending_.end()) continue;  // its caller stopped waiting
    it->second->reply = reply;
    it->second->done = true;
    pending_.erase(it);
    cv_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mu_);
  dead_ = true;
  cv_.notify_all();
}

absl::StatusOr<ToolResult> Spawner::RunMkfs(MkfsFs fs, int device_fd, absl::Time deadline,
                                            MkfsMode mode, const mkfsopts::MkfsOptions& options) {
  if (fs != MkfsFs::kExt4 && fs != MkfsFs::kXfs) {
    return absl::InvalidArgumentError("unknown filesystem for mkfs");
  }
  if (mode != MkfsMode::kNew && mode != MkfsMode::kResume) {
    return absl::InvalidArgumentError("unknown mkfs mode");
  }
  RETURN_IF_ERROR(mkfsopts::Check(options, OptionsFs(fs)));
  return Run(SpawnTool::kMkfs, fs, mode, options, device_fd, deadline);
}

absl::StatusOr<ToolResult> Spawner::RunPreen(int device_fd, absl::Time deadline) {
  return Run(SpawnTool::kPreen, MkfsFs::kExt4, MkfsMode::kNew, {}, device_fd, deadline);
}

absl::StatusOr<ToolResult> Spawner::Run(SpawnTool tool, MkfsFs fs, MkfsMode mode,
                                        const mkfsopts::MkfsOptions& options, int device_fd,
                                        absl::Time deadline) {
  if (device_fd < 0) return absl::InvalidArgumentError("no device fd");
  // The reply reader starts with the first call, not in Start(): the helper
  // drops capabilities after Start() and that must happen while single-threaded.
  std::call_once(reader_started_, [this] { reader_ = std::thread([this] { ReadResponses(); }); });
  auto pending = std::make_shared<Pending>();
  Request req{};
  req.magic = kMagic;
  req.fs = static_cast<uint32_t>(fs);
  req.tool = static_cast<uint32_t>(tool);
  req.mode = static_cast<uint32_t>(mode);
  req.block_size = options.block_size;
  req.inode_size = options.inode_size;
  req.bytes_per_inode = options.bytes_per_inode;
  req.cluster_size = options.cluster_size;
  req.xfs_reflink = static_cast<uint32_t>(options.xfs_reflink);
  req.xfs_crc = static_cast<uint32_t>(options.xfs_crc);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (dead_) return absl::UnavailableError("the spawner has exited");
    req.id = next_id_++;
    pending_[req.id] = pending;
  }
  iovec iov{&req, sizeof(req)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &device_fd, sizeof(int));
  ssize_t sent;
  do {
    sent = sendmsg(sock_, &msg, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent != static_cast<ssize_t>(sizeof(req))) {
    const std::string why = Errno("sending the request to the spawner");
    std::lock_guard<std::mutex> lock(mu_);
    pending_.erase(req.id);
    return absl::UnavailableError(why);
  }

  std::unique_lock<std::mutex> lock(mu_);
  const auto ready = [&] { return pending->done || dead_; };
  if (deadline == absl::InfiniteFuture()) {
    cv_.wait(lock, ready);
  } else if (!cv_.wait_until(lock, absl::ToChronoTime(deadline), ready)) {
    pending_.erase(req.id);
    return absl::DeadlineExceededError(
        "stopped waiting; the tool keeps running to completion in the spawner");
  }
  if (!pending->done) return absl::UnavailableError("the spawner exited during the call");
  const Reply& r = pending->reply;
  switch (r.kind) {
    case ReplyKind::kRan: {
      ToolResult result;
      result.exit_code = r.exit_code;
      result.term_signal = r.term_signal;
      result.output_tail.assign(r.tail, r.tail_len);
      return result;
    }
    case ReplyKind::kNotBlockDevice:
      return absl::InvalidArgumentError("the spawner refused: the fd is not a block device");
    case ReplyKind::kBusy:
      return absl::ResourceExhaustedError("too many formats or checks are running; retry later");
    case ReplyKind::kSpawnFailed:
      return absl::InternalError(Cat("the spawner could not start the tool: ", strerror(r.err)));
    case ReplyKind::kBadRequest: break;
  }
  return absl::InternalError("the spawner rejected the request as malformed");
}

}  // namespace lbcsi::helper
