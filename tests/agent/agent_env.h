#pragma once
// A node agent wired to a fake helper (served in-process on a unix socket in a
// temp dir) and a fake LightOS, reachable through its real CSI socket.
// Restart() builds a new NodeService over the same state directory, as a
// process restart would.

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include "agent/config.h"
#include "agent/identity_service.h"
#include "agent/node_service.h"
#include "common/grpc_server.h"
#include "common/unix_endpoint.h"
#include "csi/v1/csi.grpc.pb.h"
#include "tests/agent/fake_helper.h"
#include "tests/agent/fake_lightos.h"

// Tags a test with the CSI conformance ids it covers (see conformance_ids.txt).
#define CSI_CONFORMANCE(id) ::testing::Test::RecordProperty("csi_conformance", id)

namespace lbcsi::agent::testing {

inline constexpr char kNodeId[] = "worker-1.node";
inline constexpr char kHostNqn[] = "nqn.2019-09.com.lightbitslabs:host:worker-1.node";

inline std::string Uuid(int n) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "1b2c3d4e-0000-4000-8000-%012d", n);
  return buf;
}
inline std::string VolId(int n) {
  return "mgmt:10.0.0.1:443,10.0.0.2:443|nguid:" + Uuid(n) + "|proj:default|scheme:grpcs";
}

class AgentEnv {
 public:
  struct Options {
    bool ephemeral = true;
    std::string max_size = "10Gi";
  };
  AgentEnv() : AgentEnv(Options{}) {}
  explicit AgentEnv(Options opts) : helper_(kHostNqn), lightos_(&helper_) {
    char tmpl[] = "/tmp/lbcsi-agent-XXXXXX";
    dir_ = mkdtemp(tmpl);
    kubelet_ = dir_ + "/kubelet";
    std::filesystem::create_directories(kubelet_ + "/plugins/csi.lightbitslabs.com");
    UnixServerOptions hopts;
    hopts.endpoint = "unix://" + dir_ + "/helper.sock";
    auto hs = UnixGrpcServer::Start(std::move(hopts), {&helper_});
    EXPECT_TRUE(hs.ok()) << hs.status();
    helper_server_ = std::move(*hs);
    config_.endpoint = "unix://" + dir_ + "/csi.sock";
    config_.node_id = kNodeId;
    config_.helper_socket = dir_ + "/helper.sock";
    config_.kubelet_root = kubelet_;
    config_.state_dir = dir_ + "/state";
    config_.max_volumes = 77;
    if (opts.ephemeral) {
      auto eph = ParseEphemeralConfig(
          R"({"mgmt_endpoints":"10.9.0.1:443","project":"eph","token_file":"/etc/lb-csi/jwt",)"
          R"("max_size":")" +
          opts.max_size + R"(","default_size":"1Gi","max_replica_count":3})");
      EXPECT_TRUE(eph.ok()) << eph.status();
      config_.ephemeral = *eph;
    }
    EXPECT_TRUE(FinalizeConfig(config_).ok());
    Start({});
  }
  ~AgentEnv() {
    Stop();
    helper_server_->Shutdown(absl::Seconds(1));
    helper_server_->Wait();
    std::filesystem::remove_all(dir_);
  }

  void Start(CrashHook hook) {
    auto store = state::Store::Open(config_.state_dir);
    EXPECT_TRUE(store.ok()) << store.status();
    helper_client_ = HelperClient::ForSocket(config_.helper_socket);
    helper_client_->SetMetrics(&registry_);
    NodeDeps deps;
    deps.config = config_;
    deps.helper = helper_client_;
    deps.store = std::shared_ptr<state::Store>(std::move(*store));
    deps.lightos =
        std::shared_ptr<lightos::ClientFactory>(&lightos_, [](lightos::ClientFactory*) {});
    deps.crash_hook = std::move(hook);
    deps.metrics = &registry_;
    deps.helper_timeout = absl::Seconds(30);
    node_ = std::make_unique<NodeService>(std::move(deps));
    identity_ = std::make_unique<IdentityService>(config_, helper_client_, absl::Milliseconds(500));
    identity_->SetReconciled(true);
    UnixServerOptions sopts;
    sopts.endpoint = config_.endpoint;
    auto server = UnixGrpcServer::Start(std::move(sopts), {node_.get(), identity_.get()});
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto channel =
        grpc::CreateChannel(GrpcUnixTarget(dir_ + "/csi.sock"), grpc::InsecureChannelCredentials());
    node_stub_ = csi::v1::Node::NewStub(channel);
    identity_stub_ = csi::v1::Identity::NewStub(channel);
    controller_stub_ = csi::v1::Controller::NewStub(channel);
  }
  void Stop() {
    if (server_) {
      server_->Shutdown(absl::Seconds(1));
      server_->Wait();
      server_.reset();
    }
    node_.reset();
    identity_.reset();
  }
  // A new process over the same state dir, then the start-up reconcile.
  absl::StatusOr<int> Restart(CrashHook hook = {}) {
    Stop();
    Start(std::move(hook));
    return node_->Reconcile(absl::Now() + absl::Seconds(30));
  }

  // ---- request builders
  std::string StagingPath(int n) const {
    return kubelet_ + "/plugins/kubernetes.io/csi/pv/pv" + std::to_string(n) + "/globalmount";
  }
  std::string TargetPath(int n, int pod = 0) const {
    return kubelet_ + "/pods/pod" + std::to_string(pod) + "/volumes/kubernetes.io~csi/pv" +
           std::to_string(n) + "/mount";
  }
  static csi::v1::VolumeCapability MountCap(
      const std::string& fs = "ext4",
      csi::v1::VolumeCapability::AccessMode::Mode mode =
          csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_MULTI_WRITER) {
    csi::v1::VolumeCapability cap;
    cap.mutable_mount()->set_fs_type(fs);
    cap.mutable_access_mode()->set_mode(mode);
    return cap;
  }
  static csi::v1::VolumeCapability BlockCap(
      csi::v1::VolumeCapability::AccessMode::Mode mode =
          csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_MULTI_WRITER) {
    csi::v1::VolumeCapability cap;
    cap.mutable_block();
    cap.mutable_access_mode()->set_mode(mode);
    return cap;
  }
  csi::v1::NodeStageVolumeRequest StageReq(int n, const csi::v1::VolumeCapability& cap,
                                           bool never_written = true) const {
    csi::v1::NodeStageVolumeRequest r;
    r.set_volume_id(VolId(n));
    r.set_staging_target_path(StagingPath(n));
    *r.mutable_volume_capability() = cap;
    auto& pc = *r.mutable_publish_context();
    pc["lightbits.com/subsys-nqn"] = kSubsysNqn;
    pc["lightbits.com/nvme-endpoints"] = "10.0.0.1:4420,10.0.0.2:4420";
    pc["lightbits.com/discovery-endpoints"] = "10.0.0.1:8009";
    pc["lightbits.com/never-written"] = never_written ? "true" : "false";
    return r;
  }
  csi::v1::NodePublishVolumeRequest PublishReq(int n, const csi::v1::VolumeCapability& cap,
                                               int pod = 0, bool ro = false) const {
    csi::v1::NodePublishVolumeRequest r;
    r.set_volume_id(VolId(n));
    r.set_staging_target_path(StagingPath(n));
    r.set_target_path(TargetPath(n, pod));
    *r.mutable_volume_capability() = cap;
    r.set_readonly(ro);
    return r;
  }
  csi::v1::NodeUnpublishVolumeRequest UnpublishReq(int n, int pod = 0) const {
    csi::v1::NodeUnpublishVolumeRequest r;
    r.set_volume_id(VolId(n));
    r.set_target_path(TargetPath(n, pod));
    return r;
  }
  csi::v1::NodeUnstageVolumeRequest UnstageReq(int n) const {
    csi::v1::NodeUnstageVolumeRequest r;
    r.set_volume_id(VolId(n));
    r.set_staging_target_path(StagingPath(n));
    return r;
  }

  // ---- calls over the CSI socket
  template <typename Req, typename Resp, typename Stub, typename Fn>
  grpc::Status Do(Stub& stub, Fn fn, const Req& req, Resp* resp, int seconds = 30) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return ((*stub).*fn)(&ctx, req, resp);
  }
  grpc::Status Stage(const csi::v1::NodeStageVolumeRequest& r) {
    csi::v1::NodeStageVolumeResponse resp;
    return Do(node_stub_, &csi::v1::Node::Stub::NodeStageVolume, r, &resp);
  }
  grpc::Status Unstage(const csi::v1::NodeUnstageVolumeRequest& r) {
    csi::v1::NodeUnstageVolumeResponse resp;
    return Do(node_stub_, &csi::v1::Node::Stub::NodeUnstageVolume, r, &resp);
  }
  grpc::Status Publish(const csi::v1::NodePublishVolumeRequest& r) {
    csi::v1::NodePublishVolumeResponse resp;
    return Do(node_stub_, &csi::v1::Node::Stub::NodePublishVolume, r, &resp);
  }
  grpc::Status Unpublish(const csi::v1::NodeUnpublishVolumeRequest& r) {
    csi::v1::NodeUnpublishVolumeResponse resp;
    return Do(node_stub_, &csi::v1::Node::Stub::NodeUnpublishVolume, r, &resp);
  }
  grpc::Status Stats(const csi::v1::NodeGetVolumeStatsRequest& r,
                     csi::v1::NodeGetVolumeStatsResponse* resp) {
    return Do(node_stub_, &csi::v1::Node::Stub::NodeGetVolumeStats, r, resp);
  }
  grpc::Status Expand(const csi::v1::NodeExpandVolumeRequest& r,
                      csi::v1::NodeExpandVolumeResponse* resp) {
    return Do(node_stub_, &csi::v1::Node::Stub::NodeExpandVolume, r, resp);
  }

  // Adds a blank disk for volume n (what a freshly created LightOS volume holds).
  void AddBlank(int n, uint64_t size = 1ull << 30) {
    FakeDisk d;
    d.size = size;
    helper_.AddDisk(Uuid(n), d);
  }
  void AddFs(int n, const std::string& fs, uint64_t size = 1ull << 30, uint64_t fs_size = 0) {
    FakeDisk d;
    d.kind = hv1::CONTENT_KIND_FILESYSTEM;
    d.type = fs;
    d.size = size;
    d.fs_size = fs_size ? fs_size : size;
    helper_.AddDisk(Uuid(n), d);
  }

  std::vector<state::VolumeRecord> Records() {
    auto store = state::Store::Open(config_.state_dir);
    auto all = (*store)->LoadAll();
    EXPECT_TRUE(all.ok()) << all.status();
    return all.ok() ? *all : std::vector<state::VolumeRecord>{};
  }
  size_t StateFiles() {
    size_t n = 0;
    for (auto& e : std::filesystem::directory_iterator(config_.state_dir + "/volumes")) {
      (void)e;
      ++n;
    }
    return n;
  }

  std::string dir_, kubelet_;
  AgentConfig config_;
  FakeHelper helper_;
  FakeLightos lightos_;
  std::unique_ptr<UnixGrpcServer> helper_server_;
  std::shared_ptr<HelperClient> helper_client_;
  metrics::Registry registry_;  // per test, not the process-wide one
  std::unique_ptr<NodeService> node_;
  std::unique_ptr<IdentityService> identity_;
  std::unique_ptr<UnixGrpcServer> server_;
  std::unique_ptr<csi::v1::Node::Stub> node_stub_;
  std::unique_ptr<csi::v1::Identity::Stub> identity_stub_;
  std::unique_ptr<csi::v1::Controller::Stub> controller_stub_;
};

}  // namespace lbcsi::agent::testing
