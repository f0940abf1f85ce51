// Request validation and error codes, one rule per test, through the CSI socket.
#include <gtest/gtest.h>

#include "tests/agent/agent_env.h"

namespace lbcsi::agent::testing {
namespace {

using Mode = csi::v1::VolumeCapability::AccessMode;
using grpc::StatusCode;

class ValidationTest : public ::testing::Test {
 protected:
  AgentEnv env;
};

TEST_F(ValidationTest, StageMissingFieldsAreInvalidArgument) {
  CSI_CONFORMANCE("General.E.INVALID_ARGUMENT.missing_field");
  CSI_CONFORMANCE("General.MUST.status_message_nonempty");
  CSI_CONFORMANCE("General.MUST.details_empty");
  auto base = env.StageReq(1, AgentEnv::MountCap());
  auto r = base;
  r.clear_volume_id();
  grpc::Status st = env.Stage(r);
  EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("volume_id"), std::string::npos) << st.error_message();
  EXPECT_TRUE(st.error_details().empty());
  r = base;
  r.clear_staging_target_path();
  EXPECT_EQ(env.Stage(r).error_code(), StatusCode::INVALID_ARGUMENT);
  r = base;
  r.clear_volume_capability();
  EXPECT_EQ(env.Stage(r).error_code(), StatusCode::INVALID_ARGUMENT);
  r = base;
  r.mutable_volume_capability()->clear_access_mode();
  EXPECT_EQ(env.Stage(r).error_code(), StatusCode::INVALID_ARGUMENT);
  r = base;
  r.mutable_volume_capability()->clear_mount();
  EXPECT_EQ(env.Stage(r).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(env.helper_.CountCalls("Attach"), 0);
}

TEST_F(ValidationTest, StageInvalidFieldsAreInvalidArgument) {
  CSI_CONFORMANCE("General.E.INVALID_ARGUMENT.invalid_field");
  auto base = env.StageReq(1, AgentEnv::MountCap());
  auto r = base;
  r.set_staging_target_path("relative/path");
  EXPECT_EQ(env.Stage(r).error_code(), StatusCode::INVALID_ARGUMENT);
  r.set_staging_target_path(env.kubelet_ + "/../etc");
  EXPECT_EQ(env.Stage(r).error_code(), StatusCode::INVALID_ARGUMENT);
  r = base;
  r.mutable_volume_capability()->mutable_mount()->set_fs_type("btrfs");
  grpc::Status st = env.Stage(r);
  EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("btrfs"), std::string::npos);
  r = base;
  r.mutable_volume_capability()->mutable_mount()->add_mount_flags("uid=1000");
  st = env.Stage(r);
  EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("uid"), std::string::npos);
  EXPECT_EQ(st.error_message().find("1000"), std::string::npos) << "flag values are not echoed";
  r = base;
  r.mutable_volume_capability()->mutable_access_mode()->set_mode(static_cast<Mode::Mode>(42));
  EXPECT_EQ(env.Stage(r).error_code(), StatusCode::INVALID_ARGUMENT);
  r = base;
  (*r.mutable_publish_context())["lightbits.com/nvme-endpoints"] = "storage.example.com:4420";
  EXPECT_EQ(env.Stage(r).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(env.helper_.CountCalls("Attach"), 0);
}

TEST_F(ValidationTest, MkfsOptionsFromTheVolumeContextReachTheFormat) {
  env.AddBlank(1);
  auto r = env.StageReq(1, AgentEnv::MountCap("ext4"));
  (*r.mutable_volume_context())["mkfs-block-size"] = "1024";
  (*r.mutable_volume_context())["mkfs-ext4-cluster-size"] = "65536";
  ASSERT_TRUE(env.Stage(r).ok());
  ASSERT_EQ(env.helper_.Formats().size(), 1u);
  EXPECT_EQ(env.helper_.Formats()[0].mkfs().block_size(), 1024u);
  EXPECT_EQ(env.helper_.Formats()[0].mkfs().cluster_size(), 65536u);
  EXPECT_EQ(env.helper_.Formats()[0].mkfs().inode_size(), 0u);
}

TEST_F(ValidationTest, MkfsOptionsThatDoNotFitAreRefusedBeforeAnyAttach) {
  // A hand-written PV (static provisioning) reaches the node without the controller's check.
  const std::pair<const char*, const char*> bad[] = {
      {"mkfs-xfs-reflink", "enabled"},         // xfs only, the capability says ext4
      {"mkfs-block-size", "65536"},            // above the page size
      {"mkfs-block-size", "1k"},               // no units
      {"mkfs-extra-args", "-O ^has_journal"},  // no such option
  };
  for (const auto& [key, value] : bad) {
    auto r = env.StageReq(1, AgentEnv::MountCap("ext4"));
    (*r.mutable_volume_context())[key] = value;
    grpc::Status st = env.Stage(r);
    EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT) << key;
    EXPECT_NE(st.error_message().find(std::string("volume_context.") + key), std::string::npos)
        << st.error_message();
  }
  EXPECT_EQ(env.helper_.CountCalls("Attach"), 0);
  // A block volume is never formatted: its mkfs options are not looked at.
  env.AddBlank(2);
  auto block = env.StageReq(2, AgentEnv::BlockCap());
  (*block.mutable_volume_context())["mkfs-xfs-reflink"] = "enabled";
  EXPECT_TRUE(env.Stage(block).ok());
  EXPECT_TRUE(env.helper_.Formats().empty());
}

TEST_F(ValidationTest, MalformedOrMissingVolumeIsNotFound) {
  CSI_CONFORMANCE("NodeStageVolume.E.NOT_FOUND.volume_missing");
  auto r = env.StageReq(1, AgentEnv::MountCap());
  r.set_volume_id("some-unknown-volume");
  EXPECT_EQ(env.Stage(r).error_code(), StatusCode::NOT_FOUND);
  // Well-formed id, but the namespace never shows up (deleted, or ACL without us).
  EXPECT_EQ(env.Stage(env.StageReq(99, AgentEnv::MountCap())).error_code(), StatusCode::NOT_FOUND);
  EXPECT_TRUE(env.Records().empty()) << "a definite failure leaves no record";
}

TEST_F(ValidationTest, HostEncryptionNeedsThePassphraseSecret) {
  auto r = env.StageReq(1, AgentEnv::MountCap());
  r.set_volume_id(VolId(1) + "|hostcrypto:luks2");
  grpc::Status st = env.Stage(r);
  EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("host-encryption-passphrase"), std::string::npos);
}

TEST_F(ValidationTest, MultiNodeWriterFilesystemExceedsCapabilities) {
  CSI_CONFORMANCE("NodeStageVolume.E.FAILED_PRECONDITION.exceeds_capabilities");
  env.AddFs(1, "ext4");
  auto st = env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4", Mode::MULTI_NODE_MULTI_WRITER)));
  EXPECT_EQ(st.error_code(), StatusCode::FAILED_PRECONDITION);
  // As a block volume it is fine.
  EXPECT_TRUE(env.Stage(env.StageReq(1, AgentEnv::BlockCap(Mode::MULTI_NODE_MULTI_WRITER))).ok());
}

TEST_F(ValidationTest, StageIncompatibleRepeatIsAlreadyExists) {
  CSI_CONFORMANCE("NodeStageVolume.E.ALREADY_EXISTS.incompatible");
  env.AddFs(1, "ext4");
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).ok());
  auto r = env.StageReq(1, AgentEnv::MountCap("ext4"));
  r.mutable_volume_capability()->mutable_mount()->add_mount_flags("noexec");
  EXPECT_EQ(env.Stage(r).error_code(), StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(env.Stage(env.StageReq(1, AgentEnv::BlockCap())).error_code(),
            StatusCode::ALREADY_EXISTS);
  // Another staging path for the same volume.
  auto other = env.StageReq(1, AgentEnv::MountCap("ext4"));
  other.set_staging_target_path(env.StagingPath(50));
  EXPECT_EQ(env.Stage(other).error_code(), StatusCode::FAILED_PRECONDITION);
}

TEST_F(ValidationTest, LongPathsAreAccepted) {
  CSI_CONFORMANCE("NodeStageVolume.MUST.staging_path_min_128");
  CSI_CONFORMANCE("NodePublishVolume.MUST.path_min_128");
  CSI_CONFORMANCE("NodeUnstageVolume.MUST.path_min_128");
  env.AddBlank(1);
  // Long names inside kubelet's layouts (kubeletpaths/kubelet_paths.h).
  const std::string name(200, 'a');
  auto s = env.StageReq(1, AgentEnv::MountCap());
  s.set_staging_target_path(env.kubelet_ + "/plugins/kubernetes.io/csi/pv/" + name +
                            "/globalmount");
  ASSERT_TRUE(env.Stage(s).ok());
  auto p = env.PublishReq(1, AgentEnv::MountCap());
  p.set_staging_target_path(s.staging_target_path());
  p.set_target_path(env.kubelet_ + "/pods/pod0/volumes/kubernetes.io~csi/" + name + "/mount");
  ASSERT_TRUE(env.Publish(p).ok());
  csi::v1::NodeUnpublishVolumeRequest up;
  up.set_volume_id(VolId(1));
  up.set_target_path(p.target_path());
  ASSERT_TRUE(env.Unpublish(up).ok());
  csi::v1::NodeUnstageVolumeRequest us;
  us.set_volume_id(VolId(1));
  us.set_staging_target_path(s.staging_target_path());
  ASSERT_TRUE(env.Unstage(us).ok());
  EXPECT_TRUE(env.helper_.Attached().empty());
}

TEST_F(ValidationTest, PublishWithoutStagingPathIsFailedPrecondition) {
  CSI_CONFORMANCE("NodePublishVolume.E.FAILED_PRECONDITION.staging_path_missing");
  auto r = env.PublishReq(1, AgentEnv::MountCap());
  r.clear_staging_target_path();
  EXPECT_EQ(env.Publish(r).error_code(), StatusCode::FAILED_PRECONDITION);
  r = env.PublishReq(1, AgentEnv::MountCap());
  r.clear_target_path();
  EXPECT_EQ(env.Publish(r).error_code(), StatusCode::INVALID_ARGUMENT);
  r = env.PublishReq(1, AgentEnv::MountCap());
  r.clear_volume_capability();
  EXPECT_EQ(env.Publish(r).error_code(), StatusCode::INVALID_ARGUMENT);
}

TEST_F(ValidationTest, PublishOfAnUnknownVolumeIsNotFoundOrNotStaged) {
  CSI_CONFORMANCE("NodePublishVolume.E.NOT_FOUND.volume_missing");
  auto r = env.PublishReq(1, AgentEnv::MountCap());
  r.set_volume_id("garbage");
  EXPECT_EQ(env.Publish(r).error_code(), StatusCode::NOT_FOUND);
  // Well-formed but never staged here.
  EXPECT_EQ(env.Publish(env.PublishReq(1, AgentEnv::MountCap())).error_code(),
            StatusCode::FAILED_PRECONDITION);
}

TEST_F(ValidationTest, PublishCapabilityBeyondTheStagedOneIsFailedPrecondition) {
  CSI_CONFORMANCE("NodePublishVolume.E.FAILED_PRECONDITION.exceeds_capabilities");
  env.AddFs(1, "ext4");
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).ok());
  EXPECT_EQ(env.Publish(env.PublishReq(1, AgentEnv::BlockCap())).error_code(),
            StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(env.Publish(env.PublishReq(1, AgentEnv::MountCap("xfs"))).error_code(),
            StatusCode::FAILED_PRECONDITION);
}

TEST_F(ValidationTest, SecondPublishFollowsTheSpecTable) {
  CSI_CONFORMANCE("NodePublishVolume.E.ALREADY_EXISTS.incompatible");
  CSI_CONFORMANCE("NodePublishVolume.Table.same_target_diff_args_already_exists");
  CSI_CONFORMANCE("NodePublishVolume.Table.second_target_single_writer_failed_precondition");
  CSI_CONFORMANCE("NodePublishVolume.Table.second_target_multi_writer_ok");
  CSI_CONFORMANCE("NodePublishVolume.MUST.single_node_writer_accepted");
  // SINGLE_NODE_SINGLE_WRITER: one target only.
  env.AddFs(1, "ext4");
  auto one = AgentEnv::MountCap("ext4", Mode::SINGLE_NODE_SINGLE_WRITER);
  ASSERT_TRUE(env.Stage(env.StageReq(1, one)).ok());
  ASSERT_TRUE(env.Publish(env.PublishReq(1, one, 0)).ok());
  EXPECT_EQ(env.Publish(env.PublishReq(1, one, 0, /*ro=*/true)).error_code(),
            StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(env.Publish(env.PublishReq(1, one, 1)).error_code(), StatusCode::FAILED_PRECONDITION);
  // SINGLE_NODE_WRITER (older COs): accepted, one target.
  env.AddFs(2, "ext4");
  auto legacy = AgentEnv::MountCap("ext4", Mode::SINGLE_NODE_WRITER);
  ASSERT_TRUE(env.Stage(env.StageReq(2, legacy)).ok());
  ASSERT_TRUE(env.Publish(env.PublishReq(2, legacy, 0)).ok());
  EXPECT_EQ(env.Publish(env.PublishReq(2, legacy, 1)).error_code(),
            StatusCode::FAILED_PRECONDITION);
  // SINGLE_NODE_MULTI_WRITER and MULTI_NODE_*: several targets are fine.
  env.AddFs(3, "ext4");
  auto multi = AgentEnv::MountCap("ext4", Mode::SINGLE_NODE_MULTI_WRITER);
  ASSERT_TRUE(env.Stage(env.StageReq(3, multi)).ok());
  ASSERT_TRUE(env.Publish(env.PublishReq(3, multi, 0)).ok());
  ASSERT_TRUE(env.Publish(env.PublishReq(3, multi, 1)).ok());
  ASSERT_TRUE(env.Publish(env.PublishReq(3, multi, 2, true)).ok());
  env.AddFs(4, "ext4");
  auto rox = AgentEnv::MountCap("ext4", Mode::MULTI_NODE_READER_ONLY);
  ASSERT_TRUE(env.Stage(env.StageReq(4, rox)).ok());
  ASSERT_TRUE(env.Publish(env.PublishReq(4, rox, 0, true)).ok());
  ASSERT_TRUE(env.Publish(env.PublishReq(4, rox, 1, true)).ok());
}

TEST_F(ValidationTest, UnstageAndUnpublishValidation) {
  CSI_CONFORMANCE("NodeUnstageVolume.E.NOT_FOUND.volume_missing");
  auto us = env.UnstageReq(1);
  us.clear_volume_id();
  EXPECT_EQ(env.Unstage(us).error_code(), StatusCode::INVALID_ARGUMENT);
  us = env.UnstageReq(1);
  us.clear_staging_target_path();
  EXPECT_EQ(env.Unstage(us).error_code(), StatusCode::INVALID_ARGUMENT);
  us = env.UnstageReq(1);
  us.set_volume_id("not-a-lightos-id");
  EXPECT_EQ(env.Unstage(us).error_code(), StatusCode::NOT_FOUND);
  auto up = env.UnpublishReq(1);
  up.clear_target_path();
  EXPECT_EQ(env.Unpublish(up).error_code(), StatusCode::INVALID_ARGUMENT);
  up = env.UnpublishReq(1);
  up.clear_volume_id();
  EXPECT_EQ(env.Unpublish(up).error_code(), StatusCode::INVALID_ARGUMENT);
}

TEST_F(ValidationTest, UnpublishOfAnUnknownVolumeSucceeds) {
  // Deliberate: NOT_FOUND on an already-unpublished target makes kubelet retry
  // forever (kubernetes#90752), so "nothing there" is success.
  CSI_CONFORMANCE("NodeUnpublishVolume.E.NOT_FOUND.volume_missing");
  CSI_CONFORMANCE("NodeUnstageVolume.MUST.not_staged_ok");
  auto up = env.UnpublishReq(7);
  up.set_volume_id("whatever-kubelet-remembers");
  EXPECT_TRUE(env.Unpublish(up).ok());
  EXPECT_TRUE(env.Unpublish(env.UnpublishReq(7)).ok());
  EXPECT_EQ(env.helper_.CountCalls("Unpublish"), 2) << "a leftover target is still removed";
  EXPECT_TRUE(env.Unstage(env.UnstageReq(7)).ok());
}

TEST_F(ValidationTest, StatsErrors) {
  CSI_CONFORMANCE("NodeGetVolumeStats.E.NOT_FOUND.volume_missing");
  csi::v1::NodeGetVolumeStatsRequest req;
  csi::v1::NodeGetVolumeStatsResponse resp;
  req.set_volume_path(env.TargetPath(1));
  EXPECT_EQ(env.Stats(req, &resp).error_code(), StatusCode::INVALID_ARGUMENT);
  req.set_volume_id(VolId(1));
  req.clear_volume_path();
  EXPECT_EQ(env.Stats(req, &resp).error_code(), StatusCode::INVALID_ARGUMENT);
  req.set_volume_path(env.TargetPath(1));
  EXPECT_EQ(env.Stats(req, &resp).error_code(), StatusCode::NOT_FOUND);
  env.AddFs(1, "ext4");
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).ok());
  req.set_volume_path(env.TargetPath(7));  // a kubelet path this volume is not at
  EXPECT_EQ(env.Stats(req, &resp).error_code(), StatusCode::NOT_FOUND);
  // csi-sanity's rows: a path that cannot be a volume path (relative, outside kubelet's root)
  // is "not found" for an unknown and for a known volume alike, never INVALID_ARGUMENT.
  for (const char* bad : {"some/path", "/etc", "../x"}) {
    req.set_volume_path(bad);
    EXPECT_EQ(env.Stats(req, &resp).error_code(), StatusCode::NOT_FOUND) << bad;
    req.set_volume_id("no-such-volume");
    EXPECT_EQ(env.Stats(req, &resp).error_code(), StatusCode::NOT_FOUND) << bad;
    req.set_volume_id(VolId(1));
  }
  req.set_volume_path(env.StagingPath(1));
  EXPECT_TRUE(env.Stats(req, &resp).ok());
}

TEST_F(ValidationTest, ExpandErrors) {
  CSI_CONFORMANCE("NodeExpandVolume.E.NOT_FOUND.volume_missing");
  CSI_CONFORMANCE("NodeExpandVolume.E.OUT_OF_RANGE.capacity_range");
  CSI_CONFORMANCE("NodeExpandVolume.E.INVALID_ARGUMENT.exceeds_capabilities");
  CSI_CONFORMANCE("NodeExpandVolume.E.FAILED_PRECONDITION.volume_in_use");
  csi::v1::NodeExpandVolumeRequest req;
  csi::v1::NodeExpandVolumeResponse resp;
  req.set_volume_id(VolId(1));
  req.set_volume_path(env.StagingPath(1));
  EXPECT_EQ(env.Expand(req, &resp).error_code(), StatusCode::NOT_FOUND);
  req.set_volume_path("some/path");
  EXPECT_EQ(env.Expand(req, &resp).error_code(), StatusCode::NOT_FOUND);
  req.set_volume_id("no-such-volume");
  EXPECT_EQ(env.Expand(req, &resp).error_code(), StatusCode::NOT_FOUND);
  req.set_volume_id(VolId(1));
  req.set_volume_path(env.StagingPath(1));
  req.mutable_capacity_range()->set_required_bytes(10);
  req.mutable_capacity_range()->set_limit_bytes(5);
  EXPECT_EQ(env.Expand(req, &resp).error_code(), StatusCode::OUT_OF_RANGE);
  req.clear_capacity_range();
  env.AddFs(1, "ext4");
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).ok());
  *req.mutable_volume_capability() = AgentEnv::BlockCap();
  EXPECT_EQ(env.Expand(req, &resp).error_code(), StatusCode::INVALID_ARGUMENT);
  req.clear_volume_capability();
  EXPECT_TRUE(env.Expand(req, &resp).ok());
  // A read-only staged filesystem cannot grow in place.
  env.AddFs(2, "ext4");
  ASSERT_TRUE(
      env.Stage(env.StageReq(2, AgentEnv::MountCap("ext4", Mode::SINGLE_NODE_READER_ONLY))).ok());
  req.set_volume_id(VolId(2));
  req.set_volume_path(env.StagingPath(2));
  EXPECT_EQ(env.Expand(req, &resp).error_code(), StatusCode::FAILED_PRECONDITION);
}

TEST_F(ValidationTest, ControllerServiceIsNotImplementedHere) {
  CSI_CONFORMANCE("General.E.UNIMPLEMENTED.not_implemented");
  grpc::ClientContext ctx;
  csi::v1::ControllerGetCapabilitiesResponse resp;
  EXPECT_EQ(env.controller_stub_->ControllerGetCapabilities(&ctx, {}, &resp).error_code(),
            StatusCode::UNIMPLEMENTED);
}

}  // namespace
}  // namespace lbcsi::agent::testing
