// Simulated crashes at every named point, a restart (new service over the same
// state dir, start-up reconcile), then exact "nothing leaked" checks and the
// next call succeeding.
#include <set>

#include <gtest/gtest.h>

#include "agent/crash_points.h"
#include "tests/agent/agent_env.h"

namespace lbcsi::agent::testing {
namespace {

using state::EphemeralPhase;
using state::PublishPhase;
using state::StagePhase;

constexpr char kEphId[] = "csi-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

std::set<std::string>& PointsHit() {
  static std::set<std::string> hit;
  return hit;
}

csi::v1::NodePublishVolumeRequest EphReq(AgentEnv& env) {
  csi::v1::NodePublishVolumeRequest r;
  r.set_volume_id(kEphId);
  r.set_target_path(env.kubelet_ + "/pods/p9/volumes/kubernetes.io~csi/scratch/mount");
  *r.mutable_volume_capability() = AgentEnv::MountCap("ext4");
  (*r.mutable_volume_context())["csi.storage.k8s.io/ephemeral"] = "true";
  return r;
}
csi::v1::NodeUnpublishVolumeRequest EphUnpub(AgentEnv& env) {
  csi::v1::NodeUnpublishVolumeRequest r;
  r.set_volume_id(kEphId);
  r.set_target_path(EphReq(env).target_path());
  return r;
}

// The helper's view, the records and LightOS agree exactly, and no record is
// left half-done after the reconcile.
void ExpectConsistent(AgentEnv& env, const std::string& where) {
  SCOPED_TRACE(where);
  std::set<std::string> want_mounts, want_attached, want_lightos;
  for (const auto& rec : env.Records()) {
    if (rec.stage) {
      EXPECT_EQ(rec.stage->phase, StagePhase::kStaged);
      want_attached.insert(rec.volume_uuid);
      if (!rec.stage->block) want_mounts.insert(rec.stage->path);
    }
    for (const auto& [target, p] : rec.publishes) {
      EXPECT_EQ(p.phase, PublishPhase::kPublished);
      want_mounts.insert(target);
    }
    if (rec.ephemeral) {
      EXPECT_EQ(rec.ephemeral->phase, EphemeralPhase::kPublished);
      want_mounts.insert(rec.ephemeral->staging_path);
      want_mounts.insert(rec.ephemeral->target_path);
      want_attached.insert(rec.volume_uuid);
      want_lightos.insert(rec.volume_uuid);
    }
  }
  std::set<std::string> have_mounts;
  for (const auto& [path, m] : env.helper_.Mounts()) have_mounts.insert(path);
  EXPECT_EQ(have_mounts, want_mounts);
  EXPECT_EQ(env.helper_.Attached(), want_attached);
  std::set<std::string> have_lightos;
  for (const auto& [uuid, v] : env.lightos_.volumes) have_lightos.insert(uuid);
  EXPECT_EQ(have_lightos, want_lightos);
}

CrashHook CrashAt(std::string point, bool* hit) {
  return [point, hit](std::string_view p) -> absl::Status {
    if (p != point) return absl::OkStatus();
    *hit = true;
    PointsHit().insert(point);
    return SimulatedCrash(p);
  };
}

struct Scenario {
  std::string prefix;
  std::function<void(AgentEnv&)> setup;  // state before the crashing call
  std::function<grpc::Status(AgentEnv&)> call;
  std::function<void(AgentEnv&)> finish;  // the next calls, ending with nothing left
};

std::vector<Scenario> Scenarios() {
  auto cap = AgentEnv::MountCap("ext4");
  auto stage = [cap](AgentEnv& e) { ASSERT_TRUE(e.Stage(e.StageReq(1, cap)).ok()); };
  auto publish = [cap](AgentEnv& e) { ASSERT_TRUE(e.Publish(e.PublishReq(1, cap)).ok()); };
  auto unpublish = [](AgentEnv& e) { ASSERT_TRUE(e.Unpublish(e.UnpublishReq(1)).ok()); };
  auto unstage = [](AgentEnv& e) { ASSERT_TRUE(e.Unstage(e.UnstageReq(1)).ok()); };
  return {
      {"stage.", [](AgentEnv&) {}, [cap](AgentEnv& e) { return e.Stage(e.StageReq(1, cap)); },
       [=](AgentEnv& e) {
         stage(e);
         publish(e);
         unpublish(e);
         unstage(e);
       }},
      {"unstage.", stage, [](AgentEnv& e) { return e.Unstage(e.UnstageReq(1)); },
       [=](AgentEnv& e) { unstage(e); }},
      {"publish.", stage, [cap](AgentEnv& e) { return e.Publish(e.PublishReq(1, cap)); },
       [=](AgentEnv& e) {
         publish(e);
         unpublish(e);
         unstage(e);
       }},
      {"unpublish.",
       [=](AgentEnv& e) {
         stage(e);
         publish(e);
       },
       [](AgentEnv& e) { return e.Unpublish(e.UnpublishReq(1)); },
       [=](AgentEnv& e) {
         unpublish(e);
         unstage(e);
       }},
      {"eph_publish.", [](AgentEnv&) {}, [](AgentEnv& e) { return e.Publish(EphReq(e)); },
       [](AgentEnv& e) {
         ASSERT_TRUE(e.Publish(EphReq(e)).ok());
         ASSERT_TRUE(e.Unpublish(EphUnpub(e)).ok());
       }},
      {"eph_unpublish.", [](AgentEnv& e) { ASSERT_TRUE(e.Publish(EphReq(e)).ok()); },
       [](AgentEnv& e) { return e.Unpublish(EphUnpub(e)); },
       [](AgentEnv& e) { ASSERT_TRUE(e.Unpublish(EphUnpub(e)).ok()); }},
  };
}

TEST(CrashReconcile, EveryKillPointRecovers) {
  for (const Scenario& sc : Scenarios()) {
    for (std::string_view point : kCrashPoints) {
      if (!point.starts_with(sc.prefix)) continue;
      SCOPED_TRACE(std::string(point));
      AgentEnv env;
      env.AddBlank(1);
      sc.setup(env);
      bool hit = false;
      ASSERT_TRUE(env.Restart(CrashAt(std::string(point), &hit)).ok());
      grpc::Status st = sc.call(env);
      ASSERT_TRUE(hit) << "point not reached";
      EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
      absl::StatusOr<int> rec = env.Restart();
      ASSERT_TRUE(rec.ok()) << rec.status();
      ExpectConsistent(env, "after restart");
      sc.finish(env);
      EXPECT_TRUE(env.helper_.Mounts().empty());
      EXPECT_TRUE(env.helper_.Attached().empty());
      EXPECT_TRUE(env.lightos_.volumes.empty());
      EXPECT_EQ(env.StateFiles(), 0u) << "state dir holds exactly nothing";
    }
  }
}

TEST(CrashReconcile, AllNamedPointsAreCovered) {
  // Runs after EveryKillPointRecovers (gtest keeps declaration order in a suite).
  for (std::string_view point : kCrashPoints) {
    EXPECT_TRUE(PointsHit().count(std::string(point))) << point;
  }
}

TEST(CrashReconcile, EphemeralDeleteFinishesAtStartupWithoutKubelet) {
  AgentEnv env;
  ASSERT_TRUE(env.Publish(EphReq(env)).ok());
  bool hit = false;
  ASSERT_TRUE(env.Restart(CrashAt("eph_unpublish.after_unmount", &hit)).ok());
  EXPECT_EQ(env.Unpublish(EphUnpub(env)).error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_EQ(env.lightos_.volumes.size(), 1u);
  // Only the restart: no further CSI call.
  absl::StatusOr<int> changed = env.Restart();
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(*changed, 1);
  EXPECT_TRUE(env.lightos_.volumes.empty());
  EXPECT_TRUE(env.helper_.Attached().empty());
  EXPECT_EQ(env.StateFiles(), 0u);
}

TEST(CrashReconcile, CompletedWorkIsLeftAloneByTheReconcile) {
  AgentEnv env;
  env.AddBlank(1);
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).ok());
  ASSERT_TRUE(env.Publish(env.PublishReq(1, AgentEnv::MountCap("ext4"))).ok());
  absl::StatusOr<int> changed = env.Restart();
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(*changed, 0);
  EXPECT_EQ(env.helper_.Mounts().size(), 2u);
  EXPECT_EQ(env.helper_.CountCalls("Unmount"), 0);
  EXPECT_EQ(env.helper_.CountCalls("Detach"), 0);
}

TEST(CrashReconcile, ReconcileRetriesWhenTheHelperIsDown) {
  AgentEnv env;
  env.helper_.FailNext("Inventory", grpc::Status(grpc::StatusCode::UNAVAILABLE, "starting"));
  EXPECT_FALSE(env.Restart().ok());
  EXPECT_TRUE(env.node_->Reconcile(absl::Now() + absl::Seconds(5)).ok());
}

}  // namespace
}  // namespace lbcsi::agent::testing
