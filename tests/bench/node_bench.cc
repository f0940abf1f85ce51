// Node benchmark (not a test): prints ratios measured in one run. Needs root.
//
// (a) Node overhead: a full NodeStage/NodePublish/NodeUnpublish/NodeUnstage of
//     a fresh 64 MiB ext4 volume through lbcsi-agent + lbcsi-helper (loop
//     transport, real processes) vs the same kernel work done directly by this
//     program: loop device (LOOP_CTL_GET_FREE + LOOP_CONFIGURE), mkfs.ext4 by
//     fork/exec with the helper's arguments, mount, bind mount, two unmounts,
//     LOOP_CLR_FD.
// (b) Isolation: p50/max latency of publish and stats calls on other volumes
//     while one volume's attach is stalled for 5 s (ACL not granted), vs the
//     same calls without a stall.
//
// Run: LBCSI_BUILD_DIR=build-agent build-agent/tests/bench/node_bench [iterations]

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <thread>

#include "tests/agent/process_env.h"

namespace {

using lbcsi::Cat;
using lbcsi::agent::procs::NodeStack;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
double Max(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}
double Ms(absl::Duration d) {
  return absl::ToDoubleMilliseconds(d);
}

bool Check(bool ok, const std::string& what) {
  if (!ok) std::fprintf(stderr, "FAILED: %s\n", what.c_str());
  return ok;
}

// The same kernel work as one agent+helper lifecycle, done directly.
bool DirectLifecycle(const std::string& dir, int i, double* ms) {
  std::string img = Cat(dir, "/direct-", i, ".img");
  int f = open(img.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (f < 0 || ftruncate(f, 64 << 20) != 0) return Check(false, "image");
  std::string staging = Cat(dir, "/direct-stage-", i), target = Cat(dir, "/direct-target-", i);
  mkdir(staging.c_str(), 0750);
  absl::Time start = absl::Now();
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  int n = ioctl(ctl, LOOP_CTL_GET_FREE);
  close(ctl);
  std::string dev = Cat("/dev/loop", n);
  int loop = open(dev.c_str(), O_RDWR | O_CLOEXEC);
  loop_config cfg{};
  cfg.fd = static_cast<__u32>(f);
  if (loop < 0 || ioctl(loop, LOOP_CONFIGURE, &cfg) != 0) return Check(false, "LOOP_CONFIGURE");
  close(f);
  pid_t pid = fork();
  if (pid == 0) {
    execlp("mkfs.ext4", "mkfs.ext4", "-q", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1",
           dev.c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!Check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "mkfs")) return false;
  if (!Check(mount(dev.c_str(), staging.c_str(), "ext4", 0, nullptr) == 0, "mount")) return false;
  mkdir(target.c_str(), 0750);  // the helper creates the target too
  if (!Check(mount(staging.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) == 0, "bind")) {
    return false;
  }
  umount2(target.c_str(), UMOUNT_NOFOLLOW);
  rmdir(target.c_str());
  umount2(staging.c_str(), UMOUNT_NOFOLLOW);
  ioctl(loop, LOOP_CLR_FD, 0);
  close(loop);
  *ms = Ms(absl::Now() - start);
  rmdir(staging.c_str());
  unlink(img.c_str());
  return true;
}

bool AgentLifecycle(NodeStack& s, int i, double* ms) {
  auto uuid = s.CreateVolume(Cat("bench-", i), 64 << 20, true);  // controller work: not timed
  if (!Check(uuid.ok(), "CreateVolume")) return false;
  const std::string tag = Cat("b", i);
  std::filesystem::create_directories(s.Staging(tag));
  std::filesystem::create_directories(std::filesystem::path(s.Target(tag)).parent_path());
  absl::Time start = absl::Now();
  if (!Check(s.Stage(*uuid, tag).ok(), "stage") || !Check(s.Publish(*uuid, tag).ok(), "publish") ||
      !Check(s.Unpublish(s.VolId(*uuid), tag).ok(), "unpublish") ||
      !Check(s.Unstage(*uuid, tag).ok(), "unstage")) {
    return false;
  }
  *ms = Ms(absl::Now() - start);
  return Check(s.DeleteVolume(*uuid).ok(), "DeleteVolume");
}

// 8 publishes + 8 stats on staged volumes, concurrently; per-call latency in ms.
std::vector<double> OtherCalls(NodeStack& s, const std::vector<std::string>& uuids,
                               const std::string& round) {
  std::vector<double> lat(2 * uuids.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < uuids.size(); ++i) {
    threads.emplace_back([&, i] {
      absl::Time t = absl::Now();
      Check(s.Publish(uuids[i], Cat("o", i)).ok(), "publish " + round);
      lat[i] = Ms(absl::Now() - t);
    });
    threads.emplace_back([&, i] {
      absl::Time t = absl::Now();
      Check(s.Stats(s.VolId(uuids[i]), s.Staging(Cat("o", i))).ok(), "stats " + round);
      lat[uuids.size() + i] = Ms(absl::Now() - t);
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < uuids.size(); ++i) s.Unpublish(s.VolId(uuids[i]), Cat("o", i));
  return lat;
}

}  // namespace

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "node_bench needs root (loop devices, mounts)\n");
    return 2;
  }
  const int iterations = argc > 1 ? std::max(1, std::atoi(argv[1])) : 8;
  auto stack = NodeStack::Start();
  if (!stack.ok()) {
    std::fprintf(stderr, "cannot start the node stack: %s\n",
                 std::string(stack.status().message()).c_str());
    return 1;
  }
  NodeStack& s = **stack;

  // (a) interleaved so that both see the same machine load.
  std::vector<double> agent, direct;
  for (int i = 0; i < iterations; ++i) {
    double a = 0, d = 0;
    if (!AgentLifecycle(s, i, &a) || !DirectLifecycle(s.dir(), i, &d)) return 1;
    agent.push_back(a);
    direct.push_back(d);
  }
  double ma = Median(agent), md = Median(direct);
  std::printf("(a) full stage+publish+unpublish+unstage, 64 MiB ext4, %d iterations\n", iterations);
  std::printf("    agent+helper: median %.1f ms  (mean %.1f)\n", ma,
              std::accumulate(agent.begin(), agent.end(), 0.0) / agent.size());
  std::printf("    direct:       median %.1f ms  (mean %.1f)\n", md,
              std::accumulate(direct.begin(), direct.end(), 0.0) / direct.size());
  std::printf("    node overhead ratio (median agent / median direct): %.2f\n", ma / md);

  // (b) the delay a 5 s stalled attach adds to calls on other volumes.
  std::vector<std::string> uuids;
  for (int i = 0; i < 8; ++i) {
    auto u = s.CreateVolume(Cat("other-", i), 64 << 20, true);
    if (!u.ok() || !Check(s.Stage(*u, Cat("o", i)).ok(), "stage other")) return 1;
    uuids.push_back(*u);
  }
  std::vector<double> base = OtherCalls(s, uuids, "baseline");
  auto stalled = s.CreateVolume("stalled", 64 << 20, /*granted=*/false);
  if (!stalled.ok()) return 1;
  absl::Time stall_start = absl::Now();
  std::thread a([&] { Check(s.Stage(*stalled, "stalled", 60).ok(), "stalled stage"); });
  std::thread g([&] {
    absl::SleepFor(stall_start + absl::Seconds(5) - absl::Now());
    Check(s.Grant(*stalled).ok(), "grant");
  });
  absl::SleepFor(absl::Milliseconds(200));
  std::vector<double> during = OtherCalls(s, uuids, "during stall");
  double all_done = Ms(absl::Now() - stall_start);
  g.join();
  a.join();
  std::printf("(b) 8 publish + 8 stats calls on other volumes\n");
  std::printf("    no stall:            p50 %.1f ms  max %.1f ms\n", Median(base), Max(base));
  std::printf(
      "    during 5 s stall:    p50 %.1f ms  max %.1f ms  (all done %.0f ms into the stall)\n",
      Median(during), Max(during), all_done);
  std::printf("    added delay: p50 %+.1f ms, max %+.1f ms; ratio max(stall)/max(no stall) %.2f\n",
              Median(during) - Median(base), Max(during) - Max(base), Max(during) / Max(base));
  for (int i = 0; i < 8; ++i) s.Unstage(uuids[i], Cat("o", i));
  s.Unstage(*stalled, "stalled");
  return 0;
}
