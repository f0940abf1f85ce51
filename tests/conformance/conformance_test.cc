// The project's CSI conformance suite: the whole stack as real processes
// (tests/conformance/stack.h), driven over its two CSI sockets with the
// generated csi::v1 stubs. Each test names the conformance ids it checks in a
// "covers:" comment; conformance_map_test makes sure every id has one.
// Needs root (loop devices, mounts).
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>

#include <gtest/gtest.h>

#include "tests/conformance/csi_client.h"

namespace lbcsi::conformance {
namespace {

using grpc::StatusCode;
using Ctl = csi::v1::Controller::Stub;
using Nd = csi::v1::Node::Stub;

constexpr char kMissingUuid[] = "5e1f0000-0000-4000-8000-00000000dead";

bool IsMountPoint(const std::string& path) {
  for (const auto& m : MountsUnder(path)) {
    if (m == path) return true;
  }
  return false;
}

class Conformance : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    stack_ = new Stack();
    start_error_ = stack_->Start();
  }
  static void TearDownTestSuite() {
    if (stack_ == nullptr) return;
    // Nothing may be left once every test cleaned up after itself.
    EXPECT_TRUE(MountsUnder(stack_->kubelet_root()).empty());
    EXPECT_TRUE(LoopDevicesBackedBy(stack_->sim_volumes_dir() + "/", false).empty());
    delete stack_;
    stack_ = nullptr;
  }
  void SetUp() override {
    if (::geteuid() != 0) {
      const char* ci = std::getenv("CI");
      if (ci != nullptr && std::string(ci) == "true") FAIL() << "needs root and CI=true";
      GTEST_SKIP() << "needs root (loop devices and mounts of the real helper)";
    }
    ASSERT_TRUE(start_error_.empty()) << start_error_;
    csi_ = std::make_unique<CsiClient>(*stack_);
  }
  void TearDown() override {
    if (stack_ != nullptr && HasFailure()) {
      for (Component c : {Component::kController, Component::kAgent, Component::kHelper}) {
        std::cerr << "--- " << ComponentName(c) << " log (tail) ---\n";
        std::string log = stack_->Log(c);
        std::cerr << log.substr(log.size() > 4000 ? log.size() - 4000 : 0) << "\n";
      }
    }
  }

  Stack& s() { return *stack_; }
  CsiClient& c() { return *csi_; }

  std::string WellFormedMissingId() const {
    return "mgmt:" + stack_->mgmt() + "|nguid:" + kMissingUuid + "|scheme:grpc";
  }

  // Creates and publishes a volume to this node; returns its id and publish context.
  struct Published {
    std::string id;
    google::protobuf::Map<std::string, std::string> context;
  };
  Published CreateAndPublish(const std::string& name,
                             const csi::v1::VolumeCapability& cap = MountCap()) {
    Published p;
    csi::v1::CreateVolumeResponse cr;
    grpc::Status st = c().C(&Ctl::CreateVolume, c().CreateReq(name, kGiB, cap), &cr);
    EXPECT_TRUE(st.ok()) << st.error_message();
    p.id = cr.volume().volume_id();
    csi::v1::ControllerPublishVolumeResponse pr;
    st = c().C(&Ctl::ControllerPublishVolume, c().PublishReq(p.id, cap), &pr);
    EXPECT_TRUE(st.ok()) << st.error_message();
    p.context = pr.publish_context();
    return p;
  }
  void UnpublishAndDelete(const std::string& id) {
    EXPECT_TRUE(c().C(&Ctl::ControllerUnpublishVolume, c().UnpublishReq(id)).ok());
    grpc::Status st = c().C(&Ctl::DeleteVolume, c().DeleteReq(id));
    EXPECT_TRUE(st.ok()) << st.error_message();
  }

  static Stack* stack_;
  static std::string start_error_;
  std::unique_ptr<CsiClient> csi_;
};
Stack* Conformance::stack_ = nullptr;
std::string Conformance::start_error_;

// covers: GetPluginInfo.MUST.name_format, GetPluginInfo.MUST.vendor_version
// covers: GetPluginCapabilities.MUST.same_for_all_instances, Probe.MUST.implemented
// covers: ControllerGetCapabilities.MUST.implemented, NodeGetCapabilities.MUST.implemented
// covers: NodeGetInfo.MUST.node_id, NodeGetInfo.MUST.max_volumes_non_negative
TEST_F(Conformance, IdentityOnBothSocketsAgrees) {
  const std::regex name_rule("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$");
  std::set<std::string> caps[2];
  std::string versions[2];
  int i = 0;
  for (csi::v1::Identity::Stub* id : {&s().controller_identity(), &s().node_identity()}) {
    grpc::ClientContext ctx;
    csi::v1::GetPluginInfoResponse info;
    ASSERT_TRUE(id->GetPluginInfo(&ctx, {}, &info).ok());
    EXPECT_LE(info.name().size(), 63u);
    EXPECT_TRUE(std::regex_match(info.name(), name_rule)) << info.name();
    EXPECT_NE(info.name().find('.'), std::string::npos) << "domain notation";
    EXPECT_EQ(info.name(), "csi.lightbitslabs.com");
    EXPECT_FALSE(info.vendor_version().empty());
    versions[i] = info.vendor_version();
    grpc::ClientContext ctx2;
    csi::v1::GetPluginCapabilitiesResponse pc;
    ASSERT_TRUE(id->GetPluginCapabilities(&ctx2, {}, &pc).ok());
    for (const auto& cap : pc.capabilities()) caps[i].insert(cap.ShortDebugString());
    grpc::ClientContext ctx3;
    csi::v1::ProbeResponse probe;
    ASSERT_TRUE(id->Probe(&ctx3, {}, &probe).ok());
    EXPECT_TRUE(!probe.has_ready() || probe.ready().value());
    ++i;
  }
  EXPECT_EQ(versions[0], versions[1]);
  EXPECT_EQ(caps[0], caps[1]) << "controller and node instances advertise different sets";
  EXPECT_FALSE(caps[0].empty());

  csi::v1::ControllerGetCapabilitiesResponse cc;
  ASSERT_TRUE(c().C(&Ctl::ControllerGetCapabilities, {}, &cc).ok());
  EXPECT_GT(cc.capabilities_size(), 0);
  csi::v1::NodeGetCapabilitiesResponse nc;
  ASSERT_TRUE(c().C(&Nd::NodeGetCapabilities, {}, &nc).ok());
  std::set<int> node_caps;
  for (const auto& cap : nc.capabilities()) node_caps.insert(cap.rpc().type());
  EXPECT_TRUE(node_caps.count(csi::v1::NodeServiceCapability::RPC::STAGE_UNSTAGE_VOLUME));
  EXPECT_TRUE(node_caps.count(csi::v1::NodeServiceCapability::RPC::EXPAND_VOLUME));
  csi::v1::NodeGetInfoResponse ni;
  ASSERT_TRUE(c().C(&Nd::NodeGetInfo, {}, &ni).ok());
  EXPECT_EQ(ni.node_id(), Stack::kNodeId);
  EXPECT_GE(ni.max_volumes_per_node(), 0);
}

// Each REQUIRED field left out alone: INVALID_ARGUMENT with a message and no details.
// covers: CreateVolume.E.INVALID_ARGUMENT.required.name
// covers: CreateVolume.E.INVALID_ARGUMENT.required.volume_capabilities
// covers: CreateVolume.E.INVALID_ARGUMENT.required.access_type
// covers: CreateVolume.E.INVALID_ARGUMENT.required.access_mode
// covers: DeleteVolume.E.INVALID_ARGUMENT.required.volume_id
// covers: ControllerPublishVolume.E.INVALID_ARGUMENT.required.volume_id
// covers: ControllerPublishVolume.E.INVALID_ARGUMENT.required.node_id
// covers: ControllerPublishVolume.E.INVALID_ARGUMENT.required.volume_capability
// covers: ControllerUnpublishVolume.E.INVALID_ARGUMENT.required.volume_id
// covers: ValidateVolumeCapabilities.E.INVALID_ARGUMENT.required.volume_id
// covers: ValidateVolumeCapabilities.E.INVALID_ARGUMENT.required.volume_capabilities
// covers: ControllerGetVolume.E.INVALID_ARGUMENT.required.volume_id
// covers: ControllerModifyVolume.E.INVALID_ARGUMENT.required.volume_id
// covers: CreateSnapshot.E.INVALID_ARGUMENT.required.source_volume_id
// covers: CreateSnapshot.E.INVALID_ARGUMENT.required.name
// covers: DeleteSnapshot.E.INVALID_ARGUMENT.required.snapshot_id
// covers: GetSnapshot.E.INVALID_ARGUMENT.required.snapshot_id
// covers: ControllerExpandVolume.E.INVALID_ARGUMENT.required.volume_id
// covers: ControllerExpandVolume.E.INVALID_ARGUMENT.required.capacity_range
// covers: NodeStageVolume.E.INVALID_ARGUMENT.required.volume_id
// covers: NodeStageVolume.E.INVALID_ARGUMENT.required.staging_target_path
// covers: NodeStageVolume.E.INVALID_ARGUMENT.required.volume_capability
// covers: NodeUnstageVolume.E.INVALID_ARGUMENT.required.volume_id
// covers: NodeUnstageVolume.E.INVALID_ARGUMENT.required.staging_target_path
// covers: NodePublishVolume.E.INVALID_ARGUMENT.required.volume_id
// covers: NodePublishVolume.E.INVALID_ARGUMENT.required.target_path
// covers: NodePublishVolume.E.INVALID_ARGUMENT.required.volume_capability
// covers: NodeUnpublishVolume.E.INVALID_ARGUMENT.required.volume_id
// covers: NodeUnpublishVolume.E.INVALID_ARGUMENT.required.target_path
// covers: NodeGetVolumeStats.E.INVALID_ARGUMENT.required.volume_id
// covers: NodeGetVolumeStats.E.INVALID_ARGUMENT.required.volume_path
// covers: NodeExpandVolume.E.INVALID_ARGUMENT.required.volume_id
// covers: NodeExpandVolume.E.INVALID_ARGUMENT.required.volume_path
// covers: General.E.INVALID_ARGUMENT.missing_field, General.MUST.error_message_non_empty
// covers: General.MUST.details_empty, General.MUST.status_message_nonempty
// covers: CreateVolume.E.INVALID_ARGUMENT.missing_name
// covers: CreateVolume.E.INVALID_ARGUMENT.missing_capabilities
// covers: DeleteVolume.E.INVALID_ARGUMENT.missing_id
// covers: ControllerPublishVolume.E.INVALID_ARGUMENT.missing_fields
// covers: ValidateVolumeCapabilities.E.INVALID_ARGUMENT.missing_fields
TEST_F(Conformance, EachMissingRequiredFieldIsInvalidArgument) {
  // A real volume, so that only the missing field can be wrong.
  csi::v1::CreateVolumeResponse created;
  ASSERT_TRUE(c().C(&Ctl::CreateVolume, c().CreateReq("conf-required"), &created).ok());
  const std::string id = created.volume().volume_id();
  const std::string pv = "pv-required";
  c().PrepareNodeDirs(pv);
  csi::v1::ListVolumesResponse before;
  ASSERT_TRUE(c().C(&Ctl::ListVolumes, csi::v1::ListVolumesRequest(), &before).ok());
  google::protobuf::Map<std::string, std::string> no_context;

  struct Case {
    std::string what;
    std::function<grpc::Status()> call;
  };
  std::vector<Case> cases;
  auto add = [&](std::string what, std::function<grpc::Status()> call) {
    cases.push_back({std::move(what), std::move(call)});
  };
  add("CreateVolume.name", [&] {
    auto r = c().CreateReq("x");
    r.clear_name();
    return c().C(&Ctl::CreateVolume, r);
  });
  add("CreateVolume.volume_capabilities", [&] {
    auto r = c().CreateReq("conf-required-2");
    r.clear_volume_capabilities();
    return c().C(&Ctl::CreateVolume, r);
  });
  add("CreateVolume.access_type", [&] {
    auto r = c().CreateReq("conf-required-3");
    r.mutable_volume_capabilities(0)->clear_mount();
    return c().C(&Ctl::CreateVolume, r);
  });
  add("CreateVolume.access_mode", [&] {
    auto r = c().CreateReq("conf-required-4");
    r.mutable_volume_capabilities(0)->clear_access_mode();
    return c().C(&Ctl::CreateVolume, r);
  });
  add("DeleteVolume.volume_id", [&] { return c().C(&Ctl::DeleteVolume, c().DeleteReq("")); });
  add("ControllerPublishVolume.volume_id",
      [&] { return c().C(&Ctl::ControllerPublishVolume, c().PublishReq("")); });
  add("ControllerPublishVolume.node_id",
      [&] { return c().C(&Ctl::ControllerPublishVolume, c().PublishReq(id, MountCap(), "")); });
  add("ControllerPublishVolume.volume_capability", [&] {
    auto r = c().PublishReq(id);
    r.clear_volume_capability();
    return c().C(&Ctl::ControllerPublishVolume, r);
  });
  add("ControllerUnpublishVolume.volume_id",
      [&] { return c().C(&Ctl::ControllerUnpublishVolume, c().UnpublishReq("")); });
  add("ValidateVolumeCapabilities.volume_id", [&] {
    csi::v1::ValidateVolumeCapabilitiesRequest r;
    *r.add_volume_capabilities() = MountCap();
    return c().C(&Ctl::ValidateVolumeCapabilities, r);
  });
  add("ValidateVolumeCapabilities.volume_capabilities", [&] {
    csi::v1::ValidateVolumeCapabilitiesRequest r;
    r.set_volume_id(id);
    return c().C(&Ctl::ValidateVolumeCapabilities, r);
  });
  add("ControllerGetVolume.volume_id",
      [&] { return c().C(&Ctl::ControllerGetVolume, csi::v1::ControllerGetVolumeRequest()); });
  add("ControllerModifyVolume.volume_id", [&] {
    csi::v1::ControllerModifyVolumeRequest r;
    (*r.mutable_mutable_parameters())["qos-policy-name"] = "gold";
    return c().C(&Ctl::ControllerModifyVolume, r);
  });
  add("CreateSnapshot.source_volume_id",
      [&] { return c().C(&Ctl::CreateSnapshot, c().SnapshotReq("", "conf-snap-r")); });
  add("CreateSnapshot.name", [&] { return c().C(&Ctl::CreateSnapshot, c().SnapshotReq(id, "")); });
  add("DeleteSnapshot.snapshot_id",
      [&] { return c().C(&Ctl::DeleteSnapshot, c().DeleteSnapshotReq("")); });
  add("GetSnapshot.snapshot_id",
      [&] { return c().C(&Ctl::GetSnapshot, csi::v1::GetSnapshotRequest()); });
  add("ControllerExpandVolume.volume_id",
      [&] { return c().C(&Ctl::ControllerExpandVolume, c().ExpandReq("", 2 * kGiB)); });
  add("ControllerExpandVolume.capacity_range", [&] {
    auto r = c().ExpandReq(id, 2 * kGiB);
    r.clear_capacity_range();
    return c().C(&Ctl::ControllerExpandVolume, r);
  });
  add("NodeStageVolume.volume_id", [&] {
    auto r = c().StageReq(id, pv, no_context);
    r.clear_volume_id();
    return c().C(&Nd::NodeStageVolume, r);
  });
  add("NodeStageVolume.staging_target_path", [&] {
    auto r = c().StageReq(id, pv, no_context);
    r.clear_staging_target_path();
    return c().C(&Nd::NodeStageVolume, r);
  });
  add("NodeStageVolume.volume_capability", [&] {
    auto r = c().StageReq(id, pv, no_context);
    r.clear_volume_capability();
    return c().C(&Nd::NodeStageVolume, r);
  });
  add("NodeUnstageVolume.volume_id", [&] {
    auto r = c().UnstageReq(id, pv);
    r.clear_volume_id();
    return c().C(&Nd::NodeUnstageVolume, r);
  });
  add("NodeUnstageVolume.staging_target_path", [&] {
    auto r = c().UnstageReq(id, pv);
    r.clear_staging_target_path();
    return c().C(&Nd::NodeUnstageVolume, r);
  });
  add("NodePublishVolume.volume_id", [&] {
    auto r = c().NodePublishReq(id, pv, no_context);
    r.clear_volume_id();
    return c().C(&Nd::NodePublishVolume, r);
  });
  add("NodePublishVolume.target_path", [&] {
    auto r = c().NodePublishReq(id, pv, no_context);
    r.clear_target_path();
    return c().C(&Nd::NodePublishVolume, r);
  });
  add("NodePublishVolume.volume_capability", [&] {
    auto r = c().NodePublishReq(id, pv, no_context);
    r.clear_volume_capability();
    return c().C(&Nd::NodePublishVolume, r);
  });
  add("NodeUnpublishVolume.volume_id", [&] {
    auto r = c().NodeUnpublishReq(id, pv);
    r.clear_volume_id();
    return c().C(&Nd::NodeUnpublishVolume, r);
  });
  add("NodeUnpublishVolume.target_path", [&] {
    auto r = c().NodeUnpublishReq(id, pv);
    r.clear_target_path();
    return c().C(&Nd::NodeUnpublishVolume, r);
  });
  add("NodeGetVolumeStats.volume_id", [&] {
    csi::v1::NodeGetVolumeStatsRequest r;
    r.set_volume_path(c().Target(pv));
    return c().C(&Nd::NodeGetVolumeStats, r);
  });
  add("NodeGetVolumeStats.volume_path", [&] {
    csi::v1::NodeGetVolumeStatsRequest r;
    r.set_volume_id(id);
    return c().C(&Nd::NodeGetVolumeStats, r);
  });
  add("NodeExpandVolume.volume_id", [&] {
    auto r = c().NodeExpandReq(id, pv, 2 * kGiB);
    r.clear_volume_id();
    return c().C(&Nd::NodeExpandVolume, r);
  });
  add("NodeExpandVolume.volume_path", [&] {
    auto r = c().NodeExpandReq(id, pv, 2 * kGiB);
    r.clear_volume_path();
    return c().C(&Nd::NodeExpandVolume, r);
  });

  for (const auto& tc : cases) {
    grpc::Status st = tc.call();
    EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT)
        << tc.what << ": " << st.error_code() << " " << st.error_message();
    EXPECT_FALSE(st.error_message().empty()) << tc.what;
    EXPECT_TRUE(st.error_details().empty()) << tc.what;
  }
  // Nothing was created or mounted by the refused calls.
  EXPECT_TRUE(MountsUnder(s().kubelet_root()).empty());
  EXPECT_FALSE(std::filesystem::exists(c().Target(pv)));
  csi::v1::ListVolumesResponse lv;
  ASSERT_TRUE(c().C(&Ctl::ListVolumes, csi::v1::ListVolumesRequest(), &lv).ok());
  EXPECT_EQ(lv.entries_size(), before.entries_size()) << "a refused CreateVolume created one";
  ASSERT_TRUE(c().C(&Ctl::DeleteVolume, c().DeleteReq(id)).ok());
}

// The whole life of a filesystem volume, every mutating call made 5 times,
// and the directory contract checked on the way.
// covers: Stack.MUST.every_mutating_call_idempotent_5x
// covers: CreateVolume.MUST.idempotent, DeleteVolume.MUST.idempotent
// covers: ControllerPublishVolume.MUST.idempotent, ControllerUnpublishVolume.MUST.idempotent
// covers: CreateSnapshot.MUST.idempotent, DeleteSnapshot.MUST.idempotent
// covers: ControllerExpandVolume.MUST.idempotent, NodeExpandVolume.MUST.idempotent
// covers: NodeStageVolume.MUST.idempotent, NodeUnstageVolume.MUST.idempotent
// covers: NodePublishVolume.MUST.idempotent, NodeUnpublishVolume.MUST.idempotent
// covers: NodeStageVolume.MUST.staging_path_used_as_is
// covers: NodeUnstageVolume.MUST.staging_path_left_to_co
// covers: NodePublishVolume.MUST.target_created_by_sp
// covers: NodeUnpublishVolume.MUST.target_removed_by_sp
// covers: NodeUnpublishVolume.MUST.delete_target, NodeUnstageVolume.MUST.undo_stage
// covers: Stack.MUST.volume_expands_online_end_to_end
// covers: ControllerExpandVolume.MUST.node_expansion_required
// covers: Stack.MUST.snapshot_restore_has_source_data, DeleteVolume.MUST.snapshots_survive
// covers: Stack.MUST.deleted_volume_leaves_nothing, CreateSnapshot.MUST.ready_to_use
// covers: ControllerPublishVolume.MUST.publish_context, NodeGetVolumeStats.MUST.total_and_unit
TEST_F(Conformance, FilesystemLifecycleEveryCallFiveTimes) {
  constexpr int kRepeats = 5;
  // xfs: it grows online with CAP_SYS_ADMIN alone; ext4 online growth needs
  // CAP_SYS_RESOURCE, which sandboxed CI hosts may not grant the helper.
  const csi::v1::VolumeCapability cap = MountCap("xfs");
  const std::string pv = "pv-life";
  std::string id;
  for (int i = 0; i < kRepeats; ++i) {
    csi::v1::CreateVolumeResponse r;
    grpc::Status st = c().C(&Ctl::CreateVolume, c().CreateReq("conf-life", kGiB, cap), &r);
    ASSERT_TRUE(st.ok()) << st.error_message();
    if (i == 0) id = r.volume().volume_id();
    EXPECT_EQ(r.volume().volume_id(), id);
    EXPECT_GE(r.volume().capacity_bytes(), kGiB);
  }
  google::protobuf::Map<std::string, std::string> context;
  for (int i = 0; i < kRepeats; ++i) {
    csi::v1::ControllerPublishVolumeResponse r;
    grpc::Status st = c().C(&Ctl::ControllerPublishVolume, c().PublishReq(id, cap), &r);
    ASSERT_TRUE(st.ok()) << st.error_message();
    if (i == 0) context = r.publish_context();
    EXPECT_FALSE(r.publish_context().empty());
    EXPECT_EQ(r.publish_context().size(), context.size());
  }
  ASSERT_TRUE(context.count(csictx::kSubsysNqn));

  c().PrepareNodeDirs(pv);
  for (int i = 0; i < kRepeats; ++i) {
    grpc::Status st = c().C(&Nd::NodeStageVolume, c().StageReq(id, pv, context, cap));
    ASSERT_TRUE(st.ok()) << i << ": " << st.error_message();
  }
  // The staging path itself is the mount point: no sub-directory of ours.
  EXPECT_TRUE(IsMountPoint(c().Staging(pv)));
  EXPECT_EQ(MountsUnder(c().Staging(pv)).size(), 1u);
  ASSERT_FALSE(std::filesystem::exists(c().Target(pv))) << "the CO does not create the target";
  for (int i = 0; i < kRepeats; ++i) {
    grpc::Status st = c().C(&Nd::NodePublishVolume, c().NodePublishReq(id, pv, context, cap));
    ASSERT_TRUE(st.ok()) << i << ": " << st.error_message();
  }
  EXPECT_TRUE(std::filesystem::is_directory(c().Target(pv)));
  EXPECT_TRUE(IsMountPoint(c().Target(pv)));
  {
    std::ofstream out(c().Target(pv) + "/data.txt");
    out << "conformance-data";
  }
  ::sync();

  csi::v1::NodeGetVolumeStatsRequest sreq;
  sreq.set_volume_id(id);
  sreq.set_volume_path(c().Target(pv));
  csi::v1::NodeGetVolumeStatsResponse sresp;
  ASSERT_TRUE(c().C(&Nd::NodeGetVolumeStats, sreq, &sresp).ok());
  ASSERT_GT(sresp.usage_size(), 0);
  EXPECT_GT(sresp.usage(0).total(), 0);

  std::string snap;
  for (int i = 0; i < kRepeats; ++i) {
    csi::v1::CreateSnapshotResponse r;
    grpc::Status st = c().C(&Ctl::CreateSnapshot, c().SnapshotReq(id, "conf-life-snap"), &r);
    ASSERT_TRUE(st.ok()) << st.error_message();
    if (i == 0) snap = r.snapshot().snapshot_id();
    EXPECT_EQ(r.snapshot().snapshot_id(), snap);
    EXPECT_EQ(r.snapshot().source_volume_id(), id);
    EXPECT_TRUE(r.snapshot().ready_to_use());
  }

  // Online expansion: controller then node, each 5 times.
  for (int i = 0; i < kRepeats; ++i) {
    csi::v1::ControllerExpandVolumeResponse r;
    grpc::Status st = c().C(&Ctl::ControllerExpandVolume, c().ExpandReq(id, 2 * kGiB), &r);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_GE(r.capacity_bytes(), 2 * kGiB);
    EXPECT_TRUE(r.node_expansion_required());
  }
  for (int i = 0; i < kRepeats; ++i) {
    csi::v1::NodeExpandVolumeResponse r;
    grpc::Status st = c().C(&Nd::NodeExpandVolume, c().NodeExpandReq(id, pv, 2 * kGiB, cap), &r);
    ASSERT_TRUE(st.ok()) << i << ": " << st.error_message();
  }
  struct statvfs vfs {};
  ASSERT_EQ(::statvfs(c().Target(pv).c_str(), &vfs), 0);
  EXPECT_GT(static_cast<int64_t>(vfs.f_blocks) * static_cast<int64_t>(vfs.f_frsize),
            kGiB + kGiB / 2)
      << "the filesystem did not grow";

  for (int i = 0; i < kRepeats; ++i) {
    grpc::Status st = c().C(&Nd::NodeUnpublishVolume, c().NodeUnpublishReq(id, pv));
    ASSERT_TRUE(st.ok()) << i << ": " << st.error_message();
    EXPECT_FALSE(std::filesystem::exists(c().Target(pv))) << "the SP removes the target";
  }
  for (int i = 0; i < kRepeats; ++i) {
    grpc::Status st = c().C(&Nd::NodeUnstageVolume, c().UnstageReq(id, pv));
    ASSERT_TRUE(st.ok()) << i << ": " << st.error_message();
  }
  EXPECT_FALSE(IsMountPoint(c().Staging(pv)));
  EXPECT_TRUE(std::filesystem::is_directory(c().Staging(pv))) << "the CO's staging dir stays";
  for (int i = 0; i < kRepeats; ++i) {
    grpc::Status st = c().C(&Ctl::ControllerUnpublishVolume, c().UnpublishReq(id));
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  for (int i = 0; i < kRepeats; ++i) {
    grpc::Status st = c().C(&Ctl::DeleteVolume, c().DeleteReq(id));
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  // The snapshot outlives its volume and restores the data that was written.
  csi::v1::CreateVolumeRequest restore = c().CreateReq("conf-life-restore", 2 * kGiB);
  restore.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(snap);
  csi::v1::CreateVolumeResponse restored;
  grpc::Status st = c().C(&Ctl::CreateVolume, restore, &restored);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string rid = restored.volume().volume_id();
  csi::v1::ControllerPublishVolumeResponse rp;
  ASSERT_TRUE(c().C(&Ctl::ControllerPublishVolume, c().PublishReq(rid), &rp).ok());
  const std::string rpv = "pv-life-restore";
  c().PrepareNodeDirs(rpv);
  st = c().C(&Nd::NodeStageVolume, c().StageReq(rid, rpv, rp.publish_context(), cap));
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = c().C(&Nd::NodePublishVolume, c().NodePublishReq(rid, rpv, rp.publish_context(), cap));
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::string got;
  {
    std::ifstream in(c().Target(rpv) + "/data.txt");
    std::getline(in, got);
  }
  EXPECT_EQ(got, "conformance-data");
  ASSERT_TRUE(c().C(&Nd::NodeUnpublishVolume, c().NodeUnpublishReq(rid, rpv)).ok());
  ASSERT_TRUE(c().C(&Nd::NodeUnstageVolume, c().UnstageReq(rid, rpv)).ok());
  UnpublishAndDelete(rid);
  for (int i = 0; i < kRepeats; ++i) {
    st = c().C(&Ctl::DeleteSnapshot, c().DeleteSnapshotReq(snap));
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  // Nothing is left: no mounts, no loop devices, no records, no LightOS objects.
  EXPECT_TRUE(MountsUnder(s().kubelet_root()).empty());
  EXPECT_TRUE(LoopDevicesBackedBy(s().sim_volumes_dir() + "/", false).empty());
  csi::v1::ListVolumesResponse lv;
  ASSERT_TRUE(c().C(&Ctl::ListVolumes, csi::v1::ListVolumesRequest(), &lv).ok());
  EXPECT_EQ(lv.entries_size(), 0);
  csi::v1::ListSnapshotsResponse ls;
  ASSERT_TRUE(c().C(&Ctl::ListSnapshots, csi::v1::ListSnapshotsRequest(), &ls).ok());
  EXPECT_EQ(ls.entries_size(), 0);
  int images = 0;
  for (const auto& e : std::filesystem::directory_iterator(s().sim_volumes_dir())) {
    images += e.path().extension() == ".img";
  }
  EXPECT_EQ(images, 0);
  EXPECT_TRUE(std::filesystem::is_empty(s().agent_state_dir() + "/volumes"));
}

// covers: NodePublishVolume.MUST.block_at_target
TEST_F(Conformance, BlockVolumeIsADeviceAtTheTarget) {
  const std::string pv = "pv-block";
  Published p = CreateAndPublish("conf-block", BlockCap());
  c().PrepareNodeDirs(pv);
  grpc::Status st = c().C(&Nd::NodeStageVolume, c().StageReq(p.id, pv, p.context, BlockCap()));
  ASSERT_TRUE(st.ok()) << st.error_message();
  for (int i = 0; i < 5; ++i) {
    st = c().C(&Nd::NodePublishVolume, c().NodePublishReq(p.id, pv, p.context, BlockCap()));
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  struct stat sb {};
  ASSERT_EQ(::stat(c().Target(pv).c_str(), &sb), 0);
  EXPECT_TRUE(S_ISBLK(sb.st_mode));
  EXPECT_TRUE(IsMountPoint(c().Target(pv)));
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(c().C(&Nd::NodeUnpublishVolume, c().NodeUnpublishReq(p.id, pv)).ok());
  }
  EXPECT_FALSE(std::filesystem::exists(c().Target(pv)));
  ASSERT_TRUE(c().C(&Nd::NodeUnstageVolume, c().UnstageReq(p.id, pv)).ok());
  UnpublishAndDelete(p.id);
}

// A StorageClass's mkfs options travel CreateVolume -> volume context -> NodeStage -> helper ->
// spawner, and the filesystem the pod sees has them.
TEST_F(Conformance, StorageClassMkfsOptionsShapeTheFilesystem) {
  const std::string pv = "pv-mkfs";
  auto create = c().CreateReq("conf-mkfs", kGiB, MountCap("ext4"));
  (*create.mutable_parameters())["mkfs-block-size"] = "1024";
  (*create.mutable_parameters())["mkfs-bytes-per-inode"] = "65536";
  csi::v1::CreateVolumeResponse cr;
  grpc::Status st = c().C(&Ctl::CreateVolume, create, &cr);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string id = cr.volume().volume_id();
  EXPECT_EQ(cr.volume().volume_context().at("mkfs-block-size"), "1024");
  csi::v1::ControllerPublishVolumeResponse pr;
  ASSERT_TRUE(c().C(&Ctl::ControllerPublishVolume, c().PublishReq(id, MountCap("ext4")), &pr).ok());
  c().PrepareNodeDirs(pv);
  auto stage = c().StageReq(id, pv, pr.publish_context(), MountCap("ext4"));
  *stage.mutable_volume_context() = cr.volume().volume_context();
  st = c().C(&Nd::NodeStageVolume, stage);
  ASSERT_TRUE(st.ok()) << st.error_message();
  auto publish = c().NodePublishReq(id, pv, pr.publish_context(), MountCap("ext4"));
  *publish.mutable_volume_context() = cr.volume().volume_context();
  st = c().C(&Nd::NodePublishVolume, publish);
  ASSERT_TRUE(st.ok()) << st.error_message();
  struct statvfs vfs {};
  ASSERT_EQ(::statvfs(c().Target(pv).c_str(), &vfs), 0);
  EXPECT_EQ(vfs.f_bsize, 1024u);
  // 1 GiB at one inode per 64 KiB: 16384 inodes, where mkfs's default (16 KiB) gives 65536.
  EXPECT_LE(vfs.f_files, 16384u);
  EXPECT_GT(vfs.f_files, 8192u);
  ASSERT_TRUE(c().C(&Nd::NodeUnpublishVolume, c().NodeUnpublishReq(id, pv)).ok());
  ASSERT_TRUE(c().C(&Nd::NodeUnstageVolume, c().UnstageReq(id, pv)).ok());
  UnpublishAndDelete(id);
}

// covers: ControllerPublishVolume.E.NOT_FOUND.volume, ValidateVolumeCapabilities.E.NOT_FOUND
// covers: ControllerGetVolume.E.NOT_FOUND, ControllerExpandVolume.E.NOT_FOUND
// covers: ControllerModifyVolume.E.NOT_FOUND, GetSnapshot.E.NOT_FOUND
// covers: CreateVolume.E.NOT_FOUND.source
// covers: DeleteVolume.MUST.ok_when_not_found, DeleteSnapshot.MUST.ok_when_not_found
// covers: ControllerUnpublishVolume.E.NOT_FOUND.volume, NodeStageVolume.E.NOT_FOUND.volume_missing
// covers: NodeGetVolumeStats.E.NOT_FOUND.volume_missing
// covers: NodeExpandVolume.E.NOT_FOUND.volume_missing
// covers: NodeUnstageVolume.MUST.not_staged_ok
TEST_F(Conformance, MissingObjectsAreNotFoundOrAlreadyGone) {
  const std::string missing = WellFormedMissingId();
  EXPECT_EQ(c().C(&Ctl::ControllerPublishVolume, c().PublishReq(missing)).error_code(),
            StatusCode::NOT_FOUND);
  csi::v1::ValidateVolumeCapabilitiesRequest vr;
  vr.set_volume_id(missing);
  *vr.add_volume_capabilities() = MountCap();
  for (const auto& [k, v] : s().Secrets()) (*vr.mutable_secrets())[k] = v;
  EXPECT_EQ(c().C(&Ctl::ValidateVolumeCapabilities, vr).error_code(), StatusCode::NOT_FOUND);
  csi::v1::ControllerGetVolumeRequest gr;
  gr.set_volume_id(missing);
  EXPECT_EQ(c().C(&Ctl::ControllerGetVolume, gr).error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(c().C(&Ctl::ControllerExpandVolume, c().ExpandReq(missing, 2 * kGiB)).error_code(),
            StatusCode::NOT_FOUND);
  csi::v1::ControllerModifyVolumeRequest mr;
  mr.set_volume_id(missing);
  (*mr.mutable_mutable_parameters())["qos-policy-name"] = "gold";
  for (const auto& [k, v] : s().Secrets()) (*mr.mutable_secrets())[k] = v;
  EXPECT_EQ(c().C(&Ctl::ControllerModifyVolume, mr).error_code(), StatusCode::NOT_FOUND);
  const std::string missing_snap = "mgmt:" + s().mgmt() + "|nguid:" + kMissingUuid + "|scheme:grpc";
  csi::v1::GetSnapshotRequest gs;
  gs.set_snapshot_id(missing_snap);
  for (const auto& [k, v] : s().Secrets()) (*gs.mutable_secrets())[k] = v;
  EXPECT_EQ(c().C(&Ctl::GetSnapshot, gs).error_code(), StatusCode::NOT_FOUND);
  auto from_missing = c().CreateReq("conf-from-missing");
  from_missing.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(missing_snap);
  EXPECT_EQ(c().C(&Ctl::CreateVolume, from_missing).error_code(), StatusCode::NOT_FOUND);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(c().C(&Ctl::DeleteVolume, c().DeleteReq(missing)).ok());
    EXPECT_TRUE(c().C(&Ctl::DeleteSnapshot, c().DeleteSnapshotReq(missing_snap)).ok());
    EXPECT_TRUE(c().C(&Ctl::ControllerUnpublishVolume, c().UnpublishReq(missing)).ok());
  }

  // Node side. The node has no LightOS access: a volume id that cannot name a
  // volume of ours is NOT_FOUND at once; a well-formed id whose namespace never
  // shows up is FAILED_PRECONDITION after the attach timeout (the node cannot
  // tell "deleted" from "not in the ACL"), which is not exercised here.
  const std::string pv = "pv-missing";
  c().PrepareNodeDirs(pv);
  google::protobuf::Map<std::string, std::string> context;
  context[csictx::kSubsysNqn] = "nqn.2016-01.com.lightbitslabs:uuid:missing";
  context[csictx::kNvmeEndpoints] = "127.0.0.1:4420";
  grpc::Status st = c().C(&Nd::NodeStageVolume, c().StageReq("pvc-not-one-of-ours", pv, context));
  EXPECT_EQ(st.error_code(), StatusCode::NOT_FOUND) << st.error_message();
  EXPECT_FALSE(IsMountPoint(c().Staging(pv)));
  csi::v1::NodeGetVolumeStatsRequest sr;
  sr.set_volume_id(missing);
  sr.set_volume_path(c().Target(pv));
  EXPECT_EQ(c().C(&Nd::NodeGetVolumeStats, sr).error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(c().C(&Nd::NodeExpandVolume, c().NodeExpandReq(missing, pv, 2 * kGiB)).error_code(),
            StatusCode::NOT_FOUND);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(c().C(&Nd::NodeUnstageVolume, c().UnstageReq(missing, pv)).ok());
    EXPECT_TRUE(c().C(&Nd::NodeUnpublishVolume, c().NodeUnpublishReq(missing, pv)).ok());
  }
}

// covers: CreateVolume.E.ALREADY_EXISTS, CreateSnapshot.E.ALREADY_EXISTS
// covers: NodeStageVolume.E.ALREADY_EXISTS.incompatible
// covers: NodePublishVolume.E.ALREADY_EXISTS.incompatible
// covers: NodePublishVolume.Table.same_target_diff_args_already_exists
// covers: DeleteVolume.E.FAILED_PRECONDITION, ControllerPublishVolume.E.FAILED_PRECONDITION
TEST_F(Conformance, IncompatibleRepeatsAreAlreadyExists) {
  Published p = CreateAndPublish("conf-exists");
  auto bigger = c().CreateReq("conf-exists", 5 * kGiB);
  bigger.mutable_capacity_range()->set_limit_bytes(5 * kGiB);
  grpc::Status st = c().C(&Ctl::CreateVolume, bigger);
  EXPECT_EQ(st.error_code(), StatusCode::ALREADY_EXISTS) << st.error_message();

  csi::v1::CreateVolumeResponse other;
  ASSERT_TRUE(c().C(&Ctl::CreateVolume, c().CreateReq("conf-exists-other"), &other).ok());
  ASSERT_TRUE(c().C(&Ctl::CreateSnapshot, c().SnapshotReq(p.id, "conf-exists-snap")).ok());
  st = c().C(&Ctl::CreateSnapshot, c().SnapshotReq(other.volume().volume_id(), "conf-exists-snap"));
  EXPECT_EQ(st.error_code(), StatusCode::ALREADY_EXISTS) << st.error_message();

  // Published here, single-node writer: another node and deletion are refused.
  st = c().C(&Ctl::ControllerPublishVolume, c().PublishReq(p.id, MountCap(), "other.node"));
  EXPECT_EQ(st.error_code(), StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_NE(st.error_message().find(Stack::kNodeId), std::string::npos) << st.error_message();
  st = c().C(&Ctl::DeleteVolume, c().DeleteReq(p.id));
  EXPECT_EQ(st.error_code(), StatusCode::FAILED_PRECONDITION) << st.error_message();

  const std::string pv = "pv-exists";
  c().PrepareNodeDirs(pv);
  ASSERT_TRUE(c().C(&Nd::NodeStageVolume, c().StageReq(p.id, pv, p.context)).ok());
  st = c().C(&Nd::NodeStageVolume, c().StageReq(p.id, pv, p.context, MountCap("xfs")));
  EXPECT_EQ(st.error_code(), StatusCode::ALREADY_EXISTS) << st.error_message();
  ASSERT_TRUE(c().C(&Nd::NodePublishVolume, c().NodePublishReq(p.id, pv, p.context)).ok());
  st = c().C(&Nd::NodePublishVolume,
             c().NodePublishReq(p.id, pv, p.context, MountCap(), /*readonly=*/true));
  EXPECT_EQ(st.error_code(), StatusCode::ALREADY_EXISTS) << st.error_message();
  ASSERT_TRUE(c().C(&Nd::NodeUnpublishVolume, c().NodeUnpublishReq(p.id, pv)).ok());
  ASSERT_TRUE(c().C(&Nd::NodeUnstageVolume, c().UnstageReq(p.id, pv)).ok());

  csi::v1::ListSnapshotsRequest lr;
  lr.set_source_volume_id(p.id);
  for (const auto& [k, v] : s().Secrets()) (*lr.mutable_secrets())[k] = v;
  csi::v1::ListSnapshotsResponse ls;
  ASSERT_TRUE(c().C(&Ctl::ListSnapshots, lr, &ls).ok());
  ASSERT_EQ(ls.entries_size(), 1);
  ASSERT_TRUE(
      c().C(&Ctl::DeleteSnapshot, c().DeleteSnapshotReq(ls.entries(0).snapshot().snapshot_id()))
          .ok());
  UnpublishAndDelete(p.id);
  ASSERT_TRUE(c().C(&Ctl::DeleteVolume, c().DeleteReq(other.volume().volume_id())).ok());
}

// covers: CreateVolume.E.INVALID_ARGUMENT.negative_capacity
// covers: ControllerExpandVolume.E.INVALID_ARGUMENT.negative_capacity
// covers: CreateVolume.E.OUT_OF_RANGE, General.E.UNAUTHENTICATED
// covers: General.E.UNAUTHENTICATED.bad_secrets
// covers: General.E.UNIMPLEMENTED.group_controller_service, General.E.UNIMPLEMENTED.not_implemented
// covers: ListVolumes.E.ABORTED, ListSnapshots.E.ABORTED, ListVolumes.MUST.max_entries
// covers: ListVolumes.MUST.next_token
TEST_F(Conformance, ErrorCodesForBadValues) {
  auto negative = c().CreateReq("conf-negative");
  negative.mutable_capacity_range()->set_required_bytes(-1);
  EXPECT_EQ(c().C(&Ctl::CreateVolume, negative).error_code(), StatusCode::INVALID_ARGUMENT);
  auto tiny_limit = c().CreateReq("conf-tiny", 0);
  tiny_limit.mutable_capacity_range()->set_limit_bytes(1 << 20);
  EXPECT_EQ(c().C(&Ctl::CreateVolume, tiny_limit).error_code(), StatusCode::OUT_OF_RANGE);
  auto bad_token = c().CreateReq("conf-bad-token");
  (*bad_token.mutable_secrets())["jwt"] = "not-the-token";
  EXPECT_EQ(c().C(&Ctl::CreateVolume, bad_token).error_code(), StatusCode::UNAUTHENTICATED);

  csi::v1::CreateVolumeResponse a, b;
  ASSERT_TRUE(c().C(&Ctl::CreateVolume, c().CreateReq("conf-list-a"), &a).ok());
  ASSERT_TRUE(c().C(&Ctl::CreateVolume, c().CreateReq("conf-list-b"), &b).ok());
  auto expand = c().ExpandReq(a.volume().volume_id(), -5);
  EXPECT_EQ(c().C(&Ctl::ControllerExpandVolume, expand).error_code(), StatusCode::INVALID_ARGUMENT);

  // Paging: one entry per page, every volume seen once.
  std::set<std::string> seen;
  csi::v1::ListVolumesRequest lr;
  lr.set_max_entries(1);
  for (int page = 0; page < 10; ++page) {
    csi::v1::ListVolumesResponse resp;
    ASSERT_TRUE(c().C(&Ctl::ListVolumes, lr, &resp).ok());
    EXPECT_LE(resp.entries_size(), 1);
    for (const auto& e : resp.entries()) EXPECT_TRUE(seen.insert(e.volume().volume_id()).second);
    if (resp.next_token().empty()) break;
    lr.set_starting_token(resp.next_token());
  }
  EXPECT_TRUE(seen.count(a.volume().volume_id()));
  EXPECT_TRUE(seen.count(b.volume().volume_id()));
  csi::v1::ListVolumesRequest bad;
  bad.set_starting_token("not-a-token");
  EXPECT_EQ(c().C(&Ctl::ListVolumes, bad).error_code(), StatusCode::ABORTED);
  csi::v1::ListSnapshotsRequest bad_snap;
  bad_snap.set_starting_token("not-a-token");
  EXPECT_EQ(c().C(&Ctl::ListSnapshots, bad_snap).error_code(), StatusCode::ABORTED);

  // Services this driver does not serve answer UNIMPLEMENTED on both sockets.
  for (const auto& channel : {s().controller_channel(), s().node_channel()}) {
    auto group = csi::v1::GroupController::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    csi::v1::GroupControllerGetCapabilitiesResponse resp;
    EXPECT_EQ(group->GroupControllerGetCapabilities(&ctx, {}, &resp).error_code(),
              StatusCode::UNIMPLEMENTED);
  }
  ASSERT_TRUE(c().C(&Ctl::DeleteVolume, c().DeleteReq(a.volume().volume_id())).ok());
  ASSERT_TRUE(c().C(&Ctl::DeleteVolume, c().DeleteReq(b.volume().volume_id())).ok());
}

}  // namespace
}  // namespace lbcsi::conformance
