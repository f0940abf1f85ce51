// Rule 1: never format a device that may hold data.
#include <gtest/gtest.h>

#include "tests/agent/agent_env.h"

namespace lbcsi::agent::testing {
namespace {

using Mode = csi::v1::VolumeCapability::AccessMode;
using grpc::StatusCode;

TEST(FormatRule, BlankWithoutProofIsRefused) {
  AgentEnv env;
  env.AddBlank(1);
  grpc::Status st = env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"), /*never_written=*/false));
  EXPECT_EQ(st.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("no proof"), std::string::npos) << st.error_message();
  EXPECT_EQ(env.helper_.CountCalls("Format"), 0);
  EXPECT_TRUE(env.helper_.Attached().empty()) << "a refused stage detaches again";
  EXPECT_TRUE(env.Records().empty());
}

TEST(FormatRule, CreatedEmptyVolumeContextIsAProof) {
  AgentEnv env;
  env.AddBlank(1);
  auto req = env.StageReq(1, AgentEnv::MountCap("xfs"), false);
  (*req.mutable_volume_context())["lightbits.com/created-empty"] = "true";
  ASSERT_TRUE(env.Stage(req).ok());
  ASSERT_EQ(env.helper_.Formats().size(), 1u);
  EXPECT_EQ(env.helper_.Formats()[0].proof(), hv1::NEVER_WRITTEN_PROOF_CREATED_EMPTY);
  EXPECT_EQ(env.helper_.Formats()[0].fs_type(), hv1::FS_TYPE_XFS);
}

TEST(FormatRule, NeverForBlockReadOnlyOrMultiNode) {
  AgentEnv env;
  env.AddBlank(1);
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::BlockCap())).ok());
  env.AddBlank(2);
  EXPECT_EQ(env.Stage(env.StageReq(2, AgentEnv::MountCap("ext4", Mode::SINGLE_NODE_READER_ONLY)))
                .error_code(),
            StatusCode::FAILED_PRECONDITION);
  env.AddBlank(3);
  EXPECT_EQ(env.Stage(env.StageReq(3, AgentEnv::MountCap("ext4", Mode::MULTI_NODE_READER_ONLY)))
                .error_code(),
            StatusCode::FAILED_PRECONDITION);
  env.AddBlank(4);
  auto ro = env.StageReq(4, AgentEnv::MountCap("ext4"));
  (*ro.mutable_publish_context())["lightbits.com/readonly"] = "true";
  EXPECT_EQ(env.Stage(ro).error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(env.helper_.CountCalls("Format"), 0);
}

TEST(FormatRule, FilesystemMismatchIsFailedPrecondition) {
  CSI_CONFORMANCE("NodeStageVolume.E.FAILED_PRECONDITION.fs_mismatch");
  AgentEnv env;
  env.AddFs(1, "xfs");
  grpc::Status st = env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4")));
  EXPECT_EQ(st.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("xfs"), std::string::npos);
  EXPECT_EQ(env.helper_.CountCalls("Format"), 0);
  EXPECT_EQ(env.helper_.CountCalls("Mount"), 0);
}

TEST(FormatRule, UnspecifiedFsTypeUsesWhatIsThereOrExt4) {
  AgentEnv env;
  env.AddFs(1, "xfs");
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap(""))).ok());
  EXPECT_EQ(env.helper_.MountRequests().back().fs_type(), hv1::FS_TYPE_XFS);
  env.AddBlank(2);
  ASSERT_TRUE(env.Stage(env.StageReq(2, AgentEnv::MountCap(""))).ok());
  EXPECT_EQ(env.helper_.Formats().back().fs_type(), hv1::FS_TYPE_EXT4);
  // A repeat with the fs type spelled out matches what was recorded.
  EXPECT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap(""))).ok());
}

TEST(FormatRule, OtherSignaturesAreNeverTouched) {
  AgentEnv env;
  for (auto [n, kind, type] : {std::tuple{1, hv1::CONTENT_KIND_PARTITION_TABLE, "gpt"},
                               std::tuple{2, hv1::CONTENT_KIND_CRYPTO, "crypto_LUKS"},
                               std::tuple{3, hv1::CONTENT_KIND_RAID, "linux_raid_member"},
                               std::tuple{4, hv1::CONTENT_KIND_FILESYSTEM, "btrfs"}}) {
    FakeDisk d;
    d.kind = kind;
    d.type = type;
    env.helper_.AddDisk(Uuid(n), d);
    grpc::Status st = env.Stage(env.StageReq(n, AgentEnv::MountCap("ext4")));
    EXPECT_EQ(st.error_code(), StatusCode::FAILED_PRECONDITION) << type;
  }
  EXPECT_EQ(env.helper_.CountCalls("Format"), 0);
}

TEST(FormatRule, ProbeErrorIsAnErrorNotAFormat) {
  AgentEnv env;
  env.AddBlank(1);
  env.helper_.FailNext("Probe", grpc::Status(grpc::StatusCode::INTERNAL, "blkid: I/O error"));
  grpc::Status st = env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4")));
  EXPECT_EQ(st.error_code(), StatusCode::INTERNAL);
  EXPECT_EQ(env.helper_.CountCalls("Format"), 0);
  // Final for kubelet: the stage is taken back, and kubelet's retry starts over.
  EXPECT_TRUE(env.Records().empty());
  EXPECT_TRUE(env.helper_.Attached().empty());
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).ok());
  EXPECT_EQ(env.helper_.CountCalls("Format"), 1);
}

TEST(FormatRule, UnfinishedFormatIsRedoneOnlyWithProof) {
  AgentEnv env;
  FakeDisk d;
  d.kind = hv1::CONTENT_KIND_FILESYSTEM;
  d.type = "ext4";
  d.format_in_progress = true;
  env.helper_.AddDisk(Uuid(1), d);
  EXPECT_EQ(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"), false)).error_code(),
            StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"), true)).ok());
  EXPECT_EQ(env.helper_.Formats().size(), 1u);
}

}  // namespace
}  // namespace lbcsi::agent::testing
