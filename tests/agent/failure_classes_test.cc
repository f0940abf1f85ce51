// Failure classes (docs/design.md): after a code kubelet counts as "maybe
// still in progress" the agent keeps its intent for the retry or the undo
// kubelet will ask for; after any other code, INTERNAL included, it takes back
// what the failed call made, because kubelet will never call the negation.
#include <algorithm>

#include <gtest/gtest.h>

#include "agent/request_checks.h"
#include "tests/agent/agent_env.h"

namespace lbcsi::agent::testing {
namespace {

using grpc::StatusCode;

TEST(FailureClasses, KubeletsInProgressCodesAreExactlyFive) {
  const absl::StatusCode kept[] = {
      absl::StatusCode::kCancelled, absl::StatusCode::kDeadlineExceeded,
      absl::StatusCode::kUnavailable, absl::StatusCode::kResourceExhausted,
      absl::StatusCode::kAborted};
  int n = 0;
  for (int c = 1; c <= 16; ++c) {
    const auto code = static_cast<absl::StatusCode>(c);
    const bool want = std::find(std::begin(kept), std::end(kept), code) != std::end(kept);
    EXPECT_EQ(KubeletKeepsTrack(absl::Status(code, "x")), want) << absl::StatusCodeToString(code);
    n += want;
  }
  EXPECT_EQ(n, 5);
  // Reconcile may still retry an INTERNAL on its own schedule.
  EXPECT_TRUE(IsTransient(absl::InternalError("EIO")));
}

TEST(FailureClasses, InternalStageFailureLeavesNothingAttachedOrRecorded) {
  AgentEnv env;
  env.AddBlank(1);
  env.helper_.FailNext("Format", grpc::Status(StatusCode::INTERNAL, "mkfs exited 1"));
  grpc::Status st = env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4")));
  EXPECT_EQ(st.error_code(), StatusCode::INTERNAL);
  EXPECT_TRUE(env.helper_.Attached().empty()) << "kubelet will not unstage after INTERNAL";
  EXPECT_TRUE(env.Records().empty());
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).ok());
  EXPECT_EQ(env.helper_.Attached().size(), 1u);
}

TEST(FailureClasses, InProgressStageFailureKeepsTheIntent) {
  AgentEnv env;
  env.AddBlank(1);
  env.helper_.FailNext("Format", grpc::Status(StatusCode::UNAVAILABLE, "helper restarting"));
  EXPECT_EQ(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).error_code(),
            StatusCode::UNAVAILABLE);
  ASSERT_EQ(env.Records().size(), 1u);
  ASSERT_TRUE(env.Records()[0].stage.has_value());
  EXPECT_EQ(env.Records()[0].stage->phase, state::StagePhase::kStaging);
  EXPECT_EQ(env.helper_.Attached().size(), 1u) << "kubelet will unstage or retry";
}

TEST(FailureClasses, AFinalFailureAfterAnInProgressOneIsUndone) {
  // kubelet turns an "uncertain" stage into "not staged" on a final error, so
  // the record kept by the first failure must not outlive the second.
  AgentEnv env;
  env.AddBlank(1);
  env.helper_.FailNext("Format", grpc::Status(StatusCode::DEADLINE_EXCEEDED, "slow"));
  EXPECT_FALSE(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).ok());
  ASSERT_EQ(env.Records().size(), 1u);
  env.helper_.FailNext("Format", grpc::Status(StatusCode::INTERNAL, "mkfs exited 1"));
  EXPECT_EQ(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).error_code(),
            StatusCode::INTERNAL);
  EXPECT_TRUE(env.Records().empty());
  EXPECT_TRUE(env.helper_.Attached().empty());
}

TEST(FailureClasses, AFinalPublishFailureAfterAnInProgressOneIsForgotten) {
  AgentEnv env;
  env.AddBlank(1);
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).ok());
  const auto req = env.PublishReq(1, AgentEnv::MountCap("ext4"));
  env.helper_.FailNext("Publish", grpc::Status(StatusCode::UNAVAILABLE, "helper restarting"));
  EXPECT_FALSE(env.Publish(req).ok());
  ASSERT_EQ(env.Records().size(), 1u);
  EXPECT_EQ(env.Records()[0].publishes.count(req.target_path()), 1u) << "kept for the retry";
  env.helper_.FailNext("Publish", grpc::Status(StatusCode::INTERNAL, "bind failed"));
  EXPECT_EQ(env.Publish(req).error_code(), StatusCode::INTERNAL);
  ASSERT_EQ(env.Records().size(), 1u);
  EXPECT_EQ(env.Records()[0].publishes.count(req.target_path()), 0u)
      << "kubelet will not unpublish after a final error";
  EXPECT_TRUE(env.Records()[0].stage.has_value()) << "the staged volume stays staged";
}

TEST(FailureClasses, InternalInlinePublishFailureDeletesTheInlineVolume) {
  AgentEnv env;
  csi::v1::NodePublishVolumeRequest r;
  r.set_volume_id("csi-0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c");
  r.set_target_path(env.kubelet_ + "/pods/p1/volumes/kubernetes.io~csi/scratch/mount");
  *r.mutable_volume_capability() = AgentEnv::MountCap("");
  auto& ctx = *r.mutable_volume_context();
  ctx["csi.storage.k8s.io/ephemeral"] = "true";
  ctx["csi.storage.k8s.io/pod.name"] = "p1";
  ctx["csi.storage.k8s.io/pod.namespace"] = "default";
  env.helper_.FailNext("Format", grpc::Status(StatusCode::INTERNAL, "mkfs exited 1"));
  EXPECT_EQ(env.Publish(r).error_code(), StatusCode::INTERNAL);
  EXPECT_TRUE(env.lightos_.volumes.empty()) << "the LightOS volume would leak";
  EXPECT_TRUE(env.helper_.Attached().empty());
  EXPECT_TRUE(env.helper_.Mounts().empty());
  EXPECT_EQ(env.StateFiles(), 0u);
}

}  // namespace
}  // namespace lbcsi::agent::testing
