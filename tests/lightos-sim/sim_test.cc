// In-process tests of lightos-sim's behaviour through the generated DurosAPI stub.
// Each rule tested here is cited from reference/lightos-api.md in README.md.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "tests/lightos-sim/fileops.h"
#include "tests/lightos-sim/simulator.h"
#include "tests/lightos-sim/test_util.h"

namespace lbcsi::sim {
namespace {

using namespace lbcsi::sim::testing;
using grpc::StatusCode;

class SimTest : public ::testing::Test {
 protected:
  void Start(std::chrono::milliseconds create_delay = std::chrono::milliseconds(0),
             std::chrono::milliseconds delete_delay = std::chrono::milliseconds(0)) {
    SimulatorOptions opts;
    opts.cluster.data_dir = dir_.path() + "/data";
    opts.cluster.nvme_endpoints = {"127.0.0.1:4420", "127.0.0.2:4420"};
    opts.cluster.create_delay = create_delay;
    opts.cluster.delete_delay = delete_delay;
    opts.cluster.capacity_bytes = 1ULL << 40;
    opts.listen = {"127.0.0.1:0", "127.0.0.1:0"};
    opts.tokens = {kToken, kOtherToken};
    auto sim = Simulator::Start(std::move(opts));
    ASSERT_TRUE(sim.ok()) << sim.status();
    sim_ = std::move(*sim);
    stub_ = PlainStub(sim_->endpoints()[0]);
    stub1_ = PlainStub(sim_->endpoints()[1]);
  }
  void TearDown() override {
    if (sim_) sim_->Shutdown();
  }

  grpc::Status Create(const std::string& name, api::Volume* out, const std::string& size = "1GiB",
                      const std::string& project = "", uint32_t replicas = 3) {
    api::CreateVolumeRequest req;
    req.set_name(name);
    req.set_size(size);
    req.set_replicacount(replicas);
    req.set_projectname(project);
    return CreateReq(req, out);
  }
  grpc::Status CreateReq(const api::CreateVolumeRequest& req, api::Volume* out) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    return stub_->CreateVolume(&ctx, req, out);
  }
  grpc::Status Get(const std::string& uuid, api::Volume* out, const std::string& project = "") {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    api::GetVolumeRequest req;
    req.set_uuid(uuid);
    req.set_projectname(project);
    return stub_->GetVolume(&ctx, req, out);
  }
  grpc::Status Update(const api::UpdateVolumeRequest& req, const std::string& etag = "") {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    if (!etag.empty()) ctx.AddMetadata("if-match", etag);
    api::UpdateVolumeResponse resp;
    return stub_->UpdateVolume(&ctx, req, &resp);
  }
  grpc::Status Delete(const std::string& uuid, const std::string& project = "") {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    api::DeleteVolumeRequest req;
    req.set_uuid(uuid);
    req.set_projectname(project);
    api::DeleteVolumeResponse resp;
    return stub_->DeleteVolume(&ctx, req, &resp);
  }
  api::Volume CreateAvailable(const std::string& name, const std::string& size = "1GiB") {
    api::Volume v;
    grpc::Status st = Create(name, &v, size);
    EXPECT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(WaitForVolume(stub_.get(), v.uuid(), api::Volume::Available, "", &v));
    return v;
  }
  grpc::Status Snapshot(const std::string& name, const std::string& volume_uuid,
                        api::Snapshot* out) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    api::CreateSnapshotRequest req;
    req.set_name(name);
    req.set_sourcevolumeuuid(volume_uuid);
    return stub_->CreateSnapshot(&ctx, req, out);
  }
  api::Snapshot WaitSnapshot(const std::string& uuid, api::Snapshot::StateEnum state) {
    api::Snapshot s;
    for (int i = 0; i < 1000; ++i) {
      grpc::ClientContext ctx;
      Prepare(&ctx);
      api::GetSnapshotRequest req;
      req.set_uuid(uuid);
      if (stub_->GetSnapshot(&ctx, req, &s).ok() && s.state() == state) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "snapshot " << uuid << " never reached " << state;
    return s;
  }
  api::ClusterInfo Cluster() {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    api::ClusterInfo info;
    EXPECT_TRUE(stub_->GetCluster(&ctx, {}, &info).ok());
    return info;
  }
  void WriteAt(const std::string& path, off_t offset, const std::string& data) {
    int fd = open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(pwrite(fd, data.data(), data.size(), offset), static_cast<ssize_t>(data.size()));
    close(fd);
  }
  std::string ReadAt(const std::string& path, off_t offset, size_t n) {
    std::string buf(n, '\0');
    int fd = open(path.c_str(), O_RDONLY);
    EXPECT_GE(fd, 0) << path;
    EXPECT_EQ(pread(fd, buf.data(), n, offset), static_cast<ssize_t>(n));
    close(fd);
    return buf;
  }

  TempDir dir_;
  std::unique_ptr<Simulator> sim_;
  std::unique_ptr<api::DurosAPI::Stub> stub_, stub1_;
};

TEST_F(SimTest, VersionClusterInfoAndNodes) {
  Start();
  grpc::ClientContext c1;
  Prepare(&c1);
  api::Version version;
  ASSERT_TRUE(stub_->GetVersion(&c1, {}, &version).ok());
  EXPECT_EQ(version.apiversion(), "v2.0");

  grpc::ClientContext c2;
  Prepare(&c2);
  api::ClusterInfoV2 info;
  ASSERT_TRUE(stub_->GetClusterInfo(&c2, {}, &info).ok());
  EXPECT_FALSE(info.subsystemnqn().empty());
  EXPECT_EQ(info.currentmaxreplicas(), 3u);
  EXPECT_EQ(std::vector<std::string>(info.nvmeendpoints().begin(), info.nvmeendpoints().end()),
            (std::vector<std::string>{"127.0.0.1:4420", "127.0.0.2:4420"}));
  EXPECT_EQ(
      std::vector<std::string>(info.discoveryendpoints().begin(), info.discoveryendpoints().end()),
      (std::vector<std::string>{"127.0.0.1:8009", "127.0.0.2:8009"}));
  EXPECT_EQ(std::vector<std::string>(info.apiendpoints().begin(), info.apiendpoints().end()),
            sim_->endpoints());

  grpc::ClientContext c3;
  Prepare(&c3);
  api::ListNodesResponse nodes;
  ASSERT_TRUE(stub_->ListNodes(&c3, {}, &nodes).ok());
  ASSERT_EQ(nodes.nodes_size(), 2);
  EXPECT_EQ(nodes.nodes(1).nvmeendpoint(), "127.0.0.2:4420");
  EXPECT_NE(nodes.nodes(0).uuid(), nodes.nodes(1).uuid());
}

TEST_F(SimTest, StatesMoveOverTime) {
  Start(std::chrono::milliseconds(1500), std::chrono::milliseconds(1500));
  api::Volume v;
  ASSERT_TRUE(Create("slow", &v).ok());
  EXPECT_EQ(v.state(), api::Volume::Creating);
  EXPECT_EQ(v.uuid().size(), 36u);
  api::Volume now;
  ASSERT_TRUE(Get(v.uuid(), &now).ok());
  EXPECT_EQ(now.state(), api::Volume::Creating);
  EXPECT_NE(now.protectionstate(), api::FullyProtected);
  // An update while Creating is refused: the state is not usable yet.
  api::UpdateVolumeRequest up;
  up.set_uuid(v.uuid());
  up.set_size("2GiB");
  EXPECT_EQ(Update(up).error_code(), StatusCode::FAILED_PRECONDITION);

  ASSERT_TRUE(WaitForVolume(stub_.get(), v.uuid(), api::Volume::Available, "", &now));
  EXPECT_EQ(now.protectionstate(), api::FullyProtected);
  EXPECT_NE(now.etag(), v.etag());  // the transition is an update too

  ASSERT_TRUE(Delete(v.uuid()).ok());
  ASSERT_TRUE(Get(v.uuid(), &now).ok());
  EXPECT_EQ(now.state(), api::Volume::Deleting);
  EXPECT_TRUE(Delete(v.uuid()).ok());  // deleting twice is harmless
  ASSERT_TRUE(WaitForVolume(stub_.get(), v.uuid(), api::Volume::Deleted));
  EXPECT_EQ(Get(v.uuid(), &now).error_code(), StatusCode::NOT_FOUND);
  EXPECT_FALSE(std::filesystem::exists(sim_->cluster()->VolumePath(v.uuid())));
  EXPECT_EQ(Delete(v.uuid()).error_code(), StatusCode::NOT_FOUND);
}

TEST_F(SimTest, NamesAreUniquePerProjectAndEmptyProjectIsDefault) {
  Start();
  api::Volume a, b, c;
  ASSERT_TRUE(Create("vol-a", &a).ok());
  EXPECT_EQ(a.projectname(), "default");
  EXPECT_EQ(Create("vol-a", &b).error_code(), StatusCode::ALREADY_EXISTS);
  ASSERT_TRUE(Create("vol-a", &c, "1GiB", "team-b").ok());
  EXPECT_NE(a.uuid(), c.uuid());

  api::Volume got;
  EXPECT_TRUE(Get(a.uuid(), &got, "default").ok());
  EXPECT_EQ(Get(a.uuid(), &got, "team-b").error_code(), StatusCode::NOT_FOUND);
  // Lookup by name within the project.
  grpc::ClientContext ctx;
  Prepare(&ctx);
  api::GetVolumeRequest by_name;
  by_name.set_name("vol-a");
  by_name.set_projectname("team-b");
  ASSERT_TRUE(stub_->GetVolume(&ctx, by_name, &got).ok());
  EXPECT_EQ(got.uuid(), c.uuid());

  EXPECT_EQ(Create("bad name", &b).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Create("ok", &b, "1GiB", "Bad_Project").error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Create("r0", &b, "1GiB", "", 0).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Create("r4", &b, "1GiB", "", 4).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Create("r1", &b, "1GiB", "", 1).ok());
}

TEST_F(SimTest, SizesRoundUpAndOnlyGrow) {
  Start();
  api::Volume v;
  ASSERT_TRUE(Create("odd", &v, "4097b").ok());
  EXPECT_EQ(v.size(), 8192u);
  struct stat st {};
  ASSERT_EQ(stat(sim_->cluster()->VolumePath(v.uuid()).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 8192);
  ASSERT_TRUE(WaitForVolume(stub_.get(), v.uuid(), api::Volume::Available));

  api::UpdateVolumeRequest up;
  up.set_uuid(v.uuid());
  up.set_size("4096");
  EXPECT_EQ(Update(up).error_code(), StatusCode::INVALID_ARGUMENT);
  up.set_size("20000");  // plain decimal, as the shipped plugin sends on update
  ASSERT_TRUE(Update(up).ok());
  ASSERT_TRUE(Get(v.uuid(), &v).ok());
  EXPECT_EQ(v.size(), 20480u);
  ASSERT_EQ(stat(sim_->cluster()->VolumePath(v.uuid()).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 20480);
  up.set_size("banana");
  EXPECT_EQ(Update(up).error_code(), StatusCode::INVALID_ARGUMENT);

  api::Volume big;
  ASSERT_TRUE(Create("big", &big, "10737418240b").ok());
  EXPECT_EQ(big.size(), 10737418240u);
  EXPECT_EQ(Create("zero", &big, "0b").error_code(), StatusCode::INVALID_ARGUMENT);
}

TEST_F(SimTest, EtagGuardsUpdates) {
  Start();
  api::Volume v = CreateAvailable("etag");
  std::string first = v.etag();
  api::UpdateVolumeRequest up;
  up.set_uuid(v.uuid());
  up.mutable_acl()->add_values("nqn.2019-09.com.lightbitslabs:host:n1.node");
  ASSERT_TRUE(Update(up, first).ok());
  // A second writer holding the same (now stale) ETag loses.
  up.mutable_acl()->set_values(0, "nqn.2019-09.com.lightbitslabs:host:n2.node");
  EXPECT_EQ(Update(up, first).error_code(), StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(Get(v.uuid(), &v).ok());
  EXPECT_NE(v.etag(), first);
  EXPECT_EQ(v.acl().values(0), "nqn.2019-09.com.lightbitslabs:host:n1.node");
  // Re-read and retry succeeds; without if-match the update is unconditional.
  ASSERT_TRUE(Update(up, v.etag()).ok());
  ASSERT_TRUE(Update(up).ok());
}

TEST_F(SimTest, AclRulesAndPublishedAclFile) {
  Start();
  api::Volume v = CreateAvailable("acl");
  ASSERT_EQ(v.acl().values_size(), 1);
  EXPECT_EQ(v.acl().values(0), "ALLOW_NONE");
  std::string acl_path = sim_->cluster()->AclPath(v.uuid());
  EXPECT_EQ(*ReadFile(acl_path), "ALLOW_NONE\n");

  std::string n1 = "nqn.2019-09.com.lightbitslabs:host:n1.node";
  std::string n2 = "nqn.2019-09.com.lightbitslabs:host:n2.node";
  api::UpdateVolumeRequest up;
  up.set_uuid(v.uuid());
  up.mutable_acl()->add_values(n1);
  up.mutable_acl()->add_values(n2);
  ASSERT_TRUE(Update(up).ok());
  EXPECT_EQ(*ReadFile(acl_path), n1 + "\n" + n2 + "\n");

  api::UpdateVolumeRequest mixed = up;
  mixed.mutable_acl()->add_values("ALLOW_ANY");
  EXPECT_EQ(Update(mixed).error_code(), StatusCode::INVALID_ARGUMENT);
  api::UpdateVolumeRequest too_long;
  too_long.set_uuid(v.uuid());
  too_long.mutable_acl()->add_values(std::string(224, 'q'));
  EXPECT_EQ(Update(too_long).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(*ReadFile(acl_path), n1 + "\n" + n2 + "\n");  // rejected updates change nothing

  api::CreateVolumeRequest any;
  any.set_name("any");
  any.set_size("1GiB");
  any.set_replicacount(1);
  any.mutable_acl()->add_values("ALLOW_ANY");
  api::Volume va;
  ASSERT_TRUE(CreateReq(any, &va).ok());
  EXPECT_EQ(va.acl().values(0), "ALLOW_ANY");

  ASSERT_TRUE(Delete(v.uuid()).ok());
  EXPECT_FALSE(std::filesystem::exists(acl_path));
}

TEST_F(SimTest, ListVolumesPagesInStableOrderAndFilters) {
  Start();
  std::set<std::string> created;
  for (int i = 0; i < 7; ++i) {
    api::Volume v;
    ASSERT_TRUE(Create("page-" + std::to_string(i), &v).ok());
    created.insert(v.uuid());
  }
  api::Volume other;
  ASSERT_TRUE(Create("elsewhere", &other, "1GiB", "proj2").ok());

  std::vector<std::string> seen;
  std::string offset;
  for (int page = 0; page < 10; ++page) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    api::ListVolumeRequest req;
    req.set_limit(3);
    req.set_offsetuuid(offset);
    api::ListVolumesResponse resp;
    ASSERT_TRUE(stub_->ListVolumes(&ctx, req, &resp).ok());
    EXPECT_LE(resp.volumes_size(), 3);
    if (resp.volumes_size() == 0) break;
    for (const auto& v : resp.volumes()) seen.push_back(v.uuid());
    offset = resp.volumes(resp.volumes_size() - 1).uuid();
  }
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), created);

  grpc::ClientContext ctx;
  Prepare(&ctx);
  api::ListVolumeRequest by_name;
  by_name.set_name("page-3");
  api::ListVolumesResponse resp;
  ASSERT_TRUE(stub_->ListVolumes(&ctx, by_name, &resp).ok());
  ASSERT_EQ(resp.volumes_size(), 1);
  EXPECT_EQ(resp.volumes(0).name(), "page-3");

  grpc::ClientContext ctx2;
  Prepare(&ctx2);
  api::ListVolumeRequest neg;
  neg.set_limit(-1);
  EXPECT_EQ(stub_->ListVolumes(&ctx2, neg, &resp).error_code(), StatusCode::INVALID_ARGUMENT);
}

TEST_F(SimTest, SnapshotsCopyDataAndRestoreIntoNewVolumes) {
  Start();
  api::Volume src = CreateAvailable("src", "8MiB");
  std::string src_path = sim_->cluster()->VolumePath(src.uuid());
  WriteAt(src_path, 1 << 20, "before-snapshot");

  api::Snapshot snap;
  ASSERT_TRUE(Snapshot("snap1", src.uuid(), &snap).ok());
  EXPECT_EQ(snap.state(), api::Snapshot::Creating);
  EXPECT_EQ(snap.size(), src.size());
  EXPECT_EQ(snap.sourcevolumeuuid(), src.uuid());
  snap = WaitSnapshot(snap.uuid(), api::Snapshot::Available);
  api::Snapshot dup;
  EXPECT_EQ(Snapshot("snap1", src.uuid(), &dup).error_code(), StatusCode::ALREADY_EXISTS);
  WriteAt(src_path, 1 << 20, "after--snapshot");  // must not reach the snapshot

  api::CreateVolumeRequest req;
  req.set_name("restored");
  req.set_size("1GiB");  // larger than the snapshot: created at the snapshot's size
  req.set_replicacount(2);
  req.set_sourcesnapshotuuid(snap.uuid());
  api::Volume restored;
  ASSERT_TRUE(CreateReq(req, &restored).ok());
  EXPECT_EQ(restored.size(), src.size());
  EXPECT_EQ(restored.sourcesnapshotuuid(), snap.uuid());
  std::string restored_path = sim_->cluster()->VolumePath(restored.uuid());
  EXPECT_EQ(ReadAt(restored_path, 1 << 20, 15), "before-snapshot");
  struct stat st {};
  ASSERT_EQ(stat(restored_path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), src.size());
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, src.size());  // holes stayed holes

  req.set_name("too-small");
  req.set_size("4096");
  api::Volume ignored;
  EXPECT_EQ(CreateReq(req, &ignored).error_code(), StatusCode::INVALID_ARGUMENT);

  // ListVolumes by snapshotUUID finds the clone.
  grpc::ClientContext lctx;
  Prepare(&lctx);
  api::ListVolumeRequest lreq;
  lreq.set_snapshotuuid(snap.uuid());
  api::ListVolumesResponse lresp;
  ASSERT_TRUE(stub_->ListVolumes(&lctx, lreq, &lresp).ok());
  ASSERT_EQ(lresp.volumes_size(), 1);
  EXPECT_EQ(lresp.volumes(0).uuid(), restored.uuid());

  // Snapshots are independent of their source volume.
  ASSERT_TRUE(Delete(src.uuid()).ok());
  ASSERT_TRUE(WaitForVolume(stub_.get(), src.uuid(), api::Volume::Deleted));
  grpc::ClientContext sctx;
  Prepare(&sctx);
  api::ListSnapshotsRequest sreq;
  api::ListSnapshotsResponse sresp;
  ASSERT_TRUE(stub_->ListSnapshots(&sctx, sreq, &sresp).ok());
  ASSERT_EQ(sresp.snapshots_size(), 1);
  EXPECT_EQ(sresp.snapshots(0).state(), api::Snapshot::Available);

  grpc::ClientContext dctx;
  Prepare(&dctx);
  api::DeleteSnapshotRequest dreq;
  dreq.set_uuid(snap.uuid());
  api::DeleteSnapshotResponse dresp;
  ASSERT_TRUE(stub_->DeleteSnapshot(&dctx, dreq, &dresp).ok());
  grpc::ClientContext gctx;
  Prepare(&gctx);
  api::GetSnapshotRequest greq;
  greq.set_uuid(snap.uuid());
  EXPECT_EQ(stub_->GetSnapshot(&gctx, greq, &snap).error_code(), StatusCode::NOT_FOUND);
  EXPECT_FALSE(std::filesystem::exists(sim_->cluster()->SnapshotPath(greq.uuid())));
}

TEST_F(SimTest, UserWrittenBecomesNonZeroAfterAWrite) {
  Start();
  api::Volume v = CreateAvailable("written");
  EXPECT_EQ(v.statistics().userwritten(), 0u);
  WriteAt(sim_->cluster()->VolumePath(v.uuid()), 512 << 20, std::string(4096, 'x'));
  ASSERT_TRUE(Get(v.uuid(), &v).ok());
  EXPECT_GT(v.statistics().userwritten(), 0u);
}

TEST_F(SimTest, LabelsAreStoredAndReturned) {
  Start();
  api::CreateVolumeRequest req;
  req.set_name("labelled");
  req.set_size("1GiB");
  req.set_replicacount(1);
  auto* l = req.add_labels();
  l->set_key("k8s/pvc");
  l->set_value("data-0");
  api::Volume v;
  ASSERT_TRUE(CreateReq(req, &v).ok());
  ASSERT_TRUE(WaitForVolume(stub_.get(), v.uuid(), api::Volume::Available, "", &v));
  ASSERT_EQ(v.labels_size(), 1);
  EXPECT_EQ(v.labels(0).key(), "k8s/pvc");
  EXPECT_EQ(v.labels(0).value(), "data-0");
}

TEST_F(SimTest, CapacityStatisticsFollowVolumes) {
  Start();
  uint64_t free_before = Cluster().statistics().freephysicalstorage();
  api::Volume v;
  ASSERT_TRUE(Create("cap", &v, "1GiB", "", 2).ok());
  uint64_t free_after = Cluster().statistics().freephysicalstorage();
  EXPECT_EQ(free_before - free_after, 2ULL << 30);
  EXPECT_EQ(Cluster().statistics().logicalstorage(), 1ULL << 30);
  ASSERT_TRUE(Delete(v.uuid()).ok());
  ASSERT_TRUE(WaitForVolume(stub_.get(), v.uuid(), api::Volume::Deleted));
  EXPECT_EQ(Cluster().statistics().freephysicalstorage(), free_before);
}

TEST_F(SimTest, RequiresAConfiguredBearerToken) {
  Start();
  api::Version version;
  grpc::ClientContext none;
  Prepare(&none, "");
  EXPECT_EQ(stub_->GetVersion(&none, {}, &version).error_code(), StatusCode::UNAUTHENTICATED);
  grpc::ClientContext bad;
  Prepare(&bad, "not-the-token");
  EXPECT_EQ(stub_->GetVersion(&bad, {}, &version).error_code(), StatusCode::UNAUTHENTICATED);
  grpc::ClientContext raw;  // the token without the "Bearer " scheme
  raw.AddMetadata("authorization", kToken);
  EXPECT_EQ(stub_->GetVersion(&raw, {}, &version).error_code(), StatusCode::UNAUTHENTICATED);
  grpc::ClientContext second;
  Prepare(&second, kOtherToken);
  EXPECT_TRUE(stub_->GetVersion(&second, {}, &version).ok());
  // A rejected create leaves nothing behind.
  grpc::ClientContext cctx;
  Prepare(&cctx, "nope");
  api::CreateVolumeRequest req;
  req.set_name("unauth");
  req.set_size("1GiB");
  req.set_replicacount(1);
  api::Volume v;
  EXPECT_EQ(stub_->CreateVolume(&cctx, req, &v).error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Create("unauth", &v).error_code(), StatusCode::OK);
}

TEST_F(SimTest, EndpointsStopAndRestartSharingOneCluster) {
  Start();
  auto addresses = sim_->endpoints();
  ASSERT_EQ(addresses.size(), 2u);
  EXPECT_NE(addresses[0], addresses[1]);
  api::Volume v;
  ASSERT_TRUE(Create("shared", &v).ok());
  api::Volume via1;
  {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    api::GetVolumeRequest req;
    req.set_uuid(v.uuid());
    ASSERT_TRUE(stub1_->GetVolume(&ctx, req, &via1).ok());  // the other endpoint sees it
  }

  // A call stalled on endpoint 0 is cut off when the endpoint stops.
  FaultConfig faults;
  faults.rpcs["GetVersion"].stall = true;
  faults.rpcs["GetVersion"].endpoints = {0};
  sim_->SetFaults(faults);
  std::atomic<int> stalled_code{-1};
  std::atomic<bool> ended_before_deadline{false};
  std::thread stalled([&] {
    grpc::ClientContext ctx;
    Prepare(&ctx, kToken, 30000);
    api::Version ver;
    stalled_code = stub_->GetVersion(&ctx, {}, &ver).error_code();
    ended_before_deadline = std::chrono::system_clock::now() < ctx.deadline();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(sim_->StopEndpoint(0).ok());
  stalled.join();
  EXPECT_NE(stalled_code.load(), static_cast<int>(StatusCode::OK));
  EXPECT_TRUE(ended_before_deadline.load());  // cut off by the stop, not by its deadline
  EXPECT_FALSE(sim_->serving(0));
  sim_->SetFaults({});

  api::Version ver;
  grpc::ClientContext down;
  Prepare(&down, kToken, 2000);
  EXPECT_EQ(stub_->GetVersion(&down, {}, &ver).error_code(), StatusCode::UNAVAILABLE);
  grpc::ClientContext up1;
  Prepare(&up1);
  EXPECT_TRUE(stub1_->GetVersion(&up1, {}, &ver).ok());

  ASSERT_TRUE(sim_->StartEndpoint(0).ok());
  EXPECT_EQ(sim_->endpoints(), addresses);  // same address after restart
  api::Volume again;
  bool ok = false;
  for (int i = 0; i < 100 && !ok; ++i) {  // the old channel reconnects with backoff
    grpc::ClientContext ctx;
    Prepare(&ctx, kToken, 2000);
    ctx.set_wait_for_ready(true);
    api::GetVolumeRequest req;
    req.set_uuid(v.uuid());
    ok = stub_->GetVolume(&ctx, req, &again).ok();
  }
  ASSERT_TRUE(ok);
  EXPECT_EQ(again.uuid(), v.uuid());
  EXPECT_EQ(sim_->StopEndpoint(5).code(), absl::StatusCode::kNotFound);
}

TEST_F(SimTest, InjectedErrorsFollowTheRateAndEndpointScope) {
  Start();
  FaultConfig faults;
  faults.rpcs["GetVersion"].error = absl::StatusCode::kUnavailable;
  faults.rpcs["GetVersion"].rate = 0.5;
  faults.rpcs["ListNodes"].error = absl::StatusCode::kInternal;
  faults.rpcs["ListNodes"].endpoints = {1};
  sim_->SetFaults(faults);
  int failed = 0;
  const int kCalls = 200;
  for (int i = 0; i < kCalls; ++i) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    api::Version v;
    grpc::Status st = stub_->GetVersion(&ctx, {}, &v);
    if (!st.ok()) {
      EXPECT_EQ(st.error_code(), StatusCode::UNAVAILABLE);
      ++failed;
    }
  }
  // Binomial(200, 0.5): outside [50, 150] has probability < 1e-12.
  EXPECT_GT(failed, 50);
  EXPECT_LT(failed, 150);

  api::ListNodesResponse nodes;
  grpc::ClientContext c0;
  Prepare(&c0);
  EXPECT_TRUE(stub_->ListNodes(&c0, {}, &nodes).ok());
  grpc::ClientContext c1;
  Prepare(&c1);
  EXPECT_EQ(stub1_->ListNodes(&c1, {}, &nodes).error_code(), StatusCode::INTERNAL);
}

TEST_F(SimTest, InjectedLatencyAndStallsRunIntoTheDeadline) {
  Start();
  FaultConfig faults;
  faults.rpcs["GetVersion"].latency_ms = 5000;
  faults.rpcs["ListNodes"].stall = true;
  sim_->SetFaults(faults);
  api::Version v;
  grpc::ClientContext slow;
  Prepare(&slow, kToken, 300);
  EXPECT_EQ(stub_->GetVersion(&slow, {}, &v).error_code(), StatusCode::DEADLINE_EXCEEDED);
  api::ListNodesResponse nodes;
  grpc::ClientContext stalled;
  Prepare(&stalled, kToken, 300);
  EXPECT_EQ(stub_->ListNodes(&stalled, {}, &nodes).error_code(), StatusCode::DEADLINE_EXCEEDED);
  // Other RPCs are unaffected, and clearing the faults restores service.
  grpc::ClientContext info;
  Prepare(&info, kToken, 5000);
  api::ClusterInfoV2 ci;
  EXPECT_TRUE(stub_->GetClusterInfo(&info, {}, &ci).ok());
  sim_->SetFaults({});
  grpc::ClientContext fast;
  Prepare(&fast, kToken, 5000);
  EXPECT_TRUE(stub_->GetVersion(&fast, {}, &v).ok());
}

TEST_F(SimTest, MatchingVolumesEndInFailed) {
  Start();
  FaultConfig faults;
  faults.fail_volume_names = {"doomed-*"};
  sim_->SetFaults(faults);
  api::Volume v;
  ASSERT_TRUE(Create("doomed-1", &v).ok());
  ASSERT_TRUE(WaitForVolume(stub_.get(), v.uuid(), api::Volume::Failed, "", &v));
  EXPECT_EQ(v.protectionstate(), api::NotAvailable);
  EXPECT_FALSE(std::filesystem::exists(sim_->cluster()->AclPath(v.uuid())));
  api::Volume fine = CreateAvailable("fine-1");
  EXPECT_EQ(fine.state(), api::Volume::Available);
  ASSERT_TRUE(Delete(v.uuid()).ok());  // Failed volumes can be deleted
  EXPECT_TRUE(WaitForVolume(stub_.get(), v.uuid(), api::Volume::Deleted));
}

TEST_F(SimTest, StateSurvivesARestart) {
  Start();
  api::Volume v = CreateAvailable("persist");
  api::UpdateVolumeRequest up;
  up.set_uuid(v.uuid());
  up.mutable_acl()->add_values("nqn.2019-09.com.lightbitslabs:host:n1.node");
  ASSERT_TRUE(Update(up).ok());
  ASSERT_TRUE(Get(v.uuid(), &v).ok());
  api::Snapshot snap;
  ASSERT_TRUE(Snapshot("persist-snap", v.uuid(), &snap).ok());
  api::Volume pending;
  ASSERT_TRUE(Create("second", &pending).ok());
  sim_->Shutdown();
  sim_.reset();

  Start();
  api::Volume after;
  ASSERT_TRUE(Get(v.uuid(), &after).ok());
  EXPECT_EQ(after.name(), "persist");
  EXPECT_EQ(after.etag(), v.etag());
  EXPECT_EQ(after.nsid(), v.nsid());
  EXPECT_EQ(after.acl().values(0), "nqn.2019-09.com.lightbitslabs:host:n1.node");
  WaitSnapshot(snap.uuid(), api::Snapshot::Available);
  ASSERT_TRUE(WaitForVolume(stub_.get(), pending.uuid(), api::Volume::Available));
  api::Volume third;
  ASSERT_TRUE(Create("third", &third).ok());
  EXPECT_GT(third.nsid(), pending.nsid());
  EXPECT_NE(third.etag(), v.etag());
  EXPECT_EQ(Create("persist", &third).error_code(), StatusCode::ALREADY_EXISTS);
}

}  // namespace
}  // namespace lbcsi::sim
