#pragma once
// CO-like CSI calls against a Stack: request builders that fill every field a
// CO would (kubelet-style staging/target paths under the stack's kubelet
// root, the StorageClass parameters and secrets), each call with a deadline.

#include <chrono>
#include <filesystem>
#include <set>
#include <string>

#include "csi/v1/csi.grpc.pb.h"
#include "csicontext/keys.h"
#include "kubeletpaths/kubelet_paths.h"
#include "tests/conformance/stack.h"

namespace lbcsi::conformance {

using Mode = csi::v1::VolumeCapability::AccessMode;
inline constexpr int64_t kGiB = int64_t{1} << 30;

inline csi::v1::VolumeCapability MountCap(const std::string& fs = "ext4",
                                          Mode::Mode mode = Mode::SINGLE_NODE_WRITER) {
  csi::v1::VolumeCapability c;
  c.mutable_mount()->set_fs_type(fs);
  c.mutable_access_mode()->set_mode(mode);
  return c;
}
inline csi::v1::VolumeCapability BlockCap(Mode::Mode mode = Mode::SINGLE_NODE_WRITER) {
  csi::v1::VolumeCapability c;
  c.mutable_block();
  c.mutable_access_mode()->set_mode(mode);
  return c;
}

class CsiClient {
 public:
  explicit CsiClient(Stack& stack, int deadline_seconds = 60)
      : s_(stack), deadline_(deadline_seconds) {}

  // Where kubelet would put a PV's staging dir and a pod's target for it (kubeletpaths: the
  // helper accepts no others). A PV staged or published as a block volume gets kubelet's
  // volumeDevices paths from then on.
  kubeletpaths::KubeletLayouts Layouts() const {
    return *kubeletpaths::KubeletLayouts::Create(s_.kubelet_root(), "csi.lightbitslabs.com");
  }
  std::string Staging(const std::string& pv) const {
    return block_pvs_.count(pv) ? Layouts().StageBlockPath(pv)
                                : Layouts().StageMountPathForHandle(pv);
  }
  std::string Target(const std::string& pv, const std::string& pod = "pod1") const {
    return block_pvs_.count(pv) ? Layouts().PublishBlockPath(pv, pod)
                                : Layouts().PublishMountPath(pod, pv);
  }

  csi::v1::CreateVolumeRequest CreateReq(const std::string& name, int64_t bytes = kGiB,
                                         const csi::v1::VolumeCapability& cap = MountCap()) const {
    csi::v1::CreateVolumeRequest r;
    r.set_name(name);
    *r.add_volume_capabilities() = cap;
    r.mutable_capacity_range()->set_required_bytes(bytes);
    for (const auto& [k, v] : s_.Parameters()) (*r.mutable_parameters())[k] = v;
    for (const auto& [k, v] : s_.Secrets()) (*r.mutable_secrets())[k] = v;
    return r;
  }
  csi::v1::DeleteVolumeRequest DeleteReq(const std::string& id) const {
    csi::v1::DeleteVolumeRequest r;
    r.set_volume_id(id);
    for (const auto& [k, v] : s_.Secrets()) (*r.mutable_secrets())[k] = v;
    return r;
  }
  csi::v1::ControllerPublishVolumeRequest PublishReq(
      const std::string& id, const csi::v1::VolumeCapability& cap = MountCap(),
      const std::string& node = Stack::kNodeId) const {
    csi::v1::ControllerPublishVolumeRequest r;
    r.set_volume_id(id);
    r.set_node_id(node);
    *r.mutable_volume_capability() = cap;
    for (const auto& [k, v] : s_.Secrets()) (*r.mutable_secrets())[k] = v;
    return r;
  }
  csi::v1::ControllerUnpublishVolumeRequest UnpublishReq(
      const std::string& id, const std::string& node = Stack::kNodeId) const {
    csi::v1::ControllerUnpublishVolumeRequest r;
    r.set_volume_id(id);
    r.set_node_id(node);
    for (const auto& [k, v] : s_.Secrets()) (*r.mutable_secrets())[k] = v;
    return r;
  }
  csi::v1::CreateSnapshotRequest SnapshotReq(const std::string& source,
                                             const std::string& name) const {
    csi::v1::CreateSnapshotRequest r;
    r.set_source_volume_id(source);
    r.set_name(name);
    for (const auto& [k, v] : s_.Secrets()) (*r.mutable_secrets())[k] = v;
    return r;
  }
  csi::v1::DeleteSnapshotRequest DeleteSnapshotReq(const std::string& id) const {
    csi::v1::DeleteSnapshotRequest r;
    r.set_snapshot_id(id);
    for (const auto& [k, v] : s_.Secrets()) (*r.mutable_secrets())[k] = v;
    return r;
  }
  csi::v1::ControllerExpandVolumeRequest ExpandReq(const std::string& id, int64_t bytes) const {
    csi::v1::ControllerExpandVolumeRequest r;
    r.set_volume_id(id);
    r.mutable_capacity_range()->set_required_bytes(bytes);
    *r.mutable_volume_capability() = MountCap();
    for (const auto& [k, v] : s_.Secrets()) (*r.mutable_secrets())[k] = v;
    return r;
  }
  csi::v1::NodeStageVolumeRequest StageReq(
      const std::string& id, const std::string& pv,
      const google::protobuf::Map<std::string, std::string>& publish_context,
      const csi::v1::VolumeCapability& cap = MountCap()) const {
    csi::v1::NodeStageVolumeRequest r;
    if (cap.has_block()) block_pvs_.insert(pv);
    r.set_volume_id(id);
    r.set_staging_target_path(Staging(pv));
    *r.mutable_volume_capability() = cap;
    *r.mutable_publish_context() = publish_context;
    return r;
  }
  csi::v1::NodeUnstageVolumeRequest UnstageReq(const std::string& id, const std::string& pv) const {
    csi::v1::NodeUnstageVolumeRequest r;
    r.set_volume_id(id);
    r.set_staging_target_path(Staging(pv));
    return r;
  }
  csi::v1::NodePublishVolumeRequest NodePublishReq(
      const std::string& id, const std::string& pv,
      const google::protobuf::Map<std::string, std::string>& publish_context,
      const csi::v1::VolumeCapability& cap = MountCap(), bool readonly = false,
      const std::string& pod = "pod1") const {
    csi::v1::NodePublishVolumeRequest r;
    if (cap.has_block()) block_pvs_.insert(pv);
    r.set_volume_id(id);
    r.set_staging_target_path(Staging(pv));
    r.set_target_path(Target(pv, pod));
    *r.mutable_volume_capability() = cap;
    *r.mutable_publish_context() = publish_context;
    r.set_readonly(readonly);
    return r;
  }
  csi::v1::NodeUnpublishVolumeRequest NodeUnpublishReq(const std::string& id, const std::string& pv,
                                                       const std::string& pod = "pod1") const {
    csi::v1::NodeUnpublishVolumeRequest r;
    r.set_volume_id(id);
    r.set_target_path(Target(pv, pod));
    return r;
  }
  csi::v1::NodeExpandVolumeRequest NodeExpandReq(
      const std::string& id, const std::string& pv, int64_t bytes,
      const csi::v1::VolumeCapability& cap = MountCap()) const {
    csi::v1::NodeExpandVolumeRequest r;
    r.set_volume_id(id);
    r.set_volume_path(Target(pv));
    r.set_staging_target_path(Staging(pv));
    r.mutable_capacity_range()->set_required_bytes(bytes);
    *r.mutable_volume_capability() = cap;
    return r;
  }

  // What kubelet does before the calls: the staging dir and the target's parent exist (for
  // both volume modes: which one the PV has is known only at stage time).
  void PrepareNodeDirs(const std::string& pv, const std::string& pod = "pod1") const {
    const kubeletpaths::KubeletLayouts l = Layouts();
    std::filesystem::create_directories(l.StageMountPathForHandle(pv));
    std::filesystem::create_directories(l.StageBlockPath(pv));
    std::filesystem::create_directories(
        std::filesystem::path(l.PublishMountPath(pod, pv)).parent_path());
    std::filesystem::create_directories(
        std::filesystem::path(l.PublishBlockPath(pv, pod)).parent_path());
  }

  // One call with a deadline: C(&Stub::Method, request, &response).
  template <typename Stub, typename Req, typename Resp>
  grpc::Status C(grpc::Status (Stub::*fn)(grpc::ClientContext*, const Req&, Resp*), const Req& req,
                 Resp* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(deadline_));
    return (StubFor<Stub>().*fn)(&ctx, req, resp);
  }
  // Same, discarding the response.
  template <typename Stub, typename Req, typename Resp>
  grpc::Status C(grpc::Status (Stub::*fn)(grpc::ClientContext*, const Req&, Resp*),
                 const Req& req) {
    Resp resp;
    return C(fn, req, &resp);
  }

 private:
  template <typename Stub>
  Stub& StubFor() {
    if constexpr (std::is_same_v<Stub, csi::v1::Controller::Stub>) {
      return s_.controller();
    } else {
      return s_.node();
    }
  }

  Stack& s_;
  int deadline_;
  mutable std::set<std::string> block_pvs_;  // PVs used as raw block volumes
};

}  // namespace lbcsi::conformance
