// Host-encrypted volumes (`|hostcrypto:luks2` ids) through the CSI socket
// against the fake helper: the order of helper calls, the decrypted device
// everywhere after the open, rule 1 for the LUKS header, passphrase validation,
// and that the passphrase never reaches a log line, an error or the state files.
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include <gtest/gtest.h>

#include "common/logging.h"
#include "tests/agent/agent_env.h"

namespace lbcsi::agent::testing {
namespace {

using Mode = csi::v1::VolumeCapability::AccessMode;
using grpc::StatusCode;

constexpr char kPass[] = "Sup3r-S3cret-LUKS-passphrase-0xC0FFEE";
constexpr char kOtherPass[] = "An0ther-Wr0ng-passphrase-0xBADF00D";

std::string EncId(int n) {
  return VolId(n) + "|hostcrypto:luks2";
}

// Every log line of the process, at the most verbose level.
class LogCapture {
 public:
  LogCapture() {
    log::Options o;
    o.level = log::Level::kTrace;
    o.component = "agent-test";
    log::Init(o);
    log::SetSinkForTesting([this](std::string_view line) {
      std::lock_guard<std::mutex> l(mu_);
      text_ += line;
      text_ += "\n";
      ++lines_;
    });
  }
  ~LogCapture() { log::SetSinkForTesting(nullptr); }
  std::string Text() {
    std::lock_guard<std::mutex> l(mu_);
    return text_;
  }
  int Lines() {
    std::lock_guard<std::mutex> l(mu_);
    return lines_;
  }

 private:
  std::mutex mu_;
  std::string text_;
  int lines_ = 0;
};

class EncryptionTest : public ::testing::Test {
 protected:
  csi::v1::NodeStageVolumeRequest EncStage(int n, const csi::v1::VolumeCapability& cap,
                                           const std::string& pass = kPass,
                                           bool never_written = true) {
    auto r = env.StageReq(n, cap, never_written);
    r.set_volume_id(EncId(n));
    if (!pass.empty()) (*r.mutable_secrets())["host-encryption-passphrase"] = pass;
    (*r.mutable_secrets())["jwt"] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    return r;
  }
  template <typename R>
  R Enc(R r, int n) {
    r.set_volume_id(EncId(n));
    return r;
  }
  // Index of the first call named `method` (with any argument), or -1.
  int IndexOf(const std::string& method) {
    auto calls = env.helper_.Calls();
    for (size_t i = 0; i < calls.size(); ++i) {
      if (calls[i] == method || calls[i].rfind(method + " ", 0) == 0) return static_cast<int>(i);
    }
    return -1;
  }
  std::string AllStateText() {
    std::string out;
    for (auto& e : std::filesystem::recursive_directory_iterator(env.config_.state_dir)) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path());
      std::stringstream ss;
      ss << in.rdbuf();
      out += ss.str();
    }
    return out;
  }

  LogCapture logs;
  AgentEnv env;
};

TEST_F(EncryptionTest, FilesystemVolumeIsEncryptedOpenedFormattedAndMountedDecrypted) {
  env.AddBlank(1);
  ASSERT_TRUE(env.Stage(EncStage(1, AgentEnv::MountCap("ext4"))).ok());
  // attach -> probe (raw) -> LUKS format (rule 1) -> open -> probe/format/mount decrypted
  EXPECT_LT(IndexOf("Attach"), IndexOf("FormatEncrypted"));
  EXPECT_LT(IndexOf("FormatEncrypted"), IndexOf("OpenEncrypted"));
  EXPECT_LT(IndexOf("OpenEncrypted"), IndexOf("Format"));
  EXPECT_LT(IndexOf("Format"), IndexOf("Mount"));
  EXPECT_EQ(env.helper_.OpenMappings().count(Uuid(1)), 1u);
  FakeDisk d = env.helper_.Disk(Uuid(1));
  EXPECT_EQ(d.kind, hv1::CONTENT_KIND_CRYPTO);
  EXPECT_EQ(d.luks_passphrase, kPass);
  EXPECT_EQ(d.inner_type, "ext4");
  ASSERT_EQ(env.helper_.Formats().size(), 1u);
  EXPECT_TRUE(env.helper_.Formats()[0].encrypted());
  ASSERT_EQ(env.helper_.MountRequests().size(), 1u);
  EXPECT_TRUE(env.helper_.MountRequests()[0].encrypted());
  // Recorded as encrypted; the passphrase is not recorded.
  auto recs = env.Records();
  ASSERT_EQ(recs.size(), 1u);
  ASSERT_TRUE(recs[0].stage);
  EXPECT_TRUE(recs[0].stage->encrypted);
  EXPECT_EQ(AllStateText().find(kPass), std::string::npos);

  ASSERT_TRUE(env.Publish(Enc(env.PublishReq(1, AgentEnv::MountCap("ext4")), 1)).ok());
  ASSERT_EQ(env.helper_.PublishRequests().size(), 1u);
  EXPECT_TRUE(env.helper_.PublishRequests()[0].encrypted());

  csi::v1::NodeGetVolumeStatsRequest sreq;
  sreq.set_volume_id(EncId(1));
  sreq.set_volume_path(env.TargetPath(1));
  csi::v1::NodeGetVolumeStatsResponse sresp;
  ASSERT_TRUE(env.Stats(sreq, &sresp).ok());
  ASSERT_FALSE(env.helper_.StatsRequests().empty());
  EXPECT_TRUE(env.helper_.StatsRequests().back().encrypted());

  csi::v1::NodeExpandVolumeRequest ereq;
  ereq.set_volume_id(EncId(1));
  ereq.set_volume_path(env.TargetPath(1));
  csi::v1::NodeExpandVolumeResponse eresp;
  ASSERT_TRUE(env.Expand(ereq, &eresp).ok());
  ASSERT_FALSE(env.helper_.ExpandRequests().empty());
  EXPECT_TRUE(env.helper_.ExpandRequests().back().encrypted());
  EXPECT_EQ(env.helper_.ExpandRequests().back().mount_path(), env.StagingPath(1));

  ASSERT_TRUE(env.Unpublish(Enc(env.UnpublishReq(1), 1)).ok());
  env.helper_.ClearCalls();
  ASSERT_TRUE(env.Unstage(Enc(env.UnstageReq(1), 1)).ok());
  // unmount -> close -> detach
  EXPECT_LT(IndexOf("Unmount"), IndexOf("CloseEncrypted"));
  EXPECT_LT(IndexOf("CloseEncrypted"), IndexOf("Detach"));
  EXPECT_TRUE(env.helper_.OpenMappings().empty());
  EXPECT_TRUE(env.helper_.Attached().empty());
  EXPECT_EQ(env.StateFiles(), 0u);

  // Stage again: the LUKS header and the filesystem are there; nothing is formatted.
  env.helper_.ClearCalls();
  ASSERT_TRUE(env.Stage(EncStage(1, AgentEnv::MountCap("ext4"))).ok());
  EXPECT_EQ(env.helper_.CountCalls("FormatEncrypted"), 0);
  EXPECT_EQ(env.helper_.CountCalls("Format"), 0);
  EXPECT_EQ(env.helper_.CountCalls("OpenEncrypted"), 1);
  EXPECT_EQ(env.helper_.Mounts().count(env.StagingPath(1)), 1u);
  // A repeated stage converges (the helper reports the mapping already open).
  ASSERT_TRUE(env.Stage(EncStage(1, AgentEnv::MountCap("ext4"))).ok());
  EXPECT_EQ(logs.Text().find(kPass), std::string::npos);
}

TEST_F(EncryptionTest, BlockVolumePublishesTheDecryptedDevice) {
  env.AddBlank(2);
  ASSERT_TRUE(env.Stage(EncStage(2, AgentEnv::BlockCap())).ok());
  EXPECT_EQ(env.helper_.CountCalls("FormatEncrypted"), 1);
  EXPECT_EQ(env.helper_.CountCalls("OpenEncrypted"), 1);
  EXPECT_EQ(env.helper_.CountCalls("Format"), 0);
  EXPECT_EQ(env.helper_.CountCalls("Mount"), 0);
  ASSERT_TRUE(env.Publish(Enc(env.PublishReq(2, AgentEnv::BlockCap()), 2)).ok());
  ASSERT_EQ(env.helper_.PublishRequests().size(), 1u);
  EXPECT_TRUE(env.helper_.PublishRequests()[0].block_device());
  EXPECT_TRUE(env.helper_.PublishRequests()[0].encrypted()) << "never the raw device";

  csi::v1::NodeGetVolumeStatsRequest sreq;
  sreq.set_volume_id(EncId(2));
  sreq.set_volume_path(env.TargetPath(2));
  csi::v1::NodeGetVolumeStatsResponse sresp;
  ASSERT_TRUE(env.Stats(sreq, &sresp).ok());
  EXPECT_TRUE(env.helper_.StatsRequests().back().encrypted());

  ASSERT_TRUE(env.Unpublish(Enc(env.UnpublishReq(2), 2)).ok());
  ASSERT_TRUE(env.Unstage(Enc(env.UnstageReq(2), 2)).ok());
  EXPECT_TRUE(env.helper_.OpenMappings().empty());
  EXPECT_TRUE(env.helper_.Attached().empty());
}

TEST_F(EncryptionTest, MissingOrOverlongPassphraseIsInvalidArgument) {
  env.AddBlank(3);
  grpc::Status st = env.Stage(EncStage(3, AgentEnv::MountCap(), ""));
  EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("host-encryption-passphrase"), std::string::npos);
  std::string longpass(513, 'x');
  st = env.Stage(EncStage(3, AgentEnv::MountCap(), longpass));
  EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message().find(longpass), std::string::npos);
  EXPECT_EQ(env.helper_.CountCalls("Attach"), 0) << "validated before any helper call";
  // 512 bytes is accepted.
  EXPECT_TRUE(env.Stage(EncStage(3, AgentEnv::MountCap(), std::string(512, 'y'))).ok());
}

TEST_F(EncryptionTest, WrongPassphraseFailsCleanlyAndLeavesNothingBehind) {
  env.AddBlank(4);
  ASSERT_TRUE(env.Stage(EncStage(4, AgentEnv::MountCap())).ok());
  ASSERT_TRUE(env.Unstage(Enc(env.UnstageReq(4), 4)).ok());
  grpc::Status st = env.Stage(EncStage(4, AgentEnv::MountCap(), kOtherPass));
  EXPECT_EQ(st.error_code(), StatusCode::PERMISSION_DENIED) << st.error_message();
  EXPECT_NE(st.error_message().find("passphrase"), std::string::npos);
  EXPECT_EQ(st.error_message().find(kOtherPass), std::string::npos);
  EXPECT_EQ(st.error_message().find(kPass), std::string::npos);
  EXPECT_TRUE(env.helper_.OpenMappings().empty());
  EXPECT_TRUE(env.helper_.Attached().empty()) << "a definite failure undoes the attach";
  EXPECT_EQ(env.helper_.Disk(Uuid(4)).inner_type, "ext4") << "nothing re-formatted";
  EXPECT_EQ(env.helper_.CountCalls("FormatEncrypted"), 1);
  EXPECT_EQ(logs.Text().find(kOtherPass), std::string::npos);
}

TEST_F(EncryptionTest, RuleOneHoldsForTheLuksHeader) {
  // An unencrypted filesystem under an encrypted id is never encrypted over.
  env.AddFs(5, "ext4");
  grpc::Status st = env.Stage(EncStage(5, AgentEnv::MountCap()));
  EXPECT_EQ(st.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("not a LUKS header"), std::string::npos) << st.error_message();
  // Blank, but no proof it was never written.
  env.AddBlank(6);
  st = env.Stage(EncStage(6, AgentEnv::MountCap(), kPass, /*never_written=*/false));
  EXPECT_EQ(st.error_code(), StatusCode::FAILED_PRECONDITION);
  // Blank and read-only.
  env.AddBlank(7);
  st = env.Stage(EncStage(7, AgentEnv::MountCap("ext4", Mode::SINGLE_NODE_READER_ONLY)));
  EXPECT_EQ(st.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(env.helper_.CountCalls("FormatEncrypted"), 0);
  EXPECT_EQ(env.helper_.Disk(Uuid(5)).type, "ext4");
}

TEST_F(EncryptionTest, UnstageWithoutStateClosesTheMapping) {
  env.AddBlank(8);
  ASSERT_TRUE(env.Stage(EncStage(8, AgentEnv::MountCap())).ok());
  std::filesystem::remove_all(env.config_.state_dir + "/volumes");
  std::filesystem::create_directories(env.config_.state_dir + "/volumes");
  ASSERT_TRUE(env.Unstage(Enc(env.UnstageReq(8), 8)).ok());
  EXPECT_TRUE(env.helper_.OpenMappings().empty());
  EXPECT_TRUE(env.helper_.Attached().empty());
}

TEST_F(EncryptionTest, PassphraseNeverInAnyLogLineErrorOrState) {
  env.AddBlank(9);
  env.AddBlank(10);
  std::vector<grpc::Status> results;
  results.push_back(env.Stage(EncStage(9, AgentEnv::MountCap("xfs"))));
  results.push_back(env.Publish(Enc(env.PublishReq(9, AgentEnv::MountCap("xfs")), 9)));
  csi::v1::NodeGetVolumeStatsRequest sreq;
  sreq.set_volume_id(EncId(9));
  sreq.set_volume_path(env.StagingPath(9));
  csi::v1::NodeGetVolumeStatsResponse sresp;
  results.push_back(env.Stats(sreq, &sresp));
  csi::v1::NodeExpandVolumeRequest ereq;
  ereq.set_volume_id(EncId(9));
  ereq.set_volume_path(env.TargetPath(9));
  csi::v1::NodeExpandVolumeResponse eresp;
  results.push_back(env.Expand(ereq, &eresp));
  // Failures on the way: helper errors at each encryption step.
  env.helper_.FailNext("FormatEncrypted", grpc::Status(grpc::StatusCode::INTERNAL, "boom"));
  results.push_back(env.Stage(EncStage(10, AgentEnv::BlockCap())));
  env.helper_.FailNext("OpenEncrypted", grpc::Status(grpc::StatusCode::INTERNAL, "boom"));
  results.push_back(env.Stage(EncStage(10, AgentEnv::BlockCap())));
  results.push_back(env.Stage(EncStage(10, AgentEnv::BlockCap())));
  // A repeated stage with another passphrase is checked even though the mapping is open.
  grpc::Status other = env.Stage(EncStage(10, AgentEnv::BlockCap(), kOtherPass));
  EXPECT_EQ(other.error_code(), StatusCode::PERMISSION_DENIED) << other.error_message();
  results.push_back(other);
  results.push_back(env.Unpublish(Enc(env.UnpublishReq(9), 9)));
  env.helper_.FailNext("CloseEncrypted", grpc::Status(grpc::StatusCode::INTERNAL, "boom"));
  results.push_back(env.Unstage(Enc(env.UnstageReq(9), 9)));
  results.push_back(env.Unstage(Enc(env.UnstageReq(9), 9)));
  results.push_back(env.Unstage(Enc(env.UnstageReq(10), 10)));

  int failures = 0;
  for (const grpc::Status& st : results) {
    failures += !st.ok();
    EXPECT_EQ(st.error_message().find(kPass), std::string::npos) << st.error_message();
    EXPECT_EQ(st.error_message().find(kOtherPass), std::string::npos) << st.error_message();
  }
  EXPECT_GE(failures, 4) << "the failure paths ran";
  EXPECT_EQ(env.helper_.CountCalls("FormatEncrypted"), 3);
  const std::string text = logs.Text();
  EXPECT_GT(logs.Lines(), 20) << "logging was captured";
  EXPECT_NE(text.find("OpenEncrypted"), std::string::npos) << "helper calls were logged";
  EXPECT_EQ(text.find(kPass), std::string::npos);
  EXPECT_EQ(text.find(kOtherPass), std::string::npos);
  EXPECT_EQ(AllStateText().find(kPass), std::string::npos);
}

}  // namespace
}  // namespace lbcsi::agent::testing
