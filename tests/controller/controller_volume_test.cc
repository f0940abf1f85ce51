// CreateVolume, DeleteVolume, publish/unpublish, validate, expand, modify,
// get: against the fake LightOS.
#include <atomic>
#include <condition_variable>
#include <thread>

#include <gmock/gmock.h>

#include "common/logging.h"
#include "common/strings.h"
#include "controller/internal.h"
#include "csicontext/keys.h"
#include "tests/controller/controller_test_util.h"
#include "volumeid/resource_id.h"

namespace lbcsi::testing {
namespace {

using ::testing::HasSubstr;
using Mode = csi::v1::VolumeCapability::AccessMode;
constexpr int64_t kGiB = int64_t{1} << 30;

// covers: CreateVolume.MUST.idempotent, General.MUST.volume_id_format
TEST_F(ControllerTest, CreateIsIdempotentAndIdIsShippedFormat) {
  std::string first;
  for (int i = 0; i < 5; ++i) {
    csi::v1::CreateVolumeResponse resp;
    ASSERT_TRUE(Create(CreateReq("pvc-1", 3 * kGiB), &resp).ok());
    if (i == 0) first = resp.volume().volume_id();
    EXPECT_EQ(resp.volume().volume_id(), first);
    EXPECT_EQ(resp.volume().capacity_bytes(), 3 * kGiB);
  }
  EXPECT_EQ(cluster_->Volumes().size(), 1u);
  EXPECT_EQ(cluster_->Volumes()[0].name, "pvc-1");  // the CSI name, as the shipped plugin does
  EXPECT_EQ(first, "mgmt:10.0.0.1:443,10.0.0.2:443|nguid:" + cluster_->Volumes()[0].uuid +
                       "|scheme:grpcs");
  EXPECT_EQ(cluster_->Volumes()[0].acl, std::vector<std::string>{"ALLOW_NONE"});
}

TEST_F(ControllerTest, CreateWithProjectSchemeAndHostEncryptionId) {
  // Plaintext carries the token only to a cluster the operator listed with scheme:grpc.
  MakeService({std::string(kEndpoints) + "|scheme:grpc"});
  auto req = CreateReq("pvc-p");
  (*req.mutable_parameters())["project-name"] = "team-a";
  (*req.mutable_parameters())["mgmt-scheme"] = "grpc";
  (*req.mutable_parameters())["host-encryption"] = "enabled";
  csi::v1::CreateVolumeResponse resp;
  ASSERT_TRUE(Create(req, &resp).ok());
  auto vols = cluster_->Volumes("team-a");
  ASSERT_EQ(vols.size(), 1u);
  EXPECT_EQ(resp.volume().volume_id(), "mgmt:10.0.0.1:443,10.0.0.2:443|nguid:" + vols[0].uuid +
                                           "|proj:team-a|scheme:grpc|hostcrypto:luks2");
}

// The shipped plugin's rule: encrypted data does not compress, so the pair is refused
// before LightOS is asked for anything.
TEST_F(ControllerTest, HostEncryptionWithCompressionIsRefused) {
  auto req = CreateReq("pvc-enc-comp");
  (*req.mutable_parameters())["host-encryption"] = "enabled";
  (*req.mutable_parameters())["compression"] = "enabled";
  csi::v1::CreateVolumeResponse resp;
  grpc::Status st = Create(req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("host-encryption"), std::string::npos) << st.error_message();
  EXPECT_TRUE(cluster_->Volumes().empty());
  // Encryption alone is fine and yields the |hostcrypto:luks2 id.
  (*req.mutable_parameters())["compression"] = "disabled";
  ASSERT_TRUE(Create(req, &resp).ok());
  EXPECT_TRUE(resp.volume().volume_id().ends_with("|hostcrypto:luks2"))
      << resp.volume().volume_id();
}

TEST_F(ControllerTest, NamesInvalidForLightosAreMappedDeterministically) {
  std::string id1 = MustCreate("my volume/ü");
  std::string id2 = MustCreate("my volume/ü");
  EXPECT_EQ(id1, id2);
  ASSERT_EQ(cluster_->Volumes().size(), 1u);
  EXPECT_TRUE(controller::IsValidLightosName(cluster_->Volumes()[0].name))
      << cluster_->Volumes()[0].name;
}

// covers: CreateVolume.MUST.capacity_range_honored, CreateVolume.E.OUT_OF_RANGE
TEST_F(ControllerTest, CapacityRules) {
  csi::v1::CreateVolumeResponse resp;
  ASSERT_TRUE(Create(CreateReq("small", 1), &resp).ok());
  EXPECT_EQ(resp.volume().capacity_bytes(), kGiB);  // 1 GiB minimum
  ASSERT_TRUE(Create(CreateReq("odd", kGiB + 1), &resp).ok());
  EXPECT_EQ(resp.volume().capacity_bytes(), 2 * kGiB);  // whole GiB
  auto none = CreateReq("default");
  ASSERT_TRUE(Create(none, &resp).ok());
  EXPECT_EQ(resp.volume().capacity_bytes(), kGiB);

  auto tight = CreateReq("tight", kGiB + 1);
  tight.mutable_capacity_range()->set_limit_bytes(kGiB + 100);
  grpc::Status s = Create(tight, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(s.error_message(), HasSubstr("capacity_range.limit_bytes"));

  auto neg = CreateReq("neg");
  neg.mutable_capacity_range()->set_required_bytes(-5);
  EXPECT_EQ(Create(neg, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto inverted = CreateReq("inv", 4 * kGiB);
  inverted.mutable_capacity_range()->set_limit_bytes(2 * kGiB);
  EXPECT_EQ(Create(inverted, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// covers: CreateVolume.E.INVALID_ARGUMENT.missing_name, CreateVolume.E.INVALID_ARGUMENT.missing_capabilities, General.MUST.validate_before_lightos, General.MUST.error_message_non_empty
TEST_F(ControllerTest, CreateValidatesBeforeAnyLightosCall) {
  csi::v1::CreateVolumeResponse resp;
  auto no_name = CreateReq("");
  grpc::Status s = Create(no_name, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("name"));

  auto no_caps = CreateReq("x");
  no_caps.clear_volume_capabilities();
  s = Create(no_caps, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("volume_capabilities"));

  auto no_access = CreateReq("x");
  no_access.mutable_volume_capabilities(0)->clear_access_mode();
  EXPECT_EQ(Create(no_access, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  auto bad_param = CreateReq("x");
  (*bad_param.mutable_parameters())["replica-count"] = "9";
  s = Create(bad_param, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("parameters.replica-count"));

  auto ctrl = CreateReq(std::string("a\x01", 2));
  EXPECT_EQ(Create(ctrl, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  EXPECT_EQ(cluster_->Calls("GetVolumeByName") + cluster_->Calls("CreateVolume"), 0);
}

// covers: CreateVolume.MUST.all_capabilities_satisfied
TEST_F(ControllerTest, UnsupportedCapabilitiesAreRefusedNamingTheField) {
  csi::v1::CreateVolumeResponse resp;
  auto rwx_mount = CreateReq("x");
  *rwx_mount.add_volume_capabilities() = MountCap(Mode::MULTI_NODE_MULTI_WRITER);
  grpc::Status s = Create(rwx_mount, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("volume_capabilities[1].access_mode.mode"));

  auto single_writer_multi = CreateReq("x");
  *single_writer_multi.add_volume_capabilities() = MountCap(Mode::MULTI_NODE_SINGLE_WRITER);
  EXPECT_EQ(Create(single_writer_multi, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  auto fs = CreateReq("x");
  fs.mutable_volume_capabilities(0)->mutable_mount()->set_fs_type("btrfs");
  s = Create(fs, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("fs_type"));

  auto flag = CreateReq("x");
  flag.mutable_volume_capabilities(0)->mutable_mount()->add_mount_flags("noatime");
  flag.mutable_volume_capabilities(0)->mutable_mount()->add_mount_flags("exec,suid");
  s = Create(flag, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("mount_flags[1]"));
  EXPECT_THAT(s.error_message(), HasSubstr("exec,suid"));

  // All supported modes, including RWX for block and xfs.
  auto ok = CreateReq("ok");
  *ok.add_volume_capabilities() = BlockCap(Mode::MULTI_NODE_MULTI_WRITER);
  *ok.add_volume_capabilities() = MountCap(Mode::MULTI_NODE_READER_ONLY, "xfs");
  *ok.add_volume_capabilities() = MountCap(Mode::SINGLE_NODE_SINGLE_WRITER, "ext4");
  *ok.add_volume_capabilities() = MountCap(Mode::SINGLE_NODE_MULTI_WRITER);
  *ok.add_volume_capabilities() = MountCap(Mode::SINGLE_NODE_READER_ONLY);
  ok.mutable_volume_capabilities(0)->mutable_mount()->add_mount_flags("discard");
  EXPECT_TRUE(Create(ok, &resp).ok());
}

// covers: CreateVolume.E.ALREADY_EXISTS
TEST_F(ControllerTest, SameNameIncompatiblePropertiesIsAlreadyExists) {
  MustCreate("pvc-a", 2 * kGiB);
  csi::v1::CreateVolumeResponse resp;
  auto bigger = CreateReq("pvc-a", 5 * kGiB);
  EXPECT_EQ(Create(bigger, &resp).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  auto replicas = CreateReq("pvc-a", 2 * kGiB);
  (*replicas.mutable_parameters())["replica-count"] = "3";
  EXPECT_EQ(Create(replicas, &resp).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  auto limit = CreateReq("pvc-a", kGiB);
  limit.mutable_capacity_range()->set_limit_bytes(kGiB);
  EXPECT_EQ(Create(limit, &resp).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  // Smaller than what exists but no limit: compatible.
  EXPECT_TRUE(Create(CreateReq("pvc-a", kGiB), &resp).ok());
}

// covers: CreateVolume.E.RESOURCE_EXHAUSTED.topology
TEST_F(ControllerTest, TopologyIsNotSupported) {
  auto req = CreateReq("topo");
  (*req.mutable_accessibility_requirements()->add_requisite()->mutable_segments())["zone"] = "a";
  csi::v1::CreateVolumeResponse resp;
  grpc::Status s = Create(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("accessibility_requirements"));
}

// covers: CreateVolume.MUST.mutable_parameters_precedence
TEST_F(ControllerTest, MutableParametersTakePrecedence) {
  auto req = CreateReq("qos");
  (*req.mutable_parameters())["qos-policy-name"] = "silver";
  (*req.mutable_mutable_parameters())["qos-policy-name"] = "gold";
  csi::v1::CreateVolumeResponse resp;
  ASSERT_TRUE(Create(req, &resp).ok());
  EXPECT_EQ(cluster_->Volumes()[0].qos_policy_name, "gold");
  auto bad = CreateReq("qos2");
  (*bad.mutable_mutable_parameters())["replica-count"] = "1";
  EXPECT_EQ(Create(bad, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ControllerTest, VolumeContextSaysCreatedEmpty) {
  csi::v1::CreateVolumeResponse resp;
  ASSERT_TRUE(Create(CreateReq("empty"), &resp).ok());
  EXPECT_EQ(resp.volume().volume_context().at(csictx::kCreatedEmpty), "true");
}

TEST_F(ControllerTest, MkfsOptionsAreCheckedPerFsTypeAndCarriedToTheNode) {
  csi::v1::CreateVolumeResponse resp;
  auto req = CreateReq("tuned");
  req.mutable_volume_capabilities(0)->mutable_mount()->set_fs_type("xfs");
  (*req.mutable_parameters())["mkfs-block-size"] = "2048";
  (*req.mutable_parameters())["mkfs-xfs-reflink"] = "disabled";
  ASSERT_TRUE(Create(req, &resp).ok());
  const auto& ctx = resp.volume().volume_context();
  EXPECT_EQ(ctx.at("mkfs-block-size"), "2048");
  EXPECT_EQ(ctx.at("mkfs-xfs-reflink"), "disabled");
  EXPECT_FALSE(ctx.contains("mkfs-inode-size"));

  // An xfs-only option with an ext4 capability, and a value out of range, are refused before
  // anything is created.
  const int creates = cluster_->Calls("CreateVolume");
  auto wrong_fs = req;
  wrong_fs.set_name("wrong-fs");
  wrong_fs.mutable_volume_capabilities(0)->mutable_mount()->set_fs_type("ext4");
  grpc::Status s = Create(wrong_fs, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("parameters.mkfs-xfs-reflink"));
  EXPECT_THAT(s.error_message(), HasSubstr("fs_type ext4"));
  auto odd = CreateReq("odd-block");
  (*odd.mutable_parameters())["mkfs-block-size"] = "4096 -O ^has_journal";
  s = Create(odd, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("parameters.mkfs-block-size"));
  EXPECT_EQ(cluster_->Calls("CreateVolume"), creates);
}

// covers: CreateVolume.MUST.larger_than_source_has_data_and_size, CreateVolume.E.NOT_FOUND.source
TEST_F(ControllerTest, RestoreFromSnapshotLargerThanSource) {
  std::string src = MustCreate("src", 2 * kGiB);
  csi::v1::CreateSnapshotResponse snap;
  ASSERT_TRUE(Snap(src, "snap-1", &snap).ok());

  for (int i = 0; i < 5; ++i) {
    auto req = CreateReq("restored", 4 * kGiB);
    req.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(
        snap.snapshot().snapshot_id());
    csi::v1::CreateVolumeResponse resp;
    grpc::Status s = Create(req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.volume().capacity_bytes(), 4 * kGiB);
    EXPECT_EQ(resp.volume().volume_context().at(csictx::kCreatedEmpty), "false");
    EXPECT_TRUE(resp.volume().content_source().has_snapshot());
  }
  EXPECT_EQ(cluster_->Calls("CreateVolume"), 2);  // the source and the restore, once each
  EXPECT_EQ(cluster_->Calls("ResizeVolume"), 1);

  // Smaller than the source with a limit below it: OUT_OF_RANGE.
  auto small = CreateReq("restored-small", kGiB);
  small.mutable_capacity_range()->set_limit_bytes(kGiB);
  small.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(
      snap.snapshot().snapshot_id());
  csi::v1::CreateVolumeResponse resp;
  EXPECT_EQ(Create(small, &resp).error_code(), grpc::StatusCode::OUT_OF_RANGE);

  // A source that does not exist, or is not an id at all: NOT_FOUND.
  auto missing = CreateReq("restored-missing");
  missing.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(
      "mgmt:10.0.0.1:443,10.0.0.2:443|nguid:11111111-2222-4333-8444-555555555555|scheme:grpcs");
  EXPECT_EQ(Create(missing, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  missing.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id("garbage");
  EXPECT_EQ(Create(missing, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  auto missing_vol = CreateReq("clone-missing");
  missing_vol.mutable_volume_content_source()->mutable_volume()->set_volume_id("garbage");
  EXPECT_EQ(Create(missing_vol, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ControllerTest, ResizeAfterCrashIsResumedByTheRetry) {
  std::string src = MustCreate("src", kGiB);
  csi::v1::CreateSnapshotResponse snap;
  ASSERT_TRUE(Snap(src, "s", &snap).ok());
  cluster_->fault = [](const std::string& op) {
    return op == "ResizeVolume" ? absl::UnavailableError("server went away") : absl::OkStatus();
  };
  auto req = CreateReq("grow", 3 * kGiB);
  req.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(
      snap.snapshot().snapshot_id());
  csi::v1::CreateVolumeResponse resp;
  EXPECT_EQ(Create(req, &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
  cluster_->fault = nullptr;
  ASSERT_TRUE(Create(req, &resp).ok());
  EXPECT_EQ(resp.volume().capacity_bytes(), 3 * kGiB);
  int restored = 0;
  for (const auto& v : cluster_->Volumes()) restored += v.name == "grow";
  EXPECT_EQ(restored, 1);
}

// covers: CreateVolume.E.INVALID_ARGUMENT.source_incompatible
TEST_F(ControllerTest, CloneGoesThroughATemporarySnapshotThatIsDeleted) {
  std::string src = MustCreate("src", 2 * kGiB);
  for (int i = 0; i < 5; ++i) {
    auto req = CreateReq("clone", 3 * kGiB);
    req.mutable_volume_content_source()->mutable_volume()->set_volume_id(src);
    csi::v1::CreateVolumeResponse resp;
    grpc::Status s = Create(req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.volume().capacity_bytes(), 3 * kGiB);
    EXPECT_EQ(resp.volume().volume_context().at(csictx::kCreatedEmpty), "false");
  }
  EXPECT_TRUE(cluster_->Snapshots().empty());
  EXPECT_EQ(cluster_->Calls("CreateSnapshot"), 1);

  // Same name, other source: ALREADY_EXISTS.
  std::string other = MustCreate("other");
  auto req = CreateReq("clone", 3 * kGiB);
  req.mutable_volume_content_source()->mutable_volume()->set_volume_id(other);
  csi::v1::CreateVolumeResponse resp;
  EXPECT_EQ(Create(req, &resp).error_code(), grpc::StatusCode::ALREADY_EXISTS);

  // A source in another cluster: INVALID_ARGUMENT.
  auto foreign = CreateReq("clone-foreign");
  foreign.mutable_volume_content_source()->mutable_volume()->set_volume_id(
      "mgmt:10.9.9.9:443|nguid:11111111-2222-4333-8444-555555555555|scheme:grpcs");
  grpc::Status s = Create(foreign, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("volume_content_source"));
}

TEST_F(ControllerTest, CloneTemporarySnapshotIsRemovedWhenCreateFails) {
  std::string src = MustCreate("src");
  cluster_->fault = [](const std::string& op) {
    return op == "CreateVolume" ? absl::ResourceExhaustedError("cluster full") : absl::OkStatus();
  };
  auto req = CreateReq("clone");
  req.mutable_volume_content_source()->mutable_volume()->set_volume_id(src);
  csi::v1::CreateVolumeResponse resp;
  EXPECT_EQ(Create(req, &resp).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(cluster_->Snapshots().empty());
}

TEST_F(ControllerTest, VolumeStillCreatingIsUnavailable) {
  cluster_->create_state = lightos::VolumeState::kCreating;
  csi::v1::CreateVolumeResponse resp;
  ASSERT_TRUE(
      Create(CreateReq("slow"), &resp).ok());  // the client waited; now it is found Creating
  EXPECT_EQ(Create(CreateReq("slow"), &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// covers: General.E.ABORTED.concurrent, CreateSnapshot.E.ABORTED
TEST_F(ControllerTest, ConcurrentDuplicateIsAborted) {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, release = false;
  cluster_->fault = [&](const std::string& op) {
    if (op != "CreateVolume") return absl::OkStatus();
    std::unique_lock<std::mutex> lock(mu);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    return absl::OkStatus();
  };
  std::thread first([&] {
    csi::v1::CreateVolumeResponse resp;
    EXPECT_TRUE(Create(CreateReq("dup"), &resp).ok());
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return entered; });
  }
  csi::v1::CreateVolumeResponse resp;
  grpc::Status s = Create(CreateReq("dup"), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  // Another name is not blocked (no global lock).
  cluster_->fault = nullptr;
  EXPECT_TRUE(Create(CreateReq("other"), &resp).ok());
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  first.join();

  // Snapshots have the same guard.
  std::string src = MustCreate("src");
  entered = release = false;
  cluster_->fault = [&](const std::string& op) {
    if (op != "CreateSnapshot") return absl::OkStatus();
    std::unique_lock<std::mutex> lock(mu);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    return absl::OkStatus();
  };
  std::thread snapper([&] {
    csi::v1::CreateSnapshotResponse r;
    EXPECT_TRUE(Snap(src, "snap", &r).ok());
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return entered; });
  }
  csi::v1::CreateSnapshotResponse r;
  EXPECT_EQ(Snap(src, "snap", &r).error_code(), grpc::StatusCode::ABORTED);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  snapper.join();
}

// covers: General.E.UNAUTHENTICATED
TEST_F(ControllerTest, BadOrMissingTokenIsUnauthenticated) {
  auto req = CreateReq("tok");
  (*req.mutable_secrets())["jwt"] = "wrong";
  csi::v1::CreateVolumeResponse resp;
  EXPECT_EQ(Create(req, &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // Without a jwt secret the global token file is used, but only for a cluster
  // the operator listed (volumeid/credential_scope.h).
  req.mutable_secrets()->clear();
  factory_->last_token = {};
  EXPECT_EQ(Create(req, &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(factory_->last_token.token_file.empty()) << "no client was even made";
  MakeService({kEndpoints});
  EXPECT_TRUE(Create(req, &resp).ok());
  EXPECT_EQ(factory_->last_token.token_file, "/etc/lb-csi/jwt");
  EXPECT_TRUE(factory_->last_token.inline_token.empty());
}

// A token never travels in plaintext to a cluster not listed with scheme:grpc,
// and the operator's token never to an unlisted one, whatever the request says.
TEST_F(ControllerTest, TokensGoOnlyWhereTheOperatorAllows) {
  csi::v1::CreateVolumeResponse resp;
  auto plaintext = CreateReq("plain");
  (*plaintext.mutable_parameters())["mgmt-scheme"] = "grpc";
  factory_->last_token = {};
  EXPECT_EQ(Create(plaintext, &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(factory_->last_token.inline_token.empty());
  MakeService({std::string(kEndpoints) + "|scheme:grpc"});
  EXPECT_TRUE(Create(plaintext, &resp).ok());
  // Listed for TLS only: plaintext is still refused, with or without a secret.
  MakeService({kEndpoints});
  EXPECT_EQ(Create(plaintext, &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  auto delete_req = [&](const std::string& id) {
    csi::v1::DeleteVolumeRequest r;
    r.set_volume_id(id);
    grpc::ServerContext ctx;
    csi::v1::DeleteVolumeResponse out;
    return service_->DeleteVolume(&ctx, &r, &out);
  };
  EXPECT_EQ(delete_req("mgmt:10.9.9.9:443|nguid:0e1f2a3b-0000-4000-8000-000000000001|scheme:grpcs")
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

// covers: General.MUST.secrets_not_logged
TEST_F(ControllerTest, SecretsNeverReachLogsOrErrors) {
  std::vector<std::string> lines;
  log::SetLevel(log::Level::kTrace);
  log::SetSinkForTesting([&](std::string_view line) { lines.emplace_back(line); });
  auto req = CreateReq("sec");
  (*req.mutable_secrets())["jwt"] = "super-secret-token-value";
  csi::v1::CreateVolumeResponse resp;
  grpc::Status s = Create(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  log::SetSinkForTesting(nullptr);
  log::SetLevel(log::Level::kInfo);
  ASSERT_FALSE(lines.empty());
  for (const std::string& l : lines) EXPECT_THAT(l, ::testing::Not(HasSubstr("super-secret")));
  EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr("super-secret")));
}

// covers: DeleteVolume.MUST.idempotent, DeleteVolume.MUST.ok_when_not_found, DeleteVolume.E.INVALID_ARGUMENT.missing_id
TEST_F(ControllerTest, DeleteIsIdempotent) {
  std::string id = MustCreate("del");
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(Delete(id).ok());
  EXPECT_TRUE(cluster_->Volumes().empty());
  EXPECT_TRUE(Delete("not-an-id").ok());
  EXPECT_EQ(Delete("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// covers: DeleteVolume.E.FAILED_PRECONDITION
TEST_F(ControllerTest, DeleteRefusesPublishedAndRetriesInFlightStates) {
  std::string id = MustCreate("busy");
  ASSERT_TRUE(Publish(PublishReq(id, "node-1.node")).ok());
  grpc::Status s = Delete(id);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("node-1.node"));
  ASSERT_TRUE(Unpublish(id, "node-1.node").ok());
  std::string uuid = cluster_->Volumes()[0].uuid;
  for (auto st : {lightos::VolumeState::kCreating, lightos::VolumeState::kDeleting,
                  lightos::VolumeState::kUpdating}) {
    cluster_->MutateVolume(uuid, [&](lightos::Volume& v) { v.state = st; });
    EXPECT_EQ(Delete(id).error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  cluster_->MutateVolume(uuid,
                         [](lightos::Volume& v) { v.state = lightos::VolumeState::kAvailable; });
  EXPECT_TRUE(Delete(id).ok());
}

// covers: DeleteVolume.MUST.snapshots_survive
TEST_F(ControllerTest, SnapshotsSurviveTheirVolume) {
  std::string id = MustCreate("vol");
  csi::v1::CreateSnapshotResponse snap;
  ASSERT_TRUE(Snap(id, "keep", &snap).ok());
  ASSERT_TRUE(Delete(id).ok());
  auto req = CreateReq("from-orphan");
  req.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(
      snap.snapshot().snapshot_id());
  csi::v1::CreateVolumeResponse resp;
  EXPECT_TRUE(Create(req, &resp).ok());
}

// covers: ControllerPublishVolume.MUST.idempotent, ControllerPublishVolume.MUST.publish_context
TEST_F(ControllerTest, PublishAddsHostNqnAndReturnsDataPathFacts) {
  std::string id = MustCreate("pub");
  for (int i = 0; i < 5; ++i) {
    csi::v1::ControllerPublishVolumeResponse resp;
    ASSERT_TRUE(Publish(PublishReq(id, "worker-1.node"), &resp).ok());
    const auto& pc = resp.publish_context();
    EXPECT_EQ(pc.at(csictx::kSubsysNqn), cluster_->info.subsystem_nqn);
    EXPECT_EQ(pc.at(csictx::kNvmeEndpoints), "10.0.0.1:4420,10.0.0.2:4420");
    EXPECT_EQ(pc.at(csictx::kDiscoveryEndpoints), "10.0.0.1:8009,10.0.0.2:8009");
    EXPECT_EQ(pc.at(csictx::kNeverWritten), "true");
    EXPECT_EQ(pc.at(csictx::kReadonly), "false");
  }
  EXPECT_EQ(cluster_->Volumes()[0].acl,
            std::vector<std::string>{"nqn.2019-09.com.lightbitslabs:host:worker-1.node"});
  EXPECT_EQ(cluster_->Calls("UpdateVolumeAccess"), 1);

  // Written volumes lose the never-written proof; read-only modes set the flag.
  cluster_->MutateVolume(cluster_->Volumes()[0].uuid,
                         [](lightos::Volume& v) { v.written_bytes = 512; });
  csi::v1::ControllerPublishVolumeResponse resp;
  auto ro = PublishReq(id, "worker-2.node", MountCap(Mode::MULTI_NODE_READER_ONLY));
  ro.set_readonly(true);
  ASSERT_TRUE(Publish(ro, &resp).ok());
  EXPECT_EQ(resp.publish_context().at(csictx::kNeverWritten), "false");
  EXPECT_EQ(resp.publish_context().at(csictx::kReadonly), "true");
}

// covers: ControllerPublishVolume.E.ALREADY_EXISTS
TEST_F(ControllerTest, RepublishWithOtherReadonlyModeIsAlreadyExists) {
  // LightOS ACLs carry no read-only grant: the controller records read-only publications in a
  // per-node label, written in the same update as the ACL entry.
  std::string id = MustCreate("ro");
  auto rw = PublishReq(id, "n1.node");
  ASSERT_TRUE(Publish(rw).ok());
  EXPECT_TRUE(cluster_->Volumes()[0].labels.empty()) << "a read-write publication needs no label";
  auto ro_flag = rw;
  ro_flag.set_readonly(true);
  grpc::Status s = Publish(ro_flag);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr("read-write"));
  // A reader-only access mode is a read-only publication too.
  EXPECT_EQ(
      Publish(PublishReq(id, "n1.node", MountCap(Mode::SINGLE_NODE_READER_ONLY))).error_code(),
      grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_TRUE(Publish(rw).ok()) << "the same publication again is idempotent";

  // After unpublishing, the node may come back read-only; then read-write is the conflict.
  ASSERT_TRUE(Unpublish(id, "n1.node").ok());
  csi::v1::ControllerPublishVolumeResponse resp;
  ASSERT_TRUE(Publish(ro_flag, &resp).ok());
  EXPECT_EQ(resp.publish_context().at(csictx::kReadonly), "true");
  auto label = [&](const std::string& node) {
    auto labels = cluster_->Volumes()[0].labels;
    auto it = labels.find(controller::internal::ReadonlyLabelKey(node));
    return it == labels.end() ? std::string("absent") : it->second;
  };
  ASSERT_EQ(cluster_->Volumes()[0].labels.size(), 1u);
  EXPECT_EQ(controller::internal::ReadonlyLabelKey("n1.node").substr(0, 9), "lbcsi-ro-");
  EXPECT_EQ(label("n1.node"), "true");
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Publish(ro_flag).ok());
  EXPECT_EQ(Publish(rw).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  // Another node's publication has its own record.
  ASSERT_TRUE(Unpublish(id, "n1.node").ok());
  auto rox = PublishReq(id, "n2.node", MountCap(Mode::MULTI_NODE_READER_ONLY));
  auto rwx_block = PublishReq(id, "n3.node", BlockCap(Mode::MULTI_NODE_MULTI_WRITER));
  ASSERT_TRUE(Publish(rox).ok());
  ASSERT_TRUE(Publish(rwx_block).ok());
  EXPECT_EQ(label("n2.node"), "true");
  EXPECT_EQ(label("n3.node"), "absent") << "a read-write publication writes no label";
  // Unpublish marks the record "false" instead of removing it, so it stays right whether
  // LightOS replaces or merges labels; a later read-write publication is then compatible.
  EXPECT_EQ(label("n1.node"), "false");
  ASSERT_TRUE(Unpublish(id, "").ok());  // every node
  EXPECT_EQ(label("n2.node"), "false");
  EXPECT_TRUE(Publish(rw).ok());
  EXPECT_EQ(label("n1.node"), "false");
}

// covers: ControllerPublishVolume.E.FAILED_PRECONDITION
TEST_F(ControllerTest, SingleNodeModesRefuseASecondNode) {
  std::string id = MustCreate("rwo");
  ASSERT_TRUE(Publish(PublishReq(id, "n1.node")).ok());
  for (auto mode : {Mode::SINGLE_NODE_WRITER, Mode::SINGLE_NODE_SINGLE_WRITER,
                    Mode::SINGLE_NODE_MULTI_WRITER, Mode::SINGLE_NODE_READER_ONLY}) {
    grpc::Status s = Publish(PublishReq(id, "n2.node", MountCap(mode)));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(s.error_message(), HasSubstr("n1.node"));
  }
  // A publish that races another node's publish is refused as well.
  std::string id2 = MustCreate("rwo-race");
  std::string uuid2;
  for (const auto& v : cluster_->Volumes())
    if (v.name == "rwo-race") uuid2 = v.uuid;
  bool once = false;
  cluster_->before_acl_commit = [&] {
    if (once) return;
    once = true;
    cluster_->MutateVolume(
        uuid2, [](lightos::Volume& v) { v.acl = {"nqn.2019-09.com.lightbitslabs:host:n9.node"}; });
  };
  grpc::Status s = Publish(PublishReq(id2, "n2.node"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("n9.node"));
}

// covers: ControllerPublishVolume.E.RESOURCE_EXHAUSTED
TEST_F(ControllerTest, MultiNodeBlockAndManyVolumesPerNode) {
  // No per-node attach limit exists in LightOS: many volumes publish to one node.
  for (int i = 0; i < 8; ++i) {
    EXPECT_TRUE(Publish(PublishReq(MustCreate(Cat("many-", i)), "n1.node")).ok());
  }
  std::string id = MustCreate("rwx");
  for (const char* node : {"n1.node", "n2.node", "n3.node"}) {
    EXPECT_TRUE(Publish(PublishReq(id, node, BlockCap(Mode::MULTI_NODE_MULTI_WRITER))).ok());
  }
  EXPECT_EQ(
      Publish(PublishReq(id, "n4.node", MountCap(Mode::MULTI_NODE_MULTI_WRITER))).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Publish(PublishReq(id, "n4.node", MountCap(Mode::MULTI_NODE_READER_ONLY))).ok());
}

// covers: ControllerPublishVolume.E.INVALID_ARGUMENT.missing_fields, ControllerPublishVolume.E.NOT_FOUND.volume, ControllerPublishVolume.E.NOT_FOUND.node
TEST_F(ControllerTest, PublishErrors) {
  std::string id = MustCreate("perr");
  auto r = PublishReq("", "n1.node");
  EXPECT_EQ(Publish(r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  r = PublishReq(id, "");
  EXPECT_EQ(Publish(r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  r = PublishReq(id, "n1.node");
  r.clear_volume_capability();
  EXPECT_EQ(Publish(r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Publish(PublishReq("junk", "n1.node")).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Publish(PublishReq("mgmt:10.0.0.1:443,10.0.0.2:443|nguid:11111111-2222-4333-8444-"
                               "555555555555|scheme:grpcs",
                               "n1.node"))
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  grpc::Status s = Publish(PublishReq(id, "bad node/id"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("node_id"));
  EXPECT_EQ(Publish(PublishReq(id, std::string(300, 'a'))).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // Well-formed but not of this driver's shape (csi-sanity's "fake-node-id-..."): not found.
  EXPECT_EQ(Publish(PublishReq(id, "fake-node-id-0123456789")).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(cluster_->Volumes()[0].acl == std::vector<std::string>{lightos::kAclAllowNone})
      << "a refused publish leaves the ACL alone";
}

// covers: ControllerUnpublishVolume.MUST.idempotent, ControllerUnpublishVolume.MUST.ok_when_not_published, ControllerUnpublishVolume.MUST.all_nodes_when_node_unset
TEST_F(ControllerTest, UnpublishIsIdempotentAndEmptiesToAllowNone) {
  std::string id = MustCreate("unp");
  ASSERT_TRUE(Publish(PublishReq(id, "n1.node", BlockCap(Mode::MULTI_NODE_MULTI_WRITER))).ok());
  ASSERT_TRUE(Publish(PublishReq(id, "n2.node", BlockCap(Mode::MULTI_NODE_MULTI_WRITER))).ok());
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(Unpublish(id, "n1.node").ok());
  EXPECT_EQ(cluster_->Volumes()[0].acl,
            std::vector<std::string>{"nqn.2019-09.com.lightbitslabs:host:n2.node"});
  EXPECT_TRUE(Unpublish(id, "never-published").ok());
  ASSERT_TRUE(Publish(PublishReq(id, "n3.node", BlockCap(Mode::MULTI_NODE_MULTI_WRITER))).ok());
  EXPECT_TRUE(Unpublish(id, "").ok());  // all nodes
  EXPECT_EQ(cluster_->Volumes()[0].acl, std::vector<std::string>{"ALLOW_NONE"});
}

// covers: ControllerUnpublishVolume.E.NOT_FOUND.volume, ControllerUnpublishVolume.E.NOT_FOUND.node
TEST_F(ControllerTest, UnpublishOfMissingVolumeOrNodeIsSuccess) {
  // A volume or node that cannot be found is safely unpublished: OK (the spec's SHOULD).
  EXPECT_TRUE(Unpublish("mgmt:10.0.0.1:443,10.0.0.2:443|nguid:11111111-2222-4333-8444-555555555555"
                        "|scheme:grpcs",
                        "n1.node")
                  .ok());
  EXPECT_TRUE(Unpublish("junk", "n1.node").ok());
  std::string id = MustCreate("unp2");
  EXPECT_TRUE(Unpublish(id, "bad node/id").ok());
  csi::v1::ControllerUnpublishVolumeRequest r;
  csi::v1::ControllerUnpublishVolumeResponse resp;
  grpc::ServerContext ctx;
  EXPECT_EQ(service_->ControllerUnpublishVolume(&ctx, &r, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// covers: ValidateVolumeCapabilities.MUST.confirm_only_if_all_supported, ValidateVolumeCapabilities.E.NOT_FOUND, ValidateVolumeCapabilities.E.INVALID_ARGUMENT.missing_fields
TEST_F(ControllerTest, ValidateVolumeCapabilities) {
  std::string id = MustCreate("val");
  auto call = [&](csi::v1::ValidateVolumeCapabilitiesRequest r,
                  csi::v1::ValidateVolumeCapabilitiesResponse* resp) {
    (*r.mutable_secrets())["jwt"] = "good-token";
    grpc::ServerContext ctx;
    return service_->ValidateVolumeCapabilities(&ctx, &r, resp);
  };
  csi::v1::ValidateVolumeCapabilitiesRequest r;
  r.set_volume_id(id);
  *r.add_volume_capabilities() = MountCap();
  *r.add_volume_capabilities() = BlockCap(Mode::MULTI_NODE_MULTI_WRITER);
  for (int i = 0; i < 5; ++i) {
    csi::v1::ValidateVolumeCapabilitiesResponse resp;
    ASSERT_TRUE(call(r, &resp).ok());
    EXPECT_TRUE(resp.has_confirmed());
    EXPECT_EQ(resp.confirmed().volume_capabilities_size(), 2);
  }
  *r.add_volume_capabilities() = MountCap(Mode::MULTI_NODE_MULTI_WRITER);
  csi::v1::ValidateVolumeCapabilitiesResponse resp;
  ASSERT_TRUE(call(r, &resp).ok());
  EXPECT_FALSE(resp.has_confirmed());
  EXPECT_THAT(resp.message(), HasSubstr("MULTI_NODE_MULTI_WRITER"));

  csi::v1::ValidateVolumeCapabilitiesRequest missing;
  missing.set_volume_id(
      "mgmt:10.0.0.1:443,10.0.0.2:443|nguid:11111111-2222-4333-8444-555555555555");
  *missing.add_volume_capabilities() = MountCap();
  EXPECT_EQ(call(missing, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  missing.set_volume_id("junk");
  EXPECT_EQ(call(missing, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  csi::v1::ValidateVolumeCapabilitiesRequest nocaps;
  nocaps.set_volume_id(id);
  EXPECT_EQ(call(nocaps, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  csi::v1::ValidateVolumeCapabilitiesRequest noid;
  *noid.add_volume_capabilities() = MountCap();
  EXPECT_EQ(call(noid, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// covers: ControllerExpandVolume.MUST.idempotent, ControllerExpandVolume.MUST.node_expansion_required, ControllerExpandVolume.E.INVALID_ARGUMENT, ControllerExpandVolume.E.NOT_FOUND, ControllerExpandVolume.E.OUT_OF_RANGE, ControllerExpandVolume.E.FAILED_PRECONDITION
TEST_F(ControllerTest, Expand) {
  std::string id = MustCreate("exp", kGiB);
  ASSERT_TRUE(Publish(PublishReq(id, "n1.node")).ok());  // ONLINE: published volumes grow too
  auto call = [&](const std::string& vid, int64_t req, int64_t lim,
                  const csi::v1::VolumeCapability* cap,
                  csi::v1::ControllerExpandVolumeResponse* resp) {
    csi::v1::ControllerExpandVolumeRequest r;
    r.set_volume_id(vid);
    if (req || lim) {
      r.mutable_capacity_range()->set_required_bytes(req);
      r.mutable_capacity_range()->set_limit_bytes(lim);
    }
    if (cap) *r.mutable_volume_capability() = *cap;
    (*r.mutable_secrets())["jwt"] = "good-token";
    grpc::ServerContext ctx;
    return service_->ControllerExpandVolume(&ctx, &r, resp);
  };
  for (int i = 0; i < 5; ++i) {
    csi::v1::ControllerExpandVolumeResponse resp;
    ASSERT_TRUE(call(id, 3 * kGiB - 7, 0, nullptr, &resp).ok());
    EXPECT_EQ(resp.capacity_bytes(), 3 * kGiB);
    EXPECT_TRUE(resp.node_expansion_required());
  }
  EXPECT_EQ(cluster_->Calls("ResizeVolume"), 1);
  csi::v1::ControllerExpandVolumeResponse resp;
  auto block = BlockCap();
  ASSERT_TRUE(call(id, 4 * kGiB, 0, &block, &resp).ok());
  EXPECT_FALSE(resp.node_expansion_required());
  ASSERT_TRUE(call(id, kGiB, 0, nullptr, &resp).ok());  // never shrinks
  EXPECT_EQ(resp.capacity_bytes(), 4 * kGiB);
  EXPECT_EQ(call(id, 0, 0, nullptr, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(call("", kGiB, 0, nullptr, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(call(id, 5 * kGiB - 100, 5 * kGiB - 1, nullptr, &resp).error_code(),
            grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(call(id, kGiB, 2 * kGiB, nullptr, &resp).error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(call("junk", kGiB, 0, nullptr, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Unpublish(id, "n1.node").ok());
  ASSERT_TRUE(Delete(id).ok());
  EXPECT_EQ(call(id, 8 * kGiB, 0, nullptr, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

// covers: ControllerModifyVolume.MUST.idempotent, ControllerModifyVolume.MUST.only_specified_keys, ControllerModifyVolume.E.INVALID_ARGUMENT, ControllerModifyVolume.E.NOT_FOUND
TEST_F(ControllerTest, ModifyVolumeQos) {
  std::string id = MustCreate("mod");
  auto call = [&](const std::string& vid, std::map<std::string, std::string> params) {
    csi::v1::ControllerModifyVolumeRequest r;
    r.set_volume_id(vid);
    for (auto& [k, v] : params) (*r.mutable_mutable_parameters())[k] = v;
    (*r.mutable_secrets())["jwt"] = "good-token";
    csi::v1::ControllerModifyVolumeResponse resp;
    grpc::ServerContext ctx;
    return service_->ControllerModifyVolume(&ctx, &r, &resp);
  };
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(call(id, {{"qos-policy-name", "gold"}}).ok());
  EXPECT_EQ(cluster_->Calls("SetQosPolicy"), 1);
  EXPECT_EQ(cluster_->Volumes()[0].qos_policy_name, "gold");
  EXPECT_TRUE(call(id, {}).ok()) << "no parameters: nothing to change";
  EXPECT_EQ(cluster_->Calls("SetQosPolicy"), 1);
  EXPECT_EQ(call("junk", {}).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(call(id, {{"replica-count", "3"}}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(cluster_->Volumes()[0].replica_count, 2u);  // untouched
  grpc::Status s = call(id, {{"qos-policy-name", "platinum"}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(cluster_->Volumes()[0].qos_policy_name, "gold");
  EXPECT_EQ(call("junk", {{"qos-policy-name", "gold"}}).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Delete(id).ok());
  EXPECT_EQ(call(id, {{"qos-policy-name", "gold"}}).error_code(), grpc::StatusCode::NOT_FOUND);
}

// covers: ControllerGetVolume.MUST.volume_condition, ControllerGetVolume.E.NOT_FOUND
TEST_F(ControllerTest, GetVolumeReportsConditionAndNodes) {
  MakeService({kEndpoints});  // list mode: the controller-wide token, for listed clusters only
  std::string id = MustCreate("get");
  ASSERT_TRUE(Publish(PublishReq(id, "n1.node")).ok());
  auto call = [&](const std::string& vid, csi::v1::ControllerGetVolumeResponse* resp) {
    csi::v1::ControllerGetVolumeRequest r;
    r.set_volume_id(vid);
    grpc::ServerContext ctx;
    return service_->ControllerGetVolume(&ctx, &r, resp);
  };
  csi::v1::ControllerGetVolumeResponse resp;
  ASSERT_TRUE(call(id, &resp).ok());
  EXPECT_EQ(resp.volume().volume_id(), id);
  EXPECT_TRUE(resp.status().has_volume_condition());
  EXPECT_FALSE(resp.status().volume_condition().abnormal());
  EXPECT_THAT(resp.status().published_node_ids(), ::testing::ElementsAre("n1.node"));
  cluster_->MutateVolume(cluster_->Volumes()[0].uuid, [](lightos::Volume& v) {
    v.protection = lightos::ProtectionState::kReadOnly;
  });
  ASSERT_TRUE(call(id, &resp).ok());
  EXPECT_TRUE(resp.status().volume_condition().abnormal());
  EXPECT_THAT(resp.status().volume_condition().message(), HasSubstr("ReadOnly"));
  EXPECT_EQ(call("junk", &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(call("mgmt:10.0.0.1:443,10.0.0.2:443|nguid:11111111-2222-4333-8444-555555555555", &resp)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ControllerTest, ShippedPluginIdsAreAccepted) {
  // Old ids had no scheme field (meaning grpcs) and are still managed.
  MustCreate("legacy");
  std::string uuid = cluster_->Volumes()[0].uuid;
  std::string old_id = "mgmt:10.0.0.2:443,10.0.0.1:443|nguid:" + uuid;
  EXPECT_TRUE(Publish(PublishReq(old_id, "legacy-node.node")).ok());
  EXPECT_TRUE(Unpublish(old_id, "legacy-node.node").ok());
  EXPECT_TRUE(Delete(old_id).ok());
  EXPECT_TRUE(cluster_->Volumes().empty());
}

TEST_F(ControllerTest, MetricsCountRpcsAndCodes) {
  MustCreate("m");
  csi::v1::CreateVolumeResponse resp;
  Create(CreateReq(""), &resp);
  EXPECT_EQ(registry_.CounterValue("lbcsi_csi_requests_total",
                                   {{"method", "CreateVolume"}, {"code", "OK"}}),
            1);
  EXPECT_EQ(registry_.CounterValue("lbcsi_csi_requests_total",
                                   {{"method", "CreateVolume"}, {"code", "INVALID_ARGUMENT"}}),
            1);
  EXPECT_EQ(registry_.HistogramCount("lbcsi_csi_request_seconds", {{"method", "CreateVolume"}}),
            2u);
}

}  // namespace
}  // namespace lbcsi::testing
