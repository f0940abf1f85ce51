// Real processes (lightos-sim + lbcsi-helper with the loop transport +
// lbcsi-agent) over their real sockets: inline ephemeral volumes end to end,
// kill -9 of the agent at named crash points and of the helper mid-call and
// between calls, and isolation of a stalled attach. After every restart the
// next call must succeed and "nothing leaked" is checked exactly: mountinfo
// under the kubelet root equals the agent's records, our loop devices, the
// sim's volumes and the state directory hold exactly what is expected.
// Needs root (loop devices, mounts).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>

#include <gtest/gtest.h>

#include "agent/node_service.h"
#include "common/sha256.h"
#include "tests/agent/process_env.h"

namespace lbcsi::agent::procs {
namespace {

using Names = std::set<std::string>;

class NodeProcesses : public ::testing::Test {
 protected:
  void SetUp() override { Begin({}); }
  void Begin(NodeStack::Options opts) {
    if (geteuid() != 0) {
      const char* ci = std::getenv("CI");
      if (ci && std::string(ci) == "true") FAIL() << "needs root and CI=true";
      GTEST_SKIP() << "needs root (loop devices, mounts)";
    }
    auto s = NodeStack::Start(std::move(opts));
    ASSERT_TRUE(s.ok()) << s.status();
    stack_ = std::move(*s);
  }

  // The exact "nothing leaked" check.
  void Expect(const Names& sim, const Names& state_files, const Names& loops,
              const std::multiset<std::string>& mounts, const std::string& where) {
    SCOPED_TRACE(where);
    EXPECT_EQ(stack_->Mounts(), stack_->RecordedMounts()) << "mountinfo differs from the records";
    EXPECT_EQ(stack_->Mounts(), mounts);
    EXPECT_EQ(stack_->LoopBackings(), loops);
    EXPECT_EQ(stack_->SimVolumeNames(), sim);
    EXPECT_EQ(stack_->StateFiles(), state_files);
  }
  std::string Uuid(const std::string& name, bool granted = true) {
    auto u = stack_->CreateVolume(name, 64ull << 20, granted);
    EXPECT_TRUE(u.ok()) << u.status();
    return u.ok() ? *u : "";
  }
  std::unique_ptr<NodeStack> stack_;
};

std::string EphName(const std::string& tag) {
  return NodeService::EphemeralVolumeName(NodeStack::EphId(tag));
}

TEST_F(NodeProcesses, EphemeralVolumeIsCreatedWrittenAndDeleted) {
  if (!stack_) return;
  const std::string tag = "e1";
  grpc::Status st = stack_->PublishEphemeral(tag);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(stack_->PublishEphemeral(tag).ok()) << "repeat";
  const std::string target = stack_->Target(tag);
  { std::ofstream(target + "/hello") << "inline data"; }
  std::string got;
  {
    std::ifstream in(target + "/hello");
    std::getline(in, got);
  }
  EXPECT_EQ(got, "inline data");
  auto vol = stack_->lightos().GetVolumeByName(EphName(tag), stack_->Opts());
  ASSERT_TRUE(vol.ok()) << vol.status();
  EXPECT_EQ(vol->acl, std::vector<std::string>{kHostNqn});
  EXPECT_EQ(vol->size_bytes, 64ull << 20);
  EXPECT_EQ(vol->labels["lbcsi-node"], kNodeId);
  auto recs = stack_->Records();
  ASSERT_EQ(recs.size(), 1u);
  const std::string priv = recs[0].ephemeral->staging_path;
  EXPECT_EQ(priv, Cat(stack_->root(), "/plugins/", kDriver, "/ephemeral/",
                      Sha256Hex(NodeStack::EphId(tag)).substr(0, 40)));
  Expect({EphName(tag)}, {NodeStack::StateFileOf(NodeStack::EphId(tag))}, {vol->uuid + ".img"},
         {priv, target}, "published");
  ASSERT_TRUE(stack_->Stats(NodeStack::EphId(tag), target).ok());

  st = stack_->Unpublish(NodeStack::EphId(tag), tag);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(stack_->Unpublish(NodeStack::EphId(tag), tag).ok()) << "repeat";
  Expect({}, {}, {}, {}, "unpublished");
  EXPECT_FALSE(std::filesystem::exists(priv)) << "the helper removes the private mount point";
  EXPECT_FALSE(std::filesystem::exists(target));
  EXPECT_FALSE(std::filesystem::exists(Cat(stack_->dir(), "/sim/volumes/", vol->uuid, ".img")));
}

TEST_F(NodeProcesses, EphemeralDeleteAfterAgentKillNeedsNoSecrets) {
  if (!stack_) return;
  const std::string tag = "e2";
  ASSERT_TRUE(stack_->PublishEphemeral(tag).ok());
  EXPECT_EQ(stack_->SimVolumeNames(), Names{EphName(tag)});
  stack_->StopAgent(SIGKILL);
  ASSERT_TRUE(stack_->StartAgent().ok());
  // The published volume survives the restart untouched ...
  EXPECT_EQ(stack_->SimVolumeNames(), Names{EphName(tag)});
  EXPECT_EQ(stack_->Mounts(), stack_->RecordedMounts());
  // ... and NodeUnpublish (no secrets: the node-wide token serves) deletes it.
  grpc::Status st = stack_->Unpublish(NodeStack::EphId(tag), tag);
  ASSERT_TRUE(st.ok()) << st.error_message();
  Expect({}, {}, {}, {}, "deleted after restart");
}

// One kill -9 of the agent at `point` while doing `op`, then restart and the
// same call again; exact leak checks after it and after the full teardown.
struct CrashCase {
  const char* point;
  enum Op { kStage, kPublish, kUnpublish, kUnstage, kEphPublish, kEphUnpublish } op;
};

TEST_F(NodeProcesses, AgentKilledAtCrashPointsRecovers) {
  if (!stack_) return;
  const CrashCase cases[] = {
      {"stage.after_intent", CrashCase::kStage},
      {"stage.after_attach", CrashCase::kStage},
      {"stage.after_format", CrashCase::kStage},
      {"stage.after_mount", CrashCase::kStage},
      {"stage.before_done", CrashCase::kStage},
      {"publish.after_intent", CrashCase::kPublish},
      {"publish.after_publish", CrashCase::kPublish},
      {"unpublish.after_intent", CrashCase::kUnpublish},
      {"unpublish.after_unpublish", CrashCase::kUnpublish},
      {"unstage.after_intent", CrashCase::kUnstage},
      {"unstage.after_unmount", CrashCase::kUnstage},
      {"unstage.after_detach", CrashCase::kUnstage},
      {"eph_publish.after_intent", CrashCase::kEphPublish},
      {"eph_publish.after_create", CrashCase::kEphPublish},
      {"eph_publish.after_mount", CrashCase::kEphPublish},
      {"eph_publish.after_publish", CrashCase::kEphPublish},
      {"eph_unpublish.after_intent", CrashCase::kEphUnpublish},
      {"eph_unpublish.after_unmount", CrashCase::kEphUnpublish},
      {"eph_unpublish.after_detach", CrashCase::kEphUnpublish},
  };
  int n = 0;
  for (const CrashCase& c : cases) {
    SCOPED_TRACE(c.point);
    std::printf("crash point %s\n", c.point);
    const std::string tag = Cat("c", ++n);
    const bool eph = c.op == CrashCase::kEphPublish || c.op == CrashCase::kEphUnpublish;
    const std::string name = eph ? EphName(tag) : Cat("vol-", tag);
    const std::string uuid = eph ? "" : Uuid(name);
    const std::string vid = eph ? NodeStack::EphId(tag) : stack_->VolId(uuid);
    const std::string file = NodeStack::StateFileOf(vid);
    // Precondition, with a normal agent.
    if (c.op == CrashCase::kPublish || c.op == CrashCase::kUnpublish ||
        c.op == CrashCase::kUnstage) {
      ASSERT_TRUE(stack_->Stage(uuid, tag).ok());
    }
    if (c.op == CrashCase::kUnpublish) {
      ASSERT_TRUE(stack_->Publish(uuid, tag).ok());
    }
    if (c.op == CrashCase::kEphUnpublish) {
      ASSERT_TRUE(stack_->PublishEphemeral(tag).ok());
    }
    auto run = [&]() -> grpc::Status {
      switch (c.op) {
        case CrashCase::kStage: return stack_->Stage(uuid, tag);
        case CrashCase::kPublish: return stack_->Publish(uuid, tag);
        case CrashCase::kUnpublish: return stack_->Unpublish(vid, tag);
        case CrashCase::kUnstage: return stack_->Unstage(uuid, tag);
        case CrashCase::kEphPublish: return stack_->PublishEphemeral(tag);
        case CrashCase::kEphUnpublish: return stack_->Unpublish(vid, tag);
      }
      return grpc::Status::CANCELLED;
    };
    // The agent dies at the point (a real SIGKILL), mid-call.
    stack_->StopAgent();
    ASSERT_TRUE(stack_->StartAgent(c.point).ok());
    EXPECT_FALSE(run().ok());
    ASSERT_TRUE(stack_->AgentDiedOfSigkill()) << "the crash point was not reached";
    // Restart (start-up reconcile), then the same call succeeds.
    ASSERT_TRUE(stack_->StartAgent().ok());
    grpc::Status st = run();
    ASSERT_TRUE(st.ok()) << st.error_message();
    const std::string img = (eph ? "" : uuid) + ".img";
    switch (c.op) {
      case CrashCase::kStage:
      case CrashCase::kUnpublish:
        Expect({name}, {file}, {img}, {stack_->Staging(tag)}, "after the repeated call");
        break;
      case CrashCase::kPublish:
        Expect({name}, {file}, {img}, {stack_->Staging(tag), stack_->Target(tag)},
               "after the repeated call");
        break;
      case CrashCase::kUnstage:
      case CrashCase::kEphUnpublish:
        Expect(eph ? Names{} : Names{name}, {}, {}, {}, "after the repeated call");
        break;
      case CrashCase::kEphPublish: {
        auto vol = stack_->lightos().GetVolumeByName(name, stack_->Opts());
        ASSERT_TRUE(vol.ok()) << vol.status();
        auto recs = stack_->Records();
        ASSERT_EQ(recs.size(), 1u);
        Expect({name}, {file}, {vol->uuid + ".img"},
               {recs[0].ephemeral->staging_path, stack_->Target(tag)}, "after the repeated call");
        break;
      }
    }
    // Tear down normally; nothing may be left.
    if (c.op == CrashCase::kPublish) {
      ASSERT_TRUE(stack_->Unpublish(vid, tag).ok());
    }
    if (c.op == CrashCase::kStage || c.op == CrashCase::kPublish || c.op == CrashCase::kUnpublish) {
      ASSERT_TRUE(stack_->Unstage(uuid, tag).ok());
    }
    if (c.op == CrashCase::kEphPublish) {
      ASSERT_TRUE(stack_->Unpublish(vid, tag).ok());
    }
    if (!eph) {
      ASSERT_TRUE(stack_->DeleteVolume(uuid).ok());
    }
    Expect({}, {}, {}, {}, "after teardown");
    if (HasFatalFailure()) return;
  }
}

TEST_F(NodeProcesses, HelperKilledMidAttachAndBetweenCalls) {
  if (!stack_) return;
  // Mid-call: the namespace does not show (ACL not granted), so Attach waits
  // inside the helper; the helper dies there.
  const std::string uuid = Uuid("vol-h", /*granted=*/false);
  const std::string tag = "h";
  grpc::Status first;
  std::thread stage([&] { first = stack_->Stage(uuid, tag, 60); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stack_->StopHelper(SIGKILL);
  stage.join();
  EXPECT_FALSE(first.ok());
  ASSERT_TRUE(stack_->StartHelper().ok());
  ASSERT_TRUE(stack_->Grant(uuid).ok());
  grpc::Status st = stack_->Stage(uuid, tag);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string file = NodeStack::StateFileOf(stack_->VolId(uuid));
  Expect({"vol-h"}, {file}, {uuid + ".img"}, {stack_->Staging(tag)}, "staged after helper kill");
  // Between calls: the agent reconnects to the new helper by itself.
  stack_->StopHelper(SIGKILL);
  ASSERT_TRUE(stack_->StartHelper().ok());
  st = stack_->Publish(uuid, tag);
  ASSERT_TRUE(st.ok()) << st.error_message();
  Expect({"vol-h"}, {file}, {uuid + ".img"}, {stack_->Staging(tag), stack_->Target(tag)},
         "published after helper kill");
  stack_->StopHelper(SIGKILL);
  ASSERT_TRUE(stack_->StartHelper().ok());
  ASSERT_TRUE(stack_->Unpublish(stack_->VolId(uuid), tag).ok());
  ASSERT_TRUE(stack_->Unstage(uuid, tag).ok());
  ASSERT_TRUE(stack_->DeleteVolume(uuid).ok());
  Expect({}, {}, {}, {}, "after teardown");
}

TEST_F(NodeProcesses, AStalledAttachDoesNotDelayOtherVolumes) {
  if (!stack_) return;
  constexpr int kOthers = 8;  // 8 publishes + 8 stats = 16 calls
  std::vector<std::string> uuids;
  for (int i = 0; i < kOthers; ++i) {
    uuids.push_back(Uuid(Cat("vol-i", i)));
    ASSERT_TRUE(stack_->Stage(uuids.back(), Cat("i", i)).ok());
  }
  const std::string stalled = Uuid("vol-stalled", /*granted=*/false);
  absl::Time stall_start = absl::Now();
  std::atomic<bool> stalled_done{false};
  grpc::Status stalled_status;
  absl::Time stalled_end;
  std::thread a([&] {
    stalled_status = stack_->Stage(stalled, "stalled", 60);
    stalled_end = absl::Now();
    stalled_done = true;
  });
  absl::Time grant_time;
  std::thread granter([&] {
    absl::SleepFor(stall_start + absl::Seconds(5) - absl::Now());
    grant_time = absl::Now();
    EXPECT_TRUE(stack_->Grant(stalled).ok());
  });
  absl::SleepFor(absl::Milliseconds(300));  // the attach is waiting in the helper now
  std::vector<std::thread> calls;
  std::vector<grpc::Status> results(2 * kOthers);
  std::vector<absl::Time> finished(2 * kOthers);
  std::vector<bool> during(2 * kOthers);
  for (int i = 0; i < kOthers; ++i) {
    calls.emplace_back([&, i] {
      results[i] = stack_->Publish(uuids[i], Cat("i", i));
      finished[i] = absl::Now();
      during[i] = !stalled_done;
    });
    calls.emplace_back([&, i] {
      results[kOthers + i] = stack_->Stats(stack_->VolId(uuids[i]), stack_->Staging(Cat("i", i)));
      finished[kOthers + i] = absl::Now();
      during[kOthers + i] = !stalled_done;
    });
  }
  for (auto& t : calls) t.join();
  granter.join();
  a.join();
  absl::Duration slowest;
  for (int i = 0; i < 2 * kOthers; ++i) {
    EXPECT_TRUE(results[i].ok()) << i << ": " << results[i].error_message();
    EXPECT_TRUE(during[i]) << "call " << i << " finished only after the stalled stage";
    EXPECT_LT(finished[i], grant_time) << "call " << i << " waited for the stall to end";
    slowest = std::max(slowest, finished[i] - stall_start);
  }
  ASSERT_TRUE(stalled_status.ok()) << stalled_status.error_message();
  EXPECT_GE(stalled_end, grant_time);
  std::printf("16 calls during a 5 s stalled attach: slowest finished %s after the stall began\n",
              absl::FormatDuration(slowest).c_str());
  for (int i = 0; i < kOthers; ++i) {
    ASSERT_TRUE(stack_->Unpublish(stack_->VolId(uuids[i]), Cat("i", i)).ok());
    ASSERT_TRUE(stack_->Unstage(uuids[i], Cat("i", i)).ok());
  }
  ASSERT_TRUE(stack_->Unstage(stalled, "stalled").ok());
  Names sim = {"vol-stalled"};
  for (int i = 0; i < kOthers; ++i) sim.insert(Cat("vol-i", i));
  Expect(sim, {}, {}, {}, "after teardown");
}

// Reads GET /metrics from 127.0.0.1:port with a plain socket.
std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;)
        out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return out;
}

// A port the kernel picked for us (bound to port 0, read back, released).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class NodeMetrics : public NodeProcesses {
 protected:
  void SetUp() override {
    port_ = FreePort();
    NodeStack::Options o;
    o.metrics_address = Cat("127.0.0.1:", port_);
    Begin(o);
  }
  int port_ = 0;
};

TEST_F(NodeMetrics, AgentServesPerRpcAndHelperMetrics) {
  if (!stack_) return;
  ASSERT_TRUE(stack_->PublishEphemeral("m1").ok());
  ASSERT_TRUE(stack_->Unpublish(NodeStack::EphId("m1"), "m1").ok());
  EXPECT_FALSE(stack_->Unpublish("", "m1").ok());
  std::string body = HttpGet(port_, "/metrics");
  EXPECT_TRUE(Contains(body, "200 OK")) << body.substr(0, 200);
  for (const char* want :
       {"lbcsi_csi_requests_total{", "method=\"NodePublishVolume\"", "code=\"INVALID_ARGUMENT\"",
        "lbcsi_csi_request_seconds_bucket{", "lbcsi_helper_calls_total{", "method=\"Attach\"",
        "lbcsi_helper_call_seconds_bucket{"}) {
    EXPECT_TRUE(Contains(body, want)) << want;
  }
}

}  // namespace
}  // namespace lbcsi::agent::procs
