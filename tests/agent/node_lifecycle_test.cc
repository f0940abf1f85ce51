// Full call sequences through the CSI socket against the fake helper.
#include <algorithm>

#include <gtest/gtest.h>

#include "tests/agent/agent_env.h"

namespace lbcsi::agent::testing {
namespace {

using Mode = csi::v1::VolumeCapability::AccessMode;

class LifecycleTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LifecycleTest, FilesystemStagePublishUnpublishUnstage) {
  CSI_CONFORMANCE("NodeStageVolume.MUST.capability_honoured");
  CSI_CONFORMANCE("NodeUnstageVolume.MUST.undo_stage");
  CSI_CONFORMANCE("NodePublishVolume.MUST.target_created_by_sp");
  CSI_CONFORMANCE("NodeUnpublishVolume.MUST.delete_target");
  const std::string fs = GetParam();
  AgentEnv env;
  env.AddBlank(1);
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap(fs))).ok());
  auto mounts = env.helper_.Mounts();
  ASSERT_EQ(mounts.count(env.StagingPath(1)), 1u);
  EXPECT_EQ(mounts[env.StagingPath(1)].fs, fs);
  ASSERT_EQ(env.helper_.Formats().size(), 1u);
  EXPECT_EQ(env.helper_.Formats()[0].proof(), hv1::NEVER_WRITTEN_PROOF_WRITTEN_BYTES_ZERO);

  ASSERT_TRUE(env.Publish(env.PublishReq(1, AgentEnv::MountCap(fs))).ok());
  mounts = env.helper_.Mounts();
  ASSERT_EQ(mounts.count(env.TargetPath(1)), 1u);
  EXPECT_TRUE(mounts[env.TargetPath(1)].publish);
  EXPECT_FALSE(mounts[env.TargetPath(1)].read_only);
  ASSERT_EQ(env.helper_.PublishRequests().size(), 1u);
  EXPECT_EQ(env.helper_.PublishRequests()[0].staging_path(), env.StagingPath(1));

  ASSERT_TRUE(env.Unpublish(env.UnpublishReq(1)).ok());
  EXPECT_EQ(env.helper_.Mounts().count(env.TargetPath(1)), 0u);
  ASSERT_TRUE(env.Unstage(env.UnstageReq(1)).ok());
  EXPECT_TRUE(env.helper_.Mounts().empty());
  EXPECT_TRUE(env.helper_.Attached().empty());
  EXPECT_EQ(env.StateFiles(), 0u);
  // Stage again: the filesystem is there now, so no second format.
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap(fs))).ok());
  EXPECT_EQ(env.helper_.Formats().size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Fs, LifecycleTest, ::testing::Values("ext4", "xfs"));

TEST(Lifecycle, XfsNouuidGoesToTheStageMountOnly) {
  // kubelet passes the same mount flags to stage and publish; a bind mount must
  // not carry nouuid (the helper refuses it without an xfs superblock).
  AgentEnv env;
  env.AddBlank(3);
  csi::v1::VolumeCapability cap = AgentEnv::MountCap("xfs");
  cap.mutable_mount()->add_mount_flags("nouuid");
  cap.mutable_mount()->add_mount_flags("noatime");
  ASSERT_TRUE(env.Stage(env.StageReq(3, cap)).ok());
  ASSERT_TRUE(env.Publish(env.PublishReq(3, cap)).ok());
  const std::vector<hv1::PublishRequest> publishes = env.helper_.PublishRequests();
  ASSERT_EQ(publishes.size(), 1u);
  const auto& opts = publishes[0].options();
  EXPECT_EQ(std::count(opts.begin(), opts.end(), hv1::MOUNT_OPTION_NOUUID), 0);
  EXPECT_EQ(std::count(opts.begin(), opts.end(), hv1::MOUNT_OPTION_NOATIME), 1);
}

TEST(Lifecycle, BlockAttachesOnlyAndBindsTheDevice) {
  CSI_CONFORMANCE("NodePublishVolume.MUST.block_at_target");
  AgentEnv env;
  env.AddBlank(2);
  ASSERT_TRUE(env.Stage(env.StageReq(2, AgentEnv::BlockCap())).ok());
  EXPECT_EQ(env.helper_.CountCalls("Probe"), 0);
  EXPECT_EQ(env.helper_.CountCalls("Format"), 0);
  EXPECT_EQ(env.helper_.CountCalls("Mount"), 0);
  EXPECT_EQ(env.helper_.Attached().count(Uuid(2)), 1u);
  ASSERT_TRUE(env.Publish(env.PublishReq(2, AgentEnv::BlockCap())).ok());
  auto mounts = env.helper_.Mounts();
  ASSERT_EQ(mounts.count(env.TargetPath(2)), 1u);
  EXPECT_TRUE(mounts[env.TargetPath(2)].block);
  EXPECT_TRUE(env.helper_.PublishRequests()[0].block_device());

  csi::v1::NodeGetVolumeStatsRequest sreq;
  sreq.set_volume_id(VolId(2));
  sreq.set_volume_path(env.TargetPath(2));
  csi::v1::NodeGetVolumeStatsResponse sresp;
  ASSERT_TRUE(env.Stats(sreq, &sresp).ok());
  ASSERT_EQ(sresp.usage_size(), 1);
  EXPECT_EQ(sresp.usage(0).total(), 1ll << 30);

  ASSERT_TRUE(env.Unpublish(env.UnpublishReq(2)).ok());
  ASSERT_TRUE(env.Unstage(env.UnstageReq(2)).ok());
  EXPECT_TRUE(env.helper_.Attached().empty());
  EXPECT_TRUE(env.helper_.Mounts().empty());
}

TEST(Lifecycle, ReadOnlyPublishIsEnforcedAndExistingFsIsNotFormatted) {
  CSI_CONFORMANCE("NodePublishVolume.MUST.readonly");
  AgentEnv env;
  env.AddFs(3, "xfs");
  ASSERT_TRUE(env.Stage(env.StageReq(3, AgentEnv::MountCap("xfs"))).ok());
  EXPECT_EQ(env.helper_.CountCalls("Format"), 0);
  ASSERT_TRUE(env.Publish(env.PublishReq(3, AgentEnv::MountCap("xfs"), 0, /*ro=*/true)).ok());
  EXPECT_TRUE(env.helper_.Mounts()[env.TargetPath(3)].read_only);
  EXPECT_TRUE(env.helper_.PublishRequests().back().read_only());
}

TEST(Lifecycle, ReaderOnlyAccessModeStagesReadOnly) {
  AgentEnv env;
  env.AddFs(4, "ext4");
  ASSERT_TRUE(
      env.Stage(env.StageReq(4, AgentEnv::MountCap("ext4", Mode::MULTI_NODE_READER_ONLY))).ok());
  EXPECT_TRUE(env.helper_.MountRequests().back().read_only());
  // Publishing it read-write is refused.
  auto st =
      env.Publish(env.PublishReq(4, AgentEnv::MountCap("ext4", Mode::MULTI_NODE_READER_ONLY)));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::OK);  // reader-only mode forces ro
  EXPECT_TRUE(env.helper_.PublishRequests().back().read_only());
}

TEST(Lifecycle, ReadonlyPublishContextStagesReadOnly) {
  AgentEnv env;
  env.AddFs(5, "ext4");
  auto req = env.StageReq(5, AgentEnv::MountCap("ext4"));
  (*req.mutable_publish_context())["lightbits.com/readonly"] = "true";
  ASSERT_TRUE(env.Stage(req).ok());
  EXPECT_TRUE(env.helper_.MountRequests().back().read_only());
  auto st = env.Publish(env.PublishReq(5, AgentEnv::MountCap("ext4")));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
}

TEST(Lifecycle, SelinuxContextAndMountOptionsReachTheHelperTyped) {
  AgentEnv env;
  env.AddBlank(6);
  auto cap = AgentEnv::MountCap("ext4");
  cap.mutable_mount()->add_mount_flags("noatime");
  cap.mutable_mount()->add_mount_flags("context=\"system_u:object_r:container_file_t:s0:c1,c2\"");
  ASSERT_TRUE(env.Stage(env.StageReq(6, cap)).ok());
  auto m = env.helper_.MountRequests().back();
  EXPECT_EQ(m.selinux_context(), "system_u:object_r:container_file_t:s0:c1,c2");
  ASSERT_EQ(m.options_size(), 1);
  EXPECT_EQ(m.options(0), hv1::MOUNT_OPTION_NOATIME);
  ASSERT_TRUE(env.Publish(env.PublishReq(6, cap)).ok());
  EXPECT_EQ(env.helper_.PublishRequests().back().selinux_context(),
            "system_u:object_r:container_file_t:s0:c1,c2");
}

TEST(Lifecycle, RestoredVolumeLargerThanItsFilesystemIsGrownAtStage) {
  AgentEnv env;
  env.AddFs(7, "ext4", /*size=*/4ull << 30, /*fs_size=*/1ull << 30);
  ASSERT_TRUE(env.Stage(env.StageReq(7, AgentEnv::MountCap("ext4"), /*never_written=*/false)).ok());
  EXPECT_EQ(env.helper_.CountCalls("ExpandFilesystem"), 1);
  EXPECT_EQ(env.helper_.Disk(Uuid(7)).fs_size, 4ull << 30);
  // Every volume with a content source is checked (the helper's size check
  // makes it a no-op when the filesystem already fills the device) ...
  env.AddFs(8, "ext4");
  ASSERT_TRUE(env.Stage(env.StageReq(8, AgentEnv::MountCap("ext4"), false)).ok());
  EXPECT_EQ(env.helper_.CountCalls("ExpandFilesystem " + Uuid(8)), 1);
  EXPECT_EQ(env.helper_.Disk(Uuid(8)).fs_size, 1ull << 30);
  // ... but not one this driver created empty: it has no source to be smaller than.
  env.AddFs(9, "ext4", /*size=*/4ull << 30, /*fs_size=*/1ull << 30);
  auto req = env.StageReq(9, AgentEnv::MountCap("ext4"), false);
  (*req.mutable_volume_context())["lightbits.com/created-empty"] = "true";
  ASSERT_TRUE(env.Stage(req).ok());
  EXPECT_EQ(env.helper_.CountCalls("ExpandFilesystem " + Uuid(9)), 0);
}

TEST(Lifecycle, GrowAtStageThatTheHelperCannotDoFailsTheStageAndUndoesIt) {
  AgentEnv env;
  env.AddFs(10, "ext4", /*size=*/4ull << 30, /*fs_size=*/1ull << 30);
  env.helper_.FailNext("ExpandFilesystem",
                       grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                    "growing ext4 online needs CAP_SYS_RESOURCE"));
  auto st = env.Stage(env.StageReq(10, AgentEnv::MountCap("ext4"), false));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("CAP_SYS_RESOURCE"), std::string::npos) << st.error_message();
  EXPECT_TRUE(env.helper_.Mounts().empty()) << "a failed stage leaves nothing mounted";
  EXPECT_TRUE(env.helper_.Attached().empty());
}

TEST(Lifecycle, ExpandReturnsTheNewDeviceSize) {
  CSI_CONFORMANCE("NodeExpandVolume.MUST.after_stage");
  CSI_CONFORMANCE("NodeExpandVolume.MUST.idempotent");
  AgentEnv env;
  env.AddBlank(9);
  ASSERT_TRUE(env.Stage(env.StageReq(9, AgentEnv::MountCap("xfs"))).ok());
  ASSERT_TRUE(env.Publish(env.PublishReq(9, AgentEnv::MountCap("xfs"))).ok());
  FakeDisk d = env.helper_.Disk(Uuid(9));
  d.size = 3ull << 30;  // ControllerExpand grew it
  env.helper_.SetDisk(Uuid(9), d);
  csi::v1::NodeExpandVolumeRequest req;
  req.set_volume_id(VolId(9));
  req.set_volume_path(env.TargetPath(9));
  req.set_staging_target_path(env.StagingPath(9));
  req.mutable_capacity_range()->set_required_bytes(3ll << 30);
  for (int i = 0; i < 5; ++i) {
    csi::v1::NodeExpandVolumeResponse resp;
    ASSERT_TRUE(env.Expand(req, &resp).ok());
    EXPECT_EQ(resp.capacity_bytes(), 3ll << 30);
  }
  EXPECT_EQ(env.helper_.Disk(Uuid(9)).fs_size, 3ull << 30);
  // The growth is not visible yet: retryable.
  req.mutable_capacity_range()->set_required_bytes(8ll << 30);
  csi::v1::NodeExpandVolumeResponse resp;
  EXPECT_EQ(env.Expand(req, &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(Lifecycle, StatsReportsBytesInodesAndCondition) {
  CSI_CONFORMANCE("NodeGetVolumeStats.MUST.implemented_with_capability");
  CSI_CONFORMANCE("NodeGetVolumeStats.MUST.volume_condition_present");
  CSI_CONFORMANCE("NodeGetVolumeStats.MUST.total_and_unit");
  CSI_CONFORMANCE("NodeGetVolumeStats.MUST.non_negative");
  AgentEnv env;
  env.AddBlank(10);
  ASSERT_TRUE(env.Stage(env.StageReq(10, AgentEnv::MountCap("ext4"))).ok());
  ASSERT_TRUE(env.Publish(env.PublishReq(10, AgentEnv::MountCap("ext4"))).ok());
  csi::v1::NodeGetVolumeStatsRequest req;
  req.set_volume_id(VolId(10));
  req.set_volume_path(env.TargetPath(10));
  csi::v1::NodeGetVolumeStatsResponse resp;
  ASSERT_TRUE(env.Stats(req, &resp).ok());
  ASSERT_EQ(resp.usage_size(), 2);
  EXPECT_EQ(resp.usage(0).unit(), csi::v1::VolumeUsage::BYTES);
  EXPECT_EQ(resp.usage(0).total(), 1ll << 30);
  EXPECT_GE(resp.usage(0).available(), 0);
  EXPECT_GE(resp.usage(0).used(), 0);
  EXPECT_EQ(resp.usage(1).unit(), csi::v1::VolumeUsage::INODES);
  EXPECT_EQ(resp.usage(1).total(), 1000);
  ASSERT_TRUE(resp.has_volume_condition());
  EXPECT_FALSE(resp.volume_condition().abnormal());
  EXPECT_FALSE(resp.volume_condition().message().empty());
  // The device goes away: abnormal, with the helper's reason.
  FakeDisk d = env.helper_.Disk(Uuid(10));
  d.gone = true;
  env.helper_.SetDisk(Uuid(10), d);
  ASSERT_TRUE(env.Stats(req, &resp).ok());
  EXPECT_TRUE(resp.volume_condition().abnormal());
  EXPECT_EQ(resp.volume_condition().message(), "device gone");
  // ... and unpublish/unstage still succeed.
  EXPECT_TRUE(env.Unpublish(env.UnpublishReq(10)).ok());
  EXPECT_TRUE(env.Unstage(env.UnstageReq(10)).ok());
  EXPECT_TRUE(env.helper_.Mounts().empty());
}

TEST(Lifecycle, ShippedPluginVolumeFallsBackToClusterInfoWithNodeStageSecrets) {
  AgentEnv env;
  env.AddBlank(11);
  // LightOS says it was never written.
  lightos::Volume v;
  v.uuid = Uuid(11);
  v.written_bytes = 0;
  env.lightos_.volumes[v.uuid] = v;
  auto req = env.StageReq(11, AgentEnv::MountCap("ext4"));
  req.clear_publish_context();
  (*req.mutable_secrets())["jwt"] = "eyJhbGciOi.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl";
  ASSERT_TRUE(env.Stage(req).ok());
  ASSERT_FALSE(env.lightos_.tokens_seen.empty());
  EXPECT_EQ(env.lightos_.tokens_seen.back().inline_token, req.secrets().at("jwt"));
  EXPECT_EQ(env.lightos_.targets_seen.back().project, "default");
  EXPECT_EQ(env.helper_.Formats().back().proof(), hv1::NEVER_WRITTEN_PROOF_WRITTEN_BYTES_ZERO);
  // Without a jwt there is no way to learn the data path.
  env.AddBlank(12);
  auto req2 = env.StageReq(12, AgentEnv::MountCap("ext4"));
  req2.clear_publish_context();
  EXPECT_EQ(env.Stage(req2).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST(Lifecycle, LightosAuthErrorsPassThroughOnFallback) {
  CSI_CONFORMANCE("General.E.UNAUTHENTICATED.bad_secrets");
  CSI_CONFORMANCE("General.E.PERMISSION_DENIED.identity_denied");
  AgentEnv env;
  env.AddBlank(13);
  auto req = env.StageReq(13, AgentEnv::MountCap("ext4"));
  req.clear_publish_context();
  (*req.mutable_secrets())["jwt"] = "not-a-valid-token";
  env.lightos_.fail_all = absl::UnauthenticatedError("token rejected");
  EXPECT_EQ(env.Stage(req).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  env.lightos_.fail_all = absl::PermissionDeniedError("project not allowed");
  EXPECT_EQ(env.Stage(req).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(env.helper_.Attached().empty());
}

}  // namespace
}  // namespace lbcsi::agent::testing
