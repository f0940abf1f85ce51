// kill -9 fault test: many volume lifecycles through the whole stack
// (tests/conformance/stack.h) while one random process (lightos-sim,
// controller, helper or agent) is SIGKILLed at a random moment of each. The
// test behaves like a CO: a failed call is retried after the dead process was
// restarted, until it succeeds. Each lifecycle ends either with the volume in
// use (kept) or fully deleted. At the end, kept volumes must still be usable
// (stage + publish + write + read), and once they are torn down nothing may be
// left: no mounts under the kubelet root, no loop devices over the sim's
// files, no LightOS volumes, no agent records.
//
// Seed: LBCSI_FAULT_SEED (default fixed, printed). Lifecycles:
// LBCSI_FAULT_LIFECYCLES (default 30); new lifecycles stop after
// LBCSI_FAULT_BUDGET_S seconds (default 150) so the run stays bounded.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "tests/conformance/csi_client.h"

namespace lbcsi::conformance {
namespace {

using Ctl = csi::v1::Controller::Stub;
using Nd = csi::v1::Node::Stub;
using Clock = std::chrono::steady_clock;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

// Kills one component with SIGKILL after a delay, from its own thread, then
// plays the supervisor (systemd / the kubelet): the process is started again
// after a short pause. The main thread touches processes only after Join().
class Killer {
 public:
  Killer(Stack& stack, Component victim, std::chrono::milliseconds delay)
      : thread_([this, &stack, victim, delay] {
          std::unique_lock<std::mutex> lock(mu_);
          if (cv_.wait_for(lock, delay, [this] { return cancelled_; })) return;
          if (stack.pid(victim) <= 0) return;
          stack.KillComponent(victim, SIGKILL);
          fired_ = true;
          lock.unlock();
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          restart_error_ = stack.StartComponent(victim);
        }) {}
  const std::string& restart_error() const { return restart_error_; }
  ~Killer() { Join(); }
  // Stops a pending kill (the lifecycle ended first) and waits for the thread.
  bool Join() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return fired_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool cancelled_ = false;
  std::atomic<bool> fired_{false};
  std::string restart_error_;  // read after Join()
  std::thread thread_;
};

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      const char* ci = std::getenv("CI");
      if (ci != nullptr && std::string(ci) == "true") FAIL() << "needs root and CI=true";
      GTEST_SKIP() << "needs root (loop devices and mounts of the real helper)";
    }
    std::string err = stack_.Start();
    ASSERT_TRUE(err.empty()) << err;
    csi_ = std::make_unique<CsiClient>(stack_, /*deadline_seconds=*/30);
  }
  void TearDown() override {
    if (HasFailure() && csi_) {
      for (Component c :
           {Component::kSim, Component::kController, Component::kHelper, Component::kAgent}) {
        std::string log = stack_.Log(c);
        std::cerr << "--- " << ComponentName(c) << " log (tail) ---\n"
                  << log.substr(log.size() > 3000 ? log.size() - 3000 : 0) << "\n";
      }
    }
    stack_.Cleanup();
  }

  // Restarts whatever died. Returns false (with a message) when a restart fails.
  bool Heal() {
    for (Component c :
         {Component::kSim, Component::kController, Component::kHelper, Component::kAgent}) {
      if (stack_.Alive(c)) continue;
      ++restarts_;
      std::string err = stack_.StartComponent(c);
      if (!err.empty()) {
        ADD_FAILURE() << "restart of " << ComponentName(c) << " failed: " << err;
        return false;
      }
    }
    return true;
  }

  // CO-like: the call is repeated (after healing) until it succeeds. The
  // killer is joined at the first failure so that restarts never race it.
  template <typename Fn>
  bool Retry(const char* what, Killer& killer, Fn call) {
    grpc::Status last;
    for (int attempt = 0; attempt < 40; ++attempt) {
      last = call();
      if (last.ok()) return true;
      ++failed_calls_;
      killer.Join();
      if (!Heal()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(attempt < 5 ? 100 : 500));
    }
    ADD_FAILURE() << what << " never succeeded: " << last.error_code() << " "
                  << last.error_message();
    return false;
  }

  struct Kept {
    std::string id, pv, data;
    google::protobuf::Map<std::string, std::string> context;
  };

  // One lifecycle; a kept volume ends staged and published with data written.
  bool Lifecycle(int n, bool keep, Killer& killer, std::vector<Kept>* kept) {
    CsiClient& c = *csi_;
    const std::string name = "fault-" + std::to_string(n);
    const std::string pv = "pv-fault-" + std::to_string(n);
    const std::string data = "lifecycle-" + std::to_string(n);
    std::string id;
    google::protobuf::Map<std::string, std::string> context;
    c.PrepareNodeDirs(pv);
    if (!Retry("CreateVolume", killer, [&] {
          csi::v1::CreateVolumeResponse r;
          grpc::Status st = c.C(&Ctl::CreateVolume, c.CreateReq(name, kGiB), &r);
          if (st.ok()) id = r.volume().volume_id();
          return st;
        })) {
      return false;
    }
    if (!Retry("ControllerPublishVolume", killer, [&] {
          csi::v1::ControllerPublishVolumeResponse r;
          grpc::Status st = c.C(&Ctl::ControllerPublishVolume, c.PublishReq(id), &r);
          if (st.ok()) context = r.publish_context();
          return st;
        })) {
      return false;
    }
    if (!Retry("NodeStageVolume", killer,
               [&] { return c.C(&Nd::NodeStageVolume, c.StageReq(id, pv, context)); })) {
      return false;
    }
    if (!Retry("NodePublishVolume", killer,
               [&] { return c.C(&Nd::NodePublishVolume, c.NodePublishReq(id, pv, context)); })) {
      return false;
    }
    if (!WriteAndRead(c.Target(pv), data)) return false;
    if (keep) {
      kept->push_back({id, pv, data, context});
      return true;
    }
    if (!Retry("NodeUnpublishVolume", killer,
               [&] { return c.C(&Nd::NodeUnpublishVolume, c.NodeUnpublishReq(id, pv)); })) {
      return false;
    }
    if (!Retry("NodeUnstageVolume", killer,
               [&] { return c.C(&Nd::NodeUnstageVolume, c.UnstageReq(id, pv)); })) {
      return false;
    }
    if (!Retry("ControllerUnpublishVolume", killer,
               [&] { return c.C(&Ctl::ControllerUnpublishVolume, c.UnpublishReq(id)); })) {
      return false;
    }
    return Retry("DeleteVolume", killer, [&] { return c.C(&Ctl::DeleteVolume, c.DeleteReq(id)); });
  }

  static bool WriteAndRead(const std::string& dir, const std::string& data) {
    {
      std::ofstream out(dir + "/data.txt", std::ios::trunc);
      out << data;
      if (!out.flush()) {
        ADD_FAILURE() << "cannot write into " << dir;
        return false;
      }
    }
    std::string got;
    std::ifstream in(dir + "/data.txt");
    std::getline(in, got);
    EXPECT_EQ(got, data) << dir;
    return got == data;
  }

  size_t Count(const std::string& dir, const std::string& ext) {
    size_t n = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      n += ext.empty() || e.path().extension() == ext;
    }
    return n;
  }

  Stack stack_;
  std::unique_ptr<CsiClient> csi_;
  int restarts_ = 0;
  int failed_calls_ = 0;
};

TEST_F(FaultTest, KillNineAtRandomPointsOfManyLifecycles) {
  const unsigned seed = static_cast<unsigned>(EnvInt("LBCSI_FAULT_SEED", 20240917));
  const int lifecycles = EnvInt("LBCSI_FAULT_LIFECYCLES", 30);
  const auto budget = std::chrono::seconds(EnvInt("LBCSI_FAULT_BUDGET_S", 150));
  std::cout << "fault test seed " << seed << " (LBCSI_FAULT_SEED to reproduce), up to "
            << lifecycles << " lifecycles" << std::endl;
  std::mt19937 rng(seed);
  const Component components[] = {Component::kSim, Component::kController, Component::kHelper,
                                  Component::kAgent};
  std::vector<Kept> kept;
  std::map<std::string, int> kills;
  const auto start = Clock::now();
  int done = 0;
  struct Mean {
    int64_t ms, n = 0;
    void Add(int64_t v) { ms = (ms * n + v) / (n + 1), ++n; }
  } mean_keep{800}, mean_full{1500};
  for (int n = 0; n < lifecycles && Clock::now() - start < budget; ++n) {
    Component victim = components[rng() % 4];
    bool keep = rng() % 3 == 0;
    // A random point inside the lifecycle: the delay is drawn below the mean
    // length of undisturbed lifecycles of the same kind, so most see their kill.
    Mean& mean = keep ? mean_keep : mean_full;
    auto delay = std::chrono::milliseconds(rng() % std::max<int64_t>(100, mean.ms * 8 / 10));
    const auto begin = Clock::now();
    Killer killer(stack_, victim, delay);
    bool ok = Lifecycle(n, keep, killer, &kept);
    const bool fired = killer.Join();
    EXPECT_EQ(killer.restart_error(), "") << "supervisor restart of " << ComponentName(victim);
    const int64_t ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - begin).count();
    if (fired) {
      ++kills[ComponentName(victim)];
    } else {
      mean.Add(ms);
    }
    std::cout << "lifecycle " << n << (keep ? " keep" : " full") << ": "
              << (fired ? "killed " : "spared ") << ComponentName(victim) << " at " << delay.count()
              << " ms, took " << ms << " ms" << std::endl;
    ASSERT_TRUE(ok) << "lifecycle " << n << " (seed " << seed << ", killed "
                    << ComponentName(victim) << " after " << delay.count() << " ms)";
    ASSERT_TRUE(Heal());
    ++done;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::cout << done << " lifecycles in " << seconds << " s, " << kept.size() << " kept, "
            << restarts_ << " restarts after failed calls, " << failed_calls_
            << " failed calls retried; kills:";
  for (const auto& [name, count] : kills) std::cout << " " << name << "=" << count;
  std::cout << std::endl;
  ASSERT_GE(done, 8) << "too few lifecycles ran inside the budget";
  int total_kills = 0;
  for (const auto& [name, count] : kills) total_kills += count;
  EXPECT_GT(total_kills, done / 2) << "most lifecycles should have seen a kill";

  // Exactly the kept volumes exist, everywhere.
  CsiClient& c = *csi_;
  csi::v1::ListVolumesResponse lv;
  ASSERT_TRUE(c.C(&Ctl::ListVolumes, csi::v1::ListVolumesRequest(), &lv).ok());
  std::set<std::string> listed;
  for (const auto& e : lv.entries()) listed.insert(e.volume().volume_id());
  std::set<std::string> expected;
  for (const auto& k : kept) expected.insert(k.id);
  EXPECT_EQ(listed, expected) << "LightOS holds volumes that should be gone (or lost some)";
  EXPECT_EQ(Count(stack_.sim_volumes_dir(), ".img"), kept.size());
  EXPECT_EQ(Count(stack_.agent_state_dir() + "/volumes", ".json"), kept.size());
  EXPECT_EQ(MountsUnder(stack_.kubelet_root()).size(), 2 * kept.size())
      << "one staging and one target mount per kept volume";
  EXPECT_EQ(LoopDevicesBackedBy(stack_.sim_volumes_dir() + "/", false).size(), kept.size());

  // Kept volumes are fully usable: calls repeat fine, old data is there, new data sticks.
  for (const auto& k : kept) {
    SCOPED_TRACE(k.id);
    EXPECT_TRUE(c.C(&Nd::NodeStageVolume, c.StageReq(k.id, k.pv, k.context)).ok());
    EXPECT_TRUE(c.C(&Nd::NodePublishVolume, c.NodePublishReq(k.id, k.pv, k.context)).ok());
    std::string got;
    {
      std::ifstream in(c.Target(k.pv) + "/data.txt");
      std::getline(in, got);
    }
    EXPECT_EQ(got, k.data);
    EXPECT_TRUE(WriteAndRead(c.Target(k.pv), k.data + "-again"));
  }
  // Then torn down without faults: nothing may remain.
  for (const auto& k : kept) {
    EXPECT_TRUE(c.C(&Nd::NodeUnpublishVolume, c.NodeUnpublishReq(k.id, k.pv)).ok());
    EXPECT_TRUE(c.C(&Nd::NodeUnstageVolume, c.UnstageReq(k.id, k.pv)).ok());
    EXPECT_TRUE(c.C(&Ctl::ControllerUnpublishVolume, c.UnpublishReq(k.id)).ok());
    EXPECT_TRUE(c.C(&Ctl::DeleteVolume, c.DeleteReq(k.id)).ok());
  }
  EXPECT_TRUE(MountsUnder(stack_.kubelet_root()).empty());
  EXPECT_TRUE(LoopDevicesBackedBy(stack_.sim_volumes_dir() + "/", false).empty());
  EXPECT_EQ(Count(stack_.sim_volumes_dir(), ".img"), 0u);
  EXPECT_EQ(Count(stack_.agent_state_dir() + "/volumes", ""), 0u)
      << "agent records (or half-written temp files) remain";
  csi::v1::ListVolumesResponse after;
  ASSERT_TRUE(c.C(&Ctl::ListVolumes, csi::v1::ListVolumesRequest(), &after).ok());
  EXPECT_EQ(after.entries_size(), 0);
}

}  // namespace
}  // namespace lbcsi::conformance
