// Snapshots, listings, capacity and capabilities against the fake LightOS.
#include <set>

#include <gmock/gmock.h>

#include <condition_variable>
#include <thread>

#include "common/strings.h"
#include "controller/list_token.h"
#include "tests/controller/controller_test_util.h"

namespace lbcsi::testing {
namespace {

using ::testing::HasSubstr;
using Rpc = csi::v1::ControllerServiceCapability::RPC;
constexpr int64_t kGiB = int64_t{1} << 30;

// covers: CreateSnapshot.MUST.idempotent, CreateSnapshot.MUST.ready_to_use
TEST_F(ControllerTest, CreateSnapshotIsIdempotent) {
  std::string vol = MustCreate("v", 2 * kGiB);
  std::string first;
  for (int i = 0; i < 5; ++i) {
    csi::v1::CreateSnapshotResponse resp;
    ASSERT_TRUE(Snap(vol, "snap-a", &resp).ok());
    if (i == 0) first = resp.snapshot().snapshot_id();
    EXPECT_EQ(resp.snapshot().snapshot_id(), first);
    EXPECT_TRUE(resp.snapshot().ready_to_use());
    EXPECT_EQ(resp.snapshot().source_volume_id(), vol);
    EXPECT_EQ(resp.snapshot().size_bytes(), 2 * kGiB);
    EXPECT_GT(resp.snapshot().creation_time().seconds(), 0);
  }
  ASSERT_EQ(cluster_->Snapshots().size(), 1u);
  EXPECT_EQ(first, "mgmt:10.0.0.1:443,10.0.0.2:443|nguid:" + cluster_->Snapshots()[0].uuid +
                       "|scheme:grpcs");
}

// covers: CreateSnapshot.E.ALREADY_EXISTS, CreateSnapshot.E.RESOURCE_EXHAUSTED
TEST_F(ControllerTest, CreateSnapshotErrors) {
  std::string a = MustCreate("a"), b = MustCreate("b");
  csi::v1::CreateSnapshotResponse resp;
  ASSERT_TRUE(Snap(a, "s", &resp).ok());
  EXPECT_EQ(Snap(b, "s", &resp).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Snap("", "s2", &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Snap(a, "", &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Snap("junk", "s3", &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  cluster_->fault = [](const std::string& op) {
    return op == "CreateSnapshot" ? absl::ResourceExhaustedError("no space for the snapshot")
                                  : absl::OkStatus();
  };
  EXPECT_EQ(Snap(a, "s4", &resp).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// covers: DeleteSnapshot.MUST.idempotent, DeleteSnapshot.MUST.ok_when_not_found, DeleteSnapshot.E.INVALID_ARGUMENT.group, DeleteSnapshot.E.FAILED_PRECONDITION, DeleteSnapshot.E.ABORTED
TEST_F(ControllerTest, DeleteSnapshot) {
  std::string vol = MustCreate("v");
  csi::v1::CreateSnapshotResponse snap;
  ASSERT_TRUE(Snap(vol, "s", &snap).ok());
  auto call = [&](const std::string& id) {
    csi::v1::DeleteSnapshotRequest r;
    r.set_snapshot_id(id);
    (*r.mutable_secrets())["jwt"] = "good-token";
    csi::v1::DeleteSnapshotResponse resp;
    grpc::ServerContext ctx;
    return service_->DeleteSnapshot(&ctx, &r, &resp);
  };
  // LightOS refusing (e.g. in use) is passed through.
  cluster_->fault = [](const std::string& op) {
    return op == "DeleteSnapshot" ? absl::FailedPreconditionError("snapshot in use")
                                  : absl::OkStatus();
  };
  EXPECT_EQ(call(snap.snapshot().snapshot_id()).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  cluster_->fault = nullptr;
  // No group snapshots exist in this driver: every snapshot deletes standalone.
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(call(snap.snapshot().snapshot_id()).ok());
  EXPECT_TRUE(cluster_->Snapshots().empty());
  EXPECT_TRUE(call("junk").ok());
  EXPECT_EQ(call("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // A delete while another call holds the snapshot: ABORTED.
  ASSERT_TRUE(Snap(vol, "s2", &snap).ok());
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, release = false;
  cluster_->fault = [&](const std::string& op) {
    if (op != "DeleteSnapshot") return absl::OkStatus();
    std::unique_lock<std::mutex> lock(mu);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    return absl::OkStatus();
  };
  std::thread first([&] { EXPECT_TRUE(call(snap.snapshot().snapshot_id()).ok()); });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return entered; });
  }
  EXPECT_EQ(call(snap.snapshot().snapshot_id()).error_code(), grpc::StatusCode::ABORTED);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  first.join();
}

// covers: GetSnapshot.E.NOT_FOUND, GetSnapshot.MUST.not_ready_retrievable
TEST_F(ControllerTest, GetSnapshot) {
  std::string vol = MustCreate("v");
  csi::v1::CreateSnapshotResponse snap;
  ASSERT_TRUE(Snap(vol, "s", &snap).ok());
  auto call = [&](const std::string& id, csi::v1::GetSnapshotResponse* resp) {
    csi::v1::GetSnapshotRequest r;
    r.set_snapshot_id(id);
    (*r.mutable_secrets())["jwt"] = "good-token";
    grpc::ServerContext ctx;
    return service_->GetSnapshot(&ctx, &r, resp);
  };
  csi::v1::GetSnapshotResponse resp;
  // GET_SNAPSHOT is alpha: served only when the controller opts in.
  grpc::Status off = call(snap.snapshot().snapshot_id(), &resp);
  EXPECT_EQ(off.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(off.error_message(), ::testing::HasSubstr("--alpha-capabilities"));
  MakeService({}, /*alpha_capabilities=*/true);
  ASSERT_TRUE(call(snap.snapshot().snapshot_id(), &resp).ok());
  EXPECT_EQ(resp.snapshot().source_volume_id(), vol);
  EXPECT_TRUE(resp.snapshot().ready_to_use());
  // Not cut yet: still retrievable, not ready.
  std::string uuid = cluster_->Snapshots()[0].uuid;
  cluster_->MutateSnapshot(
      uuid, [](lightos::Snapshot& s) { s.state = lightos::SnapshotState::kCreating; });
  ASSERT_TRUE(call(snap.snapshot().snapshot_id(), &resp).ok());
  EXPECT_FALSE(resp.snapshot().ready_to_use());
  ASSERT_TRUE(cluster_->DeleteSnapshot("", uuid).ok());
  EXPECT_EQ(call(snap.snapshot().snapshot_id(), &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(call("junk", &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ControllerTest, ListVolumesNeedsClusterConfig) {
  csi::v1::ListVolumesRequest r;
  csi::v1::ListVolumesResponse resp;
  grpc::ServerContext ctx;
  EXPECT_EQ(service_->ListVolumes(&ctx, &r, &resp).error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

// covers: ListVolumes.MUST.max_entries, ListVolumes.MUST.next_token, ListVolumes.E.ABORTED
TEST_F(ControllerTest, ListVolumesPaginates) {
  MakeService({std::string(kEndpoints) + "|scheme:grpcs"});
  std::set<std::string> created;
  for (int i = 0; i < 7; ++i) created.insert(MustCreate(Cat("lv-", i)));
  ASSERT_TRUE(Publish(PublishReq(*created.begin(), "n1.node")).ok());
  std::set<std::string> seen;
  std::string token;
  int pages = 0;
  bool saw_published = false;
  do {
    csi::v1::ListVolumesRequest r;
    r.set_max_entries(3);
    r.set_starting_token(token);
    csi::v1::ListVolumesResponse resp;
    grpc::ServerContext ctx;
    ASSERT_TRUE(service_->ListVolumes(&ctx, &r, &resp).ok());
    EXPECT_LE(resp.entries_size(), 3);
    for (const auto& e : resp.entries()) {
      EXPECT_TRUE(seen.insert(e.volume().volume_id()).second);
      EXPECT_TRUE(e.status().has_volume_condition());
      if (e.status().published_node_ids_size() == 1) saw_published = true;
    }
    token = resp.next_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(seen, created);
  EXPECT_EQ(pages, 3);
  EXPECT_TRUE(saw_published);

  csi::v1::ListVolumesRequest bad;
  bad.set_starting_token("garbage");
  csi::v1::ListVolumesResponse resp;
  grpc::ServerContext ctx;
  EXPECT_EQ(service_->ListVolumes(&ctx, &bad, &resp).error_code(), grpc::StatusCode::ABORTED);
  bad.set_starting_token(controller::EncodeListToken({5, ""}));
  grpc::ServerContext ctx2;
  EXPECT_EQ(service_->ListVolumes(&ctx2, &bad, &resp).error_code(), grpc::StatusCode::ABORTED);
}

// covers: ListSnapshots.MUST.max_entries, ListSnapshots.MUST.no_uncut, ListSnapshots.MUST.by_snapshot_id, ListSnapshots.MUST.by_source_volume, ListSnapshots.E.ABORTED
TEST_F(ControllerTest, ListSnapshots) {
  MakeService({kEndpoints});
  std::string a = MustCreate("a"), b = MustCreate("b");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    csi::v1::CreateSnapshotResponse r;
    ASSERT_TRUE(Snap(i < 3 ? a : b, Cat("s", i), &r).ok());
    ids.push_back(r.snapshot().snapshot_id());
  }
  auto list = [&](csi::v1::ListSnapshotsRequest r, csi::v1::ListSnapshotsResponse* resp) {
    (*r.mutable_secrets())["jwt"] = "good-token";
    resp->Clear();  // as gRPC hands every call a fresh response
    grpc::ServerContext ctx;
    return service_->ListSnapshots(&ctx, &r, resp);
  };
  // Everything, two at a time.
  std::set<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    csi::v1::ListSnapshotsRequest r;
    r.set_max_entries(2);
    r.set_starting_token(token);
    csi::v1::ListSnapshotsResponse resp;
    ASSERT_TRUE(list(r, &resp).ok());
    EXPECT_LE(resp.entries_size(), 2);
    for (const auto& e : resp.entries()) seen.insert(e.snapshot().snapshot_id());
    token = resp.next_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(seen, std::set<std::string>(ids.begin(), ids.end()));

  // By source volume.
  csi::v1::ListSnapshotsRequest by_src;
  by_src.set_source_volume_id(b);
  csi::v1::ListSnapshotsResponse resp;
  ASSERT_TRUE(list(by_src, &resp).ok());
  ASSERT_EQ(resp.entries_size(), 2);
  for (const auto& e : resp.entries()) EXPECT_EQ(e.snapshot().source_volume_id(), b);

  // By id, and an unknown id is an empty list.
  csi::v1::ListSnapshotsRequest by_id;
  by_id.set_snapshot_id(ids[0]);
  ASSERT_TRUE(list(by_id, &resp).ok());
  ASSERT_EQ(resp.entries_size(), 1);
  EXPECT_EQ(resp.entries(0).snapshot().snapshot_id(), ids[0]);
  EXPECT_EQ(resp.entries(0).snapshot().source_volume_id(), a);
  by_id.set_snapshot_id("junk");
  csi::v1::ListSnapshotsResponse empty;
  ASSERT_TRUE(list(by_id, &empty).ok());
  EXPECT_EQ(empty.entries_size(), 0);

  // Not cut yet: not listed.
  std::string uuid = cluster_->Snapshots()[0].uuid;
  cluster_->MutateSnapshot(
      uuid, [](lightos::Snapshot& s) { s.state = lightos::SnapshotState::kCreating; });
  csi::v1::ListSnapshotsRequest all;
  ASSERT_TRUE(list(all, &resp).ok());
  EXPECT_EQ(resp.entries_size(), 4);

  csi::v1::ListSnapshotsRequest bad;
  bad.set_starting_token("nope");
  EXPECT_EQ(list(bad, &resp).error_code(), grpc::StatusCode::ABORTED);
}

// covers: GetCapacity.MUST.capabilities_considered, GetCapacity.MUST.non_negative
TEST_F(ControllerTest, GetCapacity) {
  MakeService({std::string(kEndpoints) + "|proj:a", std::string(kEndpoints) + "|proj:b"});
  auto call = [&](csi::v1::GetCapacityRequest r, csi::v1::GetCapacityResponse* resp) {
    grpc::ServerContext ctx;
    return service_->GetCapacity(&ctx, &r, resp);
  };
  csi::v1::GetCapacityResponse resp;
  ASSERT_TRUE(call({}, &resp).ok());
  EXPECT_EQ(resp.available_capacity(), int64_t{100} << 30);  // one cluster counted once
  EXPECT_EQ(resp.minimum_volume_size().value(), kGiB);
  csi::v1::GetCapacityRequest with_params;
  (*with_params.mutable_parameters())["mgmt-endpoint"] = kEndpoints;
  (*with_params.mutable_parameters())["replica-count"] = "1";
  ASSERT_TRUE(call(with_params, &resp).ok());
  EXPECT_GE(resp.available_capacity(), 0);
  csi::v1::GetCapacityRequest rwx_mount;
  *rwx_mount.add_volume_capabilities() =
      MountCap(csi::v1::VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER);
  ASSERT_TRUE(call(rwx_mount, &resp).ok());
  EXPECT_EQ(resp.available_capacity(), 0);
}

// covers: ControllerGetCapabilities.MUST.implemented, ControllerGetCapabilities.MUST.single_node_writer_accepted, ControllerGetCapabilities.MUST.list_published_nodes_requires_publish
TEST_F(ControllerTest, CapabilitiesDependOnClusterConfig) {
  auto caps = [&]() {
    csi::v1::ControllerGetCapabilitiesRequest r;
    csi::v1::ControllerGetCapabilitiesResponse resp;
    grpc::ServerContext ctx;
    EXPECT_TRUE(service_->ControllerGetCapabilities(&ctx, &r, &resp).ok());
    std::set<int> out;
    for (const auto& c : resp.capabilities()) out.insert(c.rpc().type());
    return out;
  };
  std::set<int> base = caps();
  for (auto t :
       {Rpc::CREATE_DELETE_VOLUME, Rpc::PUBLISH_UNPUBLISH_VOLUME, Rpc::CREATE_DELETE_SNAPSHOT,
        Rpc::LIST_SNAPSHOTS, Rpc::CLONE_VOLUME, Rpc::EXPAND_VOLUME, Rpc::PUBLISH_READONLY,
        Rpc::SINGLE_NODE_MULTI_WRITER, Rpc::MODIFY_VOLUME}) {
    EXPECT_TRUE(base.count(t)) << Rpc::Type_Name(t);
  }
  for (auto t : {Rpc::LIST_VOLUMES, Rpc::GET_CAPACITY, Rpc::LIST_VOLUMES_PUBLISHED_NODES,
                 Rpc::GET_SNAPSHOT}) {
    EXPECT_FALSE(base.count(t)) << Rpc::Type_Name(t);
  }
  MakeService({kEndpoints}, /*alpha_capabilities=*/true);
  std::set<int> full = caps();
  EXPECT_TRUE(full.count(Rpc::GET_SNAPSHOT)) << "opted in with --alpha-capabilities";
  for (auto t : {Rpc::LIST_VOLUMES, Rpc::GET_CAPACITY, Rpc::LIST_VOLUMES_PUBLISHED_NODES,
                 Rpc::GET_VOLUME, Rpc::VOLUME_CONDITION, Rpc::PUBLISH_UNPUBLISH_VOLUME}) {
    EXPECT_TRUE(full.count(t)) << Rpc::Type_Name(t);
  }
  // SINGLE_NODE_MULTI_WRITER advertised: plain SINGLE_NODE_WRITER must still work.
  std::string id = MustCreate("snw");
  EXPECT_TRUE(
      Publish(PublishReq(id, "n1.node",
                         MountCap(csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER)))
          .ok());
}

}  // namespace
}  // namespace lbcsi::testing
