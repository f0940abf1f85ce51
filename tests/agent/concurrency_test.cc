// Idempotency (every call repeated), ABORTED for concurrent calls on one
// volume, and isolation: a stalled attach does not hold up other volumes.
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "tests/agent/agent_env.h"

namespace lbcsi::agent::testing {
namespace {

using grpc::StatusCode;

TEST(Idempotency, EveryCallRepeatedFiveTimesConverges) {
  CSI_CONFORMANCE("NodeStageVolume.MUST.idempotent");
  CSI_CONFORMANCE("NodePublishVolume.MUST.idempotent");
  CSI_CONFORMANCE("NodeUnpublishVolume.MUST.idempotent");
  CSI_CONFORMANCE("NodeUnstageVolume.MUST.idempotent");
  AgentEnv env;
  for (bool block : {false, true}) {
    int n = block ? 2 : 1;
    env.AddBlank(n);
    auto cap = block ? AgentEnv::BlockCap() : AgentEnv::MountCap("ext4");
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(env.Stage(env.StageReq(n, cap)).ok()) << i;
    EXPECT_EQ(env.helper_.Formats().size(), 1u);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(env.Publish(env.PublishReq(n, cap)).ok()) << i;
    EXPECT_EQ(env.helper_.Mounts().count(env.TargetPath(n)), 1u);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(env.Unpublish(env.UnpublishReq(n)).ok()) << i;
    EXPECT_EQ(env.helper_.Mounts().count(env.TargetPath(n)), 0u);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(env.Unstage(env.UnstageReq(n)).ok()) << i;
    EXPECT_TRUE(env.helper_.Attached().empty());
    EXPECT_TRUE(env.helper_.Mounts().empty());
    EXPECT_EQ(env.StateFiles(), 0u);
  }
}

TEST(Idempotency, RestageAfterTheMountVanishedConverges) {
  // kubelet's "uncertain" state: stage again after the mount went away
  // (node restart); the agent verifies rather than trusting its record.
  AgentEnv env;
  env.AddBlank(1);
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).ok());
  // Simulate the kernel losing the mount and the attachment.
  {
    hv1::UnmountRequest u;
    u.set_staging_path(env.StagingPath(1));
    ASSERT_TRUE(env.helper_client_->Unmount(u, absl::Now() + absl::Seconds(5)).ok());
    hv1::DetachRequest d;
    d.set_volume_uuid(Uuid(1));
    ASSERT_TRUE(env.helper_client_->Detach(d, absl::Now() + absl::Seconds(5)).ok());
  }
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).ok());
  EXPECT_EQ(env.helper_.Mounts().count(env.StagingPath(1)), 1u);
  EXPECT_EQ(env.helper_.Attached().count(Uuid(1)), 1u);
  EXPECT_EQ(env.helper_.Formats().size(), 1u);
}

TEST(Concurrency, SecondCallOnABusyVolumeIsAborted) {
  CSI_CONFORMANCE("General.E.ABORTED.operation_pending");
  AgentEnv env;
  env.AddBlank(1);
  env.helper_.StallAttach(Uuid(1), absl::Seconds(2));
  auto first = std::async(std::launch::async,
                          [&] { return env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))); });
  // Wait until the first call is inside the helper.
  for (int i = 0; i < 200 && env.helper_.CountCalls("Attach") == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(env.helper_.CountCalls("Attach"), 1);
  EXPECT_EQ(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).error_code(),
            StatusCode::ABORTED);
  EXPECT_EQ(env.Unstage(env.UnstageReq(1)).error_code(), StatusCode::ABORTED);
  EXPECT_EQ(env.Publish(env.PublishReq(1, AgentEnv::MountCap("ext4"))).error_code(),
            StatusCode::ABORTED);
  EXPECT_EQ(env.Unpublish(env.UnpublishReq(1)).error_code(), StatusCode::ABORTED);
  EXPECT_TRUE(first.get().ok());
  // The guard is released: the next call goes through.
  EXPECT_TRUE(env.Publish(env.PublishReq(1, AgentEnv::MountCap("ext4"))).ok());
}

TEST(Concurrency, AStalledAttachDoesNotBlockOtherVolumes) {
  AgentEnv env;
  constexpr int kOthers = 16;
  for (int n = 1; n <= kOthers; ++n) {
    env.AddBlank(n);
    ASSERT_TRUE(env.Stage(env.StageReq(n, AgentEnv::MountCap("ext4"))).ok());
  }
  env.AddBlank(100);
  env.helper_.StallAttach(Uuid(100), absl::Seconds(5));
  absl::Time start = absl::Now();
  auto stalled = std::async(std::launch::async, [&] {
    grpc::Status st = env.Stage(env.StageReq(100, AgentEnv::MountCap("ext4")));
    return std::make_pair(st, absl::Now());
  });
  for (int i = 0; i < 200 && env.helper_.CountCalls("Attach " + Uuid(100)) == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(env.helper_.CountCalls("Attach " + Uuid(100)), 1);
  std::vector<std::future<std::pair<bool, absl::Time>>> calls;
  for (int n = 1; n <= kOthers; ++n) {
    calls.push_back(std::async(std::launch::async, [&env, n] {
      bool ok = env.Publish(env.PublishReq(n, AgentEnv::MountCap("ext4"))).ok();
      csi::v1::NodeGetVolumeStatsRequest s;
      s.set_volume_id(VolId(n));
      s.set_volume_path(env.TargetPath(n));
      csi::v1::NodeGetVolumeStatsResponse r;
      ok = ok && env.Stats(s, &r).ok();
      return std::make_pair(ok, absl::Now());
    }));
  }
  absl::Time last_other = start;
  for (auto& f : calls) {
    auto [ok, done] = f.get();
    EXPECT_TRUE(ok);
    last_other = std::max(last_other, done);
  }
  auto [st, stalled_done] = stalled.get();
  EXPECT_TRUE(st.ok()) << st.error_message();
  // Ordering, not timing: every other call finished before the stall ended.
  EXPECT_LT(last_other, stalled_done);
  std::printf("other calls done after %s; stalled stage done after %s\n",
              absl::FormatDuration(last_other - start).c_str(),
              absl::FormatDuration(stalled_done - start).c_str());
}

TEST(Concurrency, DifferentVolumesAttachInParallel) {
  AgentEnv env;
  for (int n = 1; n <= 4; ++n) {
    env.AddBlank(n);
    env.helper_.StallAttach(Uuid(n), absl::Milliseconds(500));
  }
  std::vector<std::future<grpc::Status>> calls;
  for (int n = 1; n <= 4; ++n) {
    calls.push_back(std::async(std::launch::async, [&env, n] {
      return env.Stage(env.StageReq(n, AgentEnv::MountCap("ext4")));
    }));
  }
  for (auto& f : calls) EXPECT_TRUE(f.get().ok());
  EXPECT_GE(env.helper_.MaxConcurrentAttaches(), 2) << "no global lock";
}

}  // namespace
}  // namespace lbcsi::agent::testing
