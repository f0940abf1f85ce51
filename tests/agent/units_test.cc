// Pure units: mount flags, config and NQN, the state store.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "agent/config.h"
#include "agent/mount_flags.h"
#include "agent/request_checks.h"
#include "agent/state/store.h"

namespace lbcsi::agent {
namespace {

namespace hv1 = ::lbcsi::helper::v1;

TEST(MountFlags, AllowListAndQuotedSelinuxContext) {
  auto f =
      ParseMountFlags({"noatime,nodev", "context=\"system_u:object_r:container_file_t:s0:c1,c2\"",
                       "discard", "noatime"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->selinux_context, "system_u:object_r:container_file_t:s0:c1,c2");
  EXPECT_EQ(f->options,
            (std::vector<hv1::MountOption>{hv1::MOUNT_OPTION_NOATIME, hv1::MOUNT_OPTION_DISCARD,
                                           hv1::MOUNT_OPTION_NODEV}));
  EXPECT_FALSE(f->read_only);
  EXPECT_TRUE(ParseMountFlags({"ro"})->read_only);
}

TEST(MountFlags, RefusesEverythingElse) {
  for (const char* bad : {"uid=0", "remount", "bind", "suid", "dev", "exec", "context=foo",
                          "context=\"a:b:c\"\"", "nosuid,loop", "context=\"x:y:z;rm -rf\""}) {
    EXPECT_FALSE(ParseMountFlags({bad}).ok()) << bad;
  }
  EXPECT_FALSE(ParseMountFlags({"context=\"a:b:c:s0\"", "context=\"a:b:d:s0\""}).ok());
}

TEST(Config, HostNqnFromNodeId) {
  EXPECT_EQ(*HostNqnForNode("worker-1.node"), "nqn.2019-09.com.lightbitslabs:host:worker-1.node");
  EXPECT_EQ(DefaultNodeId("worker-1"), "worker-1.node");
  std::string id(223 - std::string("nqn.2019-09.com.lightbitslabs:host:").size() - 5, 'a');
  EXPECT_TRUE(HostNqnForNode(id + ".node").ok());
  EXPECT_FALSE(HostNqnForNode("a" + id + ".node").ok());  // host NQN of 224 bytes
  EXPECT_FALSE(HostNqnForNode("").ok());
  EXPECT_FALSE(HostNqnForNode(".node").ok());
  EXPECT_FALSE(HostNqnForNode("worker-1").ok());  // not the driver's shape
  EXPECT_FALSE(HostNqnForNode("with space.node").ok());
}

TEST(Config, FinalizeChecksEverything) {
  AgentConfig c;
  EXPECT_FALSE(FinalizeConfig(c).ok()) << "no node id";
  c.node_id = "n1.node";
  EXPECT_TRUE(FinalizeConfig(c).ok());
  EXPECT_EQ(c.host_nqn, "nqn.2019-09.com.lightbitslabs:host:n1.node");
  c.state_dir = "relative";
  EXPECT_FALSE(FinalizeConfig(c).ok());
  c.state_dir = "/var/lib/lbcsi-agent";
  c.max_volumes = -1;
  EXPECT_FALSE(FinalizeConfig(c).ok());
}

TEST(Config, EphemeralConfigParsing) {
  auto c = ParseEphemeralConfig(
      R"({"mgmt_endpoints":"10.0.0.2:443,10.0.0.1:443","scheme":"grpc","project":"p1",)"
      R"("token_file":"/t","max_size":"100Gi","default_size":"2Gi","default_replica_count":2,)"
      R"("default_compression":true,"default_fs_type":"xfs","ca_bundle_file":"/ca.pem"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->mgmt_endpoints.size(), 2u);
  EXPECT_EQ(c->mgmt_endpoints[0].host, "10.0.0.1");
  EXPECT_EQ(c->scheme, MgmtScheme::kGrpc);
  EXPECT_EQ(c->max_size_bytes, 100ull << 30);
  EXPECT_EQ(c->default_size_bytes, 2ull << 30);
  EXPECT_EQ(c->default_replica_count, 2u);
  EXPECT_TRUE(c->default_compression);
  EXPECT_EQ(c->default_fs_type, "xfs");
  EXPECT_FALSE(ParseEphemeralConfig("{").ok());
  EXPECT_FALSE(ParseEphemeralConfig(R"({"mgmt_endpoints":"a:1","token_file":"/t"})").ok())
      << "no cap";
  EXPECT_FALSE(ParseEphemeralConfig(R"({"token_file":"/t","max_size":"1Gi"})").ok());
  EXPECT_FALSE(ParseEphemeralConfig(
                   R"({"mgmt_endpoints":"a:1","token_file":"/t","max_size":"1Gi","jwt":"x"})")
                   .ok())
      << "unknown keys are refused";
  EXPECT_FALSE(
      ParseEphemeralConfig(
          R"({"mgmt_endpoints":"a:1","token_file":"/t","max_size":"1Gi","default_size":"2Gi"})")
          .ok());
}

TEST(Config, ByteSizes) {
  EXPECT_EQ(*ParseByteSize("1073741824"), 1ull << 30);
  EXPECT_EQ(*ParseByteSize("1Gi"), 1ull << 30);
  EXPECT_EQ(*ParseByteSize("512Mi"), 512ull << 20);
  EXPECT_EQ(*ParseByteSize("1G"), 1000000000ull);
  EXPECT_FALSE(ParseByteSize("").ok());
  EXPECT_FALSE(ParseByteSize("-1").ok());
  EXPECT_FALSE(ParseByteSize("1Xi").ok());
  EXPECT_FALSE(ParseByteSize("99999999999999999999").ok());
  EXPECT_FALSE(ParseByteSize("99999999999Ti").ok());
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lbcsi-store-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(StoreTest, RoundTripAndLayout) {
  auto store = state::Store::Open(dir_ + "/state");
  ASSERT_TRUE(store.ok()) << store.status();
  state::VolumeRecord r;
  r.volume_id = "mgmt:a:1|nguid:x";
  r.volume_uuid = "u";
  r.subsystem_nqn = "nqn.x";
  state::StageRecord s;
  s.path = "/k/stage";
  s.fs_type = "xfs";
  s.mount_options = {1, 3};
  s.selinux_context = "a:b:c:s0:c1,c2";
  r.stage = s;
  state::PublishRecord p;
  p.phase = state::PublishPhase::kPublished;
  p.read_only = true;
  r.publishes["/k/t1"] = p;
  state::EphemeralRecord e;
  e.lightos_name = "eph-1";
  e.size_bytes = 5;
  r.ephemeral = e;
  ASSERT_TRUE((*store)->Save(r).ok());
  auto back = (*store)->Load(r.volume_id);
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ(**back, r);
  EXPECT_TRUE(
      std::filesystem::exists(dir_ + "/state/volumes/" + state::Store::FileName(r.volume_id)));
  EXPECT_EQ(state::Store::FileName(r.volume_id).size(), 64u + 5u);
  auto all = (*store)->LoadAll();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
  ASSERT_TRUE((*store)->Put(state::VolumeRecord{.volume_id = r.volume_id}).ok());
  EXPECT_FALSE((*(*store)->Load(r.volume_id)).has_value()) << "an empty record is removed";
  EXPECT_TRUE((*store)->Remove("never-there").ok());
}

TEST_F(StoreTest, TornWritesAndCorruptionAreHandled) {
  auto store = state::Store::Open(dir_);
  ASSERT_TRUE(store.ok());
  state::VolumeRecord r;
  r.volume_id = "v1";
  r.stage = state::StageRecord{};
  ASSERT_TRUE((*store)->Save(r).ok());
  // A crash between write and rename leaves a temp file: ignored and removed at open.
  std::string tmp = dir_ + "/volumes/.tmp-" + state::Store::FileName("v1");
  std::ofstream(tmp) << "{garbage";
  auto reopened = state::Store::Open(dir_);
  ASSERT_TRUE(reopened.ok());
  EXPECT_FALSE(std::filesystem::exists(tmp));
  EXPECT_TRUE((*(*reopened)->Load("v1")).has_value());
  // A corrupt record is reported, never silently dropped.
  std::ofstream(dir_ + "/volumes/" + state::Store::FileName("v1")) << "{\"version\":1";
  EXPECT_EQ((*reopened)->Load("v1").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ((*reopened)->LoadAll().status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(StoreTest, DirectoryIsPrivate) {
  ASSERT_TRUE(state::Store::Open(dir_ + "/s").ok());
  auto perms = std::filesystem::status(dir_ + "/s/volumes").permissions();
  EXPECT_EQ(perms & std::filesystem::perms::all, std::filesystem::perms::owner_all);
}

TEST_F(StoreTest, OversizedRecordsAreRefusedBeforeWritingAndBadOnesQuarantined) {
  auto store = state::Store::Open(dir_);
  ASSERT_TRUE(store.ok());
  state::VolumeRecord r;
  r.volume_id = std::string(state::Store::kMaxRecordBytes, 'v');
  r.stage = state::StageRecord{};
  EXPECT_EQ((*store)->Save(r).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/volumes")) << "nothing written";
  // An unreadable record is moved aside, where nothing reads it again.
  const std::string name = state::Store::FileName("poisoned");
  std::ofstream(dir_ + "/volumes/" + name) << "{garbage";
  auto files = (*store)->RecordFiles();
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ((*store)->LoadFile(name).status().code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE((*store)->Quarantine(name).ok());
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/quarantine/" + name));
  EXPECT_TRUE((*store)->LoadAll().ok());
}

TEST(RequestChecks, PathsHaveOneSpellingAndFollowKubeletsLayouts) {
  const std::string root = "/var/lib/kubelet";
  std::optional<kubeletpaths::KubeletLayouts> layouts =
      *kubeletpaths::KubeletLayouts::Create(root, "csi.lightbitslabs.com");
  const std::string ok = root + "/plugins/kubernetes.io/csi/pv/pv1/globalmount";
  EXPECT_TRUE(CheckKubeletPath("p", ok, layouts, kRequestStagingKinds).ok());
  const std::string target = root + "/pods/pod1/volumes/kubernetes.io~csi/pv1/mount";
  EXPECT_TRUE(CheckKubeletPath("p", target, layouts, kubeletpaths::kPublishKinds).ok());
  EXPECT_FALSE(CheckKubeletPath("p", target, layouts, kRequestStagingKinds).ok()) << "wrong kind";
  for (const std::string& bad :
       {std::string("relative"), std::string("/etc/x"), root, root + "/", root + "x/a",
        root + "//plugins", ok + "/", root + "/./a", root + "/../etc", root + "/a\nb",
        root + std::string("/a\0b", 4), root + "/" + std::string(256, 'c'),
        root + "/" + std::string(5000, 'c'),
        root + "/plugins/csi.lightbitslabs.com/ephemeral/" + std::string(40, 'a')}) {
    EXPECT_EQ(CheckKubeletPath("p", bad, layouts, kRequestStagingKinds).code(),
              absl::StatusCode::kInvalidArgument)
        << bad.substr(0, 80);
  }
  EXPECT_EQ(CheckKubeletPath("p", ok, std::nullopt, kRequestStagingKinds).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(RequestChecks, VolumeKeysAreCanonical) {
  EXPECT_EQ(VolumeKey("mgmt:b:2,a:1|nguid:0e1f2a3b-0000-4000-8000-000000000001|scheme:grpc"),
            VolumeKey("mgmt:a:1,b:2|nguid:0e1f2a3b-0000-4000-8000-000000000001|scheme:grpc"));
  EXPECT_EQ(VolumeKey("csi-inline-0001"), "csi-inline-0001");
  EXPECT_EQ(CheckVolumeIdSize(std::string(kMaxVolumeIdBytes + 1, 'x')).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckVolumeIdSize("").code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lbcsi::agent
