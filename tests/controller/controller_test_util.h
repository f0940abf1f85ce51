#pragma once
// Fixture and request builders for the controller's unit tests (fake LightOS).

#include <memory>
#include <string>

#include <grpcpp/server_context.h>
#include <gtest/gtest.h>

#include "controller/controller_service.h"
#include "controller/identity_service.h"
#include "tests/controller/fake_lightos.h"

namespace lbcsi::testing {

inline constexpr char kEndpoints[] = "10.0.0.1:443,10.0.0.2:443";

inline csi::v1::VolumeCapability MountCap(
    csi::v1::VolumeCapability::AccessMode::Mode mode =
        csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER,
    const std::string& fs = "") {
  csi::v1::VolumeCapability c;
  c.mutable_mount()->set_fs_type(fs);
  c.mutable_access_mode()->set_mode(mode);
  return c;
}

inline csi::v1::VolumeCapability BlockCap(
    csi::v1::VolumeCapability::AccessMode::Mode mode =
        csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER) {
  csi::v1::VolumeCapability c;
  c.mutable_block();
  c.mutable_access_mode()->set_mode(mode);
  return c;
}

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = std::make_shared<FakeCluster>();
    factory_ = std::make_shared<FakeFactory>();
    factory_->AddCluster(kEndpoints, cluster_);
    MakeService({});
  }

  void MakeService(std::vector<std::string> cluster_specs, bool alpha_capabilities = false) {
    controller::ControllerOptions o;
    o.version = "test";
    o.alpha_capabilities = alpha_capabilities;
    o.jwt_file = "/etc/lb-csi/jwt";
    for (const auto& spec : cluster_specs) {
      o.clusters.push_back(*ParseClusterSpec(spec, MgmtScheme::kGrpcs));
    }
    service_ = std::make_unique<controller::ControllerService>(o, factory_, registry_);
  }

  csi::v1::CreateVolumeRequest CreateReq(const std::string& name, int64_t bytes = 0) {
    csi::v1::CreateVolumeRequest r;
    r.set_name(name);
    *r.add_volume_capabilities() = MountCap();
    (*r.mutable_parameters())["mgmt-endpoint"] = kEndpoints;
    (*r.mutable_parameters())["replica-count"] = "2";
    (*r.mutable_secrets())["jwt"] = "good-token";
    if (bytes) r.mutable_capacity_range()->set_required_bytes(bytes);
    return r;
  }

  grpc::Status Create(const csi::v1::CreateVolumeRequest& r, csi::v1::CreateVolumeResponse* out) {
    grpc::ServerContext ctx;
    return service_->CreateVolume(&ctx, &r, out);
  }
  std::string MustCreate(const std::string& name, int64_t bytes = 0) {
    csi::v1::CreateVolumeResponse resp;
    grpc::Status s = Create(CreateReq(name, bytes), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.volume().volume_id();
  }
  grpc::Status Delete(const std::string& id) {
    csi::v1::DeleteVolumeRequest r;
    r.set_volume_id(id);
    (*r.mutable_secrets())["jwt"] = "good-token";
    csi::v1::DeleteVolumeResponse resp;
    grpc::ServerContext ctx;
    return service_->DeleteVolume(&ctx, &r, &resp);
  }
  csi::v1::ControllerPublishVolumeRequest PublishReq(const std::string& id, const std::string& node,
                                                     csi::v1::VolumeCapability cap = MountCap()) {
    csi::v1::ControllerPublishVolumeRequest r;
    r.set_volume_id(id);
    r.set_node_id(node);
    *r.mutable_volume_capability() = cap;
    (*r.mutable_secrets())["jwt"] = "good-token";
    return r;
  }
  grpc::Status Publish(const csi::v1::ControllerPublishVolumeRequest& r,
                       csi::v1::ControllerPublishVolumeResponse* out = nullptr) {
    csi::v1::ControllerPublishVolumeResponse local;
    grpc::ServerContext ctx;
    return service_->ControllerPublishVolume(&ctx, &r, out ? out : &local);
  }
  grpc::Status Unpublish(const std::string& id, const std::string& node) {
    csi::v1::ControllerUnpublishVolumeRequest r;
    r.set_volume_id(id);
    r.set_node_id(node);
    (*r.mutable_secrets())["jwt"] = "good-token";
    csi::v1::ControllerUnpublishVolumeResponse resp;
    grpc::ServerContext ctx;
    return service_->ControllerUnpublishVolume(&ctx, &r, &resp);
  }
  grpc::Status Snap(const std::string& source, const std::string& name,
                    csi::v1::CreateSnapshotResponse* out) {
    csi::v1::CreateSnapshotRequest r;
    r.set_source_volume_id(source);
    r.set_name(name);
    (*r.mutable_secrets())["jwt"] = "good-token";
    grpc::ServerContext ctx;
    return service_->CreateSnapshot(&ctx, &r, out);
  }

  metrics::Registry registry_;
  std::shared_ptr<FakeCluster> cluster_;
  std::shared_ptr<FakeFactory> factory_;
  std::unique_ptr<controller::ControllerService> service_;
};

}  // namespace lbcsi::testing
