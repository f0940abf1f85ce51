// The lbcsi-controller binary against the lightos-sim binary, both as real
// processes, driven over the controller's unix socket with the CSI stubs:
// every RPC, idempotency, failover of a management endpoint mid-test, and
// injected faults with deadlines honoured.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "csi/v1/csi.grpc.pb.h"
#include "csicontext/keys.h"

namespace {

using ::testing::HasSubstr;
using Mode = csi::v1::VolumeCapability::AccessMode;
constexpr int64_t kGiB = int64_t{1} << 30;
constexpr char kToken[] = "integration-token";

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

class Process {
 public:
  Process(const std::string& bin, std::vector<std::string> args, const std::string& log) {
    pid_ = fork();
    if (pid_ == 0) {
      FILE* f = freopen(log.c_str(), "w", stderr);
      (void)f;
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(bin.c_str()));
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
  }
  ~Process() { Stop(); }
  bool Alive() { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  int Stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ControllerIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lbcsi-ctrl-it-XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::string build = Env("LBCSI_BUILD_DIR");
    ASSERT_FALSE(build.empty());
    std::string sim_bin = build + "/tests/lightos-sim/lightos-sim";
    std::string ctrl_bin = build + "/controller/lbcsi-controller";
    ASSERT_TRUE(std::filesystem::exists(sim_bin)) << sim_bin;
    ASSERT_TRUE(std::filesystem::exists(ctrl_bin)) << ctrl_bin;

    sim_ = std::make_unique<Process>(
        sim_bin,
        std::vector<std::string>{"--data-dir", dir_ + "/sim", "--listen", "127.0.0.1:0", "--listen",
                                 "127.0.0.1:0", "--jwt", kToken, "--control-listen", "127.0.0.1:0",
                                 "--ready-file", dir_ + "/ready.json", "--create-delay-ms", "50",
                                 "--delete-delay-ms", "50"},
        dir_ + "/sim.log");
    for (int i = 0; i < 200 && !std::filesystem::exists(dir_ + "/ready.json"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(std::filesystem::exists(dir_ + "/ready.json")) << ReadAll(dir_ + "/sim.log");
    auto ready = nlohmann::json::parse(ReadAll(dir_ + "/ready.json"));
    for (const auto& e : ready["endpoints"]) endpoints_.push_back(e.get<std::string>());
    control_ = ready["control"].get<std::string>();
    std::sort(endpoints_.begin(), endpoints_.end());
    mgmt_ = endpoints_[0] + "," + endpoints_[1];

    { std::ofstream(dir_ + "/jwt") << kToken << "\n"; }
    socket_ = dir_ + "/csi.sock";
    ctrl_ = std::make_unique<Process>(
        ctrl_bin,
        std::vector<std::string>{"--endpoint", "unix://" + socket_, "--default-scheme", "grpc",
                                 "--jwt-file", dir_ + "/jwt", "--cluster", mgmt_ + "|scheme:grpc",
                                 "--metrics-address", "127.0.0.1:0", "--log-level", "debug"},
        dir_ + "/controller.log");
    for (int i = 0; i < 200 && !std::filesystem::exists(socket_); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(std::filesystem::exists(socket_)) << ReadAll(dir_ + "/controller.log");
    auto channel = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
    identity_ = csi::v1::Identity::NewStub(channel);
    controller_ = csi::v1::Controller::NewStub(channel);
  }

  void TearDown() override {
    controller_.reset();
    identity_.reset();
    if (ctrl_) {
      int status = ctrl_->Stop();
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "controller exit " << status;
      if (HasFailure())
        std::cerr << "--- controller log ---\n" << ReadAll(dir_ + "/controller.log");
    }
    if (sim_) sim_->Stop();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 30) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return ctx;
  }

  csi::v1::CreateVolumeRequest CreateReq(const std::string& name, int64_t bytes) {
    csi::v1::CreateVolumeRequest r;
    r.set_name(name);
    auto* cap = r.add_volume_capabilities();
    cap->mutable_mount()->set_fs_type("ext4");
    cap->mutable_access_mode()->set_mode(Mode::SINGLE_NODE_WRITER);
    (*r.mutable_parameters())["mgmt-endpoint"] = mgmt_;
    (*r.mutable_parameters())["replica-count"] = "1";
    (*r.mutable_secrets())["jwt"] = kToken;
    r.mutable_capacity_range()->set_required_bytes(bytes);
    return r;
  }

  grpc::Status Create(const csi::v1::CreateVolumeRequest& r, csi::v1::CreateVolumeResponse* out,
                      int seconds = 30) {
    return controller_->CreateVolume(Ctx(seconds).get(), r, out);
  }
  grpc::Status Delete(const std::string& id) {
    csi::v1::DeleteVolumeRequest r;
    r.set_volume_id(id);
    (*r.mutable_secrets())["jwt"] = kToken;
    csi::v1::DeleteVolumeResponse resp;
    return controller_->DeleteVolume(Ctx().get(), r, &resp);
  }
  bool Control(const std::string& method, const std::string& path, const std::string& body = "") {
    auto colon = control_.rfind(':');
    httplib::Client cli(control_.substr(0, colon), std::stoi(control_.substr(colon + 1)));
    httplib::Headers h = {{"Authorization", std::string("Bearer ") + kToken}};
    auto res = method == "POST" ? cli.Post(path, h, body, "application/json")
                                : cli.Put(path, h, body, "application/json");
    return res && res->status == 200;
  }

  std::string dir_, socket_, control_, mgmt_;
  std::vector<std::string> endpoints_;
  std::unique_ptr<Process> sim_, ctrl_;
  std::unique_ptr<csi::v1::Identity::Stub> identity_;
  std::unique_ptr<csi::v1::Controller::Stub> controller_;
};

TEST_F(ControllerIntegrationTest, IdentityAndCapabilities) {
  csi::v1::GetPluginInfoResponse info;
  ASSERT_TRUE(identity_->GetPluginInfo(Ctx().get(), {}, &info).ok());
  EXPECT_EQ(info.name(), "csi.lightbitslabs.com");
  EXPECT_FALSE(info.vendor_version().empty());
  csi::v1::ProbeResponse probe;
  ASSERT_TRUE(identity_->Probe(Ctx().get(), {}, &probe).ok());
  EXPECT_TRUE(probe.ready().value());
  csi::v1::ControllerGetCapabilitiesResponse caps;
  ASSERT_TRUE(controller_->ControllerGetCapabilities(Ctx().get(), {}, &caps).ok());
  EXPECT_GE(caps.capabilities_size(), 14);
}

TEST_F(ControllerIntegrationTest, VolumeLifecycleWithFailover) {
  // Create (5 times: one volume).
  std::string id;
  for (int i = 0; i < 5; ++i) {
    csi::v1::CreateVolumeResponse resp;
    grpc::Status s = Create(CreateReq("pvc-int-1", kGiB + 1), &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    if (i == 0) id = resp.volume().volume_id();
    EXPECT_EQ(resp.volume().volume_id(), id);
    EXPECT_EQ(resp.volume().capacity_bytes(), 2 * kGiB);
    EXPECT_EQ(resp.volume().volume_context().at(lbcsi::csictx::kCreatedEmpty), "true");
  }
  EXPECT_THAT(id, HasSubstr("|scheme:grpc"));

  // Publish (5 times) and check the data-path facts.
  csi::v1::ControllerPublishVolumeRequest pub;
  pub.set_volume_id(id);
  pub.set_node_id("node-a.node");
  pub.mutable_volume_capability()->mutable_mount();
  pub.mutable_volume_capability()->mutable_access_mode()->set_mode(Mode::SINGLE_NODE_WRITER);
  (*pub.mutable_secrets())["jwt"] = kToken;
  for (int i = 0; i < 5; ++i) {
    csi::v1::ControllerPublishVolumeResponse resp;
    grpc::Status s = controller_->ControllerPublishVolume(Ctx().get(), pub, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_FALSE(resp.publish_context().at(lbcsi::csictx::kSubsysNqn).empty());
    EXPECT_FALSE(resp.publish_context().at(lbcsi::csictx::kNvmeEndpoints).empty());
    EXPECT_EQ(resp.publish_context().at(lbcsi::csictx::kNeverWritten), "true");
  }
  pub.set_node_id("node-b.node");
  csi::v1::ControllerPublishVolumeResponse pr;
  EXPECT_EQ(controller_->ControllerPublishVolume(Ctx().get(), pub, &pr).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Delete(id).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // Fail over: stop the first management endpoint; the controller keeps working.
  ASSERT_TRUE(Control("POST", "/v1/endpoints/0/stop"));

  // Snapshot (5 times), restore larger, clone.
  csi::v1::CreateSnapshotRequest sr;
  sr.set_source_volume_id(id);
  sr.set_name("snap-int-1");
  (*sr.mutable_secrets())["jwt"] = kToken;
  std::string snap_id;
  for (int i = 0; i < 5; ++i) {
    csi::v1::CreateSnapshotResponse resp;
    grpc::Status s = controller_->CreateSnapshot(Ctx().get(), sr, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    snap_id = resp.snapshot().snapshot_id();
    EXPECT_TRUE(resp.snapshot().ready_to_use());
  }
  auto restore = CreateReq("pvc-int-restore", 3 * kGiB);
  restore.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(snap_id);
  csi::v1::CreateVolumeResponse restored;
  for (int i = 0; i < 5; ++i) {
    grpc::Status s = Create(restore, &restored);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(restored.volume().capacity_bytes(), 3 * kGiB);
    EXPECT_EQ(restored.volume().volume_context().at(lbcsi::csictx::kCreatedEmpty), "false");
  }
  auto clone = CreateReq("pvc-int-clone", 2 * kGiB);
  clone.mutable_volume_content_source()->mutable_volume()->set_volume_id(id);
  csi::v1::CreateVolumeResponse cloned;
  for (int i = 0; i < 5; ++i) {
    grpc::Status s = Create(clone, &cloned);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // ListSnapshots: the clone's temporary snapshot is gone, the user's remains.
  csi::v1::ListSnapshotsRequest ls;
  csi::v1::ListSnapshotsResponse lsr;
  ASSERT_TRUE(controller_->ListSnapshots(Ctx().get(), ls, &lsr).ok());
  ASSERT_EQ(lsr.entries_size(), 1);
  EXPECT_EQ(lsr.entries(0).snapshot().snapshot_id(), snap_id);

  // ListVolumes with paging.
  std::set<std::string> seen;
  std::string token;
  do {
    csi::v1::ListVolumesRequest lv;
    lv.set_max_entries(2);
    lv.set_starting_token(token);
    csi::v1::ListVolumesResponse lvr;
    ASSERT_TRUE(controller_->ListVolumes(Ctx().get(), lv, &lvr).ok());
    for (const auto& e : lvr.entries()) seen.insert(e.volume().volume_id());
    token = lvr.next_token();
  } while (!token.empty());
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_TRUE(seen.count(id));

  // Expand (5 times), get, capacity, modify.
  csi::v1::ControllerExpandVolumeRequest ex;
  ex.set_volume_id(id);
  ex.mutable_capacity_range()->set_required_bytes(4 * kGiB);
  (*ex.mutable_secrets())["jwt"] = kToken;
  for (int i = 0; i < 5; ++i) {
    csi::v1::ControllerExpandVolumeResponse resp;
    grpc::Status s = controller_->ControllerExpandVolume(Ctx().get(), ex, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.capacity_bytes(), 4 * kGiB);
    EXPECT_TRUE(resp.node_expansion_required());
  }
  csi::v1::ControllerGetVolumeRequest gv;
  gv.set_volume_id(id);
  csi::v1::ControllerGetVolumeResponse gvr;
  ASSERT_TRUE(controller_->ControllerGetVolume(Ctx().get(), gv, &gvr).ok());
  EXPECT_FALSE(gvr.status().volume_condition().abnormal());
  EXPECT_THAT(gvr.status().published_node_ids(), ::testing::ElementsAre("node-a.node"));
  csi::v1::GetCapacityResponse cap;
  ASSERT_TRUE(controller_->GetCapacity(Ctx().get(), {}, &cap).ok());
  EXPECT_GT(cap.available_capacity(), 0);
  csi::v1::ControllerModifyVolumeRequest mv;
  mv.set_volume_id(id);
  (*mv.mutable_mutable_parameters())["qos-policy-name"] = "gold";
  (*mv.mutable_secrets())["jwt"] = kToken;
  for (int i = 0; i < 5; ++i) {
    csi::v1::ControllerModifyVolumeResponse resp;
    grpc::Status s = controller_->ControllerModifyVolume(Ctx().get(), mv, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }

  // Bring the endpoint back, unpublish (5 times), delete everything (5 times each).
  ASSERT_TRUE(Control("POST", "/v1/endpoints/0/start"));
  csi::v1::ControllerUnpublishVolumeRequest un;
  un.set_volume_id(id);
  un.set_node_id("node-a.node");
  (*un.mutable_secrets())["jwt"] = kToken;
  for (int i = 0; i < 5; ++i) {
    csi::v1::ControllerUnpublishVolumeResponse resp;
    EXPECT_TRUE(controller_->ControllerUnpublishVolume(Ctx().get(), un, &resp).ok());
  }
  csi::v1::DeleteSnapshotRequest ds;
  ds.set_snapshot_id(snap_id);
  (*ds.mutable_secrets())["jwt"] = kToken;
  for (int i = 0; i < 5; ++i) {
    csi::v1::DeleteSnapshotResponse resp;
    grpc::Status s = controller_->DeleteSnapshot(Ctx().get(), ds, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  for (const std::string& v : {id, restored.volume().volume_id(), cloned.volume().volume_id()}) {
    for (int i = 0; i < 5; ++i) {
      grpc::Status s = Delete(v);
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
  }
}

TEST_F(ControllerIntegrationTest, InjectedFaultsAndDeadlines) {
  // An error injected in LightOS comes back with its code.
  ASSERT_TRUE(
      Control("PUT", "/v1/faults",
              R"({"rpcs":{"CreateVolume":{"error":"RESOURCE_EXHAUSTED","message":"full"}}})"));
  csi::v1::CreateVolumeResponse resp;
  grpc::Status s = Create(CreateReq("pvc-fault", kGiB), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();

  // A stalled LightOS: the controller gives up by the caller's deadline.
  ASSERT_TRUE(Control("PUT", "/v1/faults", R"({"rpcs":{"CreateVolume":{"stall":true}}})"));
  auto start = std::chrono::steady_clock::now();
  s = Create(CreateReq("pvc-stall", kGiB), &resp, 2);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  EXPECT_LT(elapsed, std::chrono::seconds(10));

  // Latency only: still works; then the fault is cleared and the volume is created.
  ASSERT_TRUE(Control("PUT", "/v1/faults", R"({"rpcs":{"*":{"latency_ms":20}}})"));
  s = Create(CreateReq("pvc-slow", kGiB), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(Control("PUT", "/v1/faults", R"({"rpcs":{}})"));
  // The stalled create may have landed after its deadline: a retry converges.
  s = Create(CreateReq("pvc-stall", kGiB), &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(ctrl_->Alive());
}

}  // namespace
