#include "agent/node_service.h"

#include <arpa/inet.h>

#include <string.h>

#include <algorithm>
#include <chrono>

#include "agent/metrics.h"
#include "agent/request_checks.h"
#include "common/logging.h"
#include "common/status.h"
#include "common/strings.h"
#include "csicontext/keys.h"

namespace lbcsi::agent {

using state::PublishPhase;
using state::PublishRecord;
using state::StagePhase;
using state::StageRecord;
using state::VolumeRecord;

namespace {

absl::Time DeadlineOf(const grpc::ServerContext* ctx) {
  auto d = ctx->deadline();
  if (d == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(d);
}

// Runs a plain-status body at the gRPC edge, with one log line per call.
template <typename Fn>
grpc::Status Edge(metrics::Registry* registry, std::string_view rpc, std::string_view volume_id,
                  Fn&& body) {
  LOG(kInfo, "call", {"rpc", rpc}, {"volume_id", volume_id});
  absl::Time start = absl::Now();
  absl::Status s = body();
  RecordRpc(registry, rpc, s, absl::ToDoubleSeconds(absl::Now() - start));
  if (!s.ok()) {
    LOG(kWarn, "call failed", {"rpc", rpc}, {"volume_id", volume_id}, {"status", s});
  }
  return ToGrpcStatus(s);
}

absl::StatusOr<std::vector<hv1::TargetAddress>> ParseAddresses(std::string_view field,
                                                               std::string_view csv) {
  std::vector<hv1::TargetAddress> out;
  if (csv.empty()) return out;
  for (std::string_view item : Split(csv, ',')) {
    absl::StatusOr<HostPort> hp = ParseHostPort(item);
    if (!hp.ok()) return InvalidField(field, StdView(hp.status().message()));
    unsigned char buf[16];
    if (inet_pton(AF_INET, hp->host.c_str(), buf) != 1 &&
        inet_pton(AF_INET6, hp->host.c_str(), buf) != 1) {
      return InvalidField(field, "\"", hp->host, "\" is not an IP address");
    }
    hv1::TargetAddress a;
    a.set_ip(hp->host);
    a.set_port(hp->port);
    out.push_back(std::move(a));
  }
  return out;
}

hv1::FsType HelperFs(std::string_view fs) {
  if (fs == "ext4") return hv1::FS_TYPE_EXT4;
  if (fs == "xfs") return hv1::FS_TYPE_XFS;
  return hv1::FS_TYPE_UNSPECIFIED;
}

std::vector<int> OptionInts(const ParsedMountFlags& f) {
  return std::vector<int>(f.options.begin(), f.options.end());
}

template <typename Req>
void AddOptions(Req* req, const std::vector<int>& options) {
  for (int o : options) req->add_options(static_cast<hv1::MountOption>(o));
}

bool IsTrue(const google::protobuf::Map<std::string, std::string>& m, const char* key) {
  auto it = m.find(key);
  return it != m.end() && ToLower(it->second) == "true";
}

// Same request, ignoring the phase (and an unspecified fs type on the repeat).
bool SameStage(const StageRecord& have, const StageRecord& want) {
  return have.path == want.path && have.block == want.block && have.read_only == want.read_only &&
         have.access_mode == want.access_mode && have.mount_options == want.mount_options &&
         have.selinux_context == want.selinux_context &&
         (want.fs_type.empty() || have.fs_type == want.fs_type);
}

bool SamePublish(const PublishRecord& a, const PublishRecord& b) {
  return a.block == b.block && a.read_only == b.read_only && a.access_mode == b.access_mode &&
         a.fs_type == b.fs_type && a.mount_options == b.mount_options &&
         a.selinux_context == b.selinux_context;
}

// The node-stage Secret key of the shipped plugin's host-encryption passphrase.
constexpr char kPassphraseKey[] = "host-encryption-passphrase";
constexpr size_t kMaxPassphraseBytes = 512;  // the helper's limit too

// Overwrites a copy of the passphrase once the helper call is done.
void WipePassphrase(hv1::Passphrase* p) {
  std::string* v = p->mutable_value();
  if (!v->empty()) explicit_bzero(v->data(), v->size());
  v->clear();
}

bool IsMultiNode(int access_mode) {
  return access_mode == csi::v1::VolumeCapability::AccessMode::MULTI_NODE_READER_ONLY ||
         access_mode == csi::v1::VolumeCapability::AccessMode::MULTI_NODE_SINGLE_WRITER ||
         access_mode == csi::v1::VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER;
}

std::string_view ProofName(int proof) {
  switch (proof) {
    case hv1::NEVER_WRITTEN_PROOF_WRITTEN_BYTES_ZERO: return "written-bytes-zero";
    case hv1::NEVER_WRITTEN_PROOF_CREATED_EMPTY: return "created-empty";
    default: return "none";
  }
}

}  // namespace

NodeService::NodeService(NodeDeps deps)
    : deps_(std::move(deps)), token_scope_(deps_.config.trusted_clusters) {
  absl::StatusOr<kubeletpaths::KubeletLayouts> layouts =
      kubeletpaths::KubeletLayouts::Create(deps_.config.kubelet_root, deps_.config.driver_name);
  if (layouts.ok()) {
    layouts_ = *std::move(layouts);
  } else {
    LOG(kError, "kubelet path layouts unusable; every path will be refused",
        {"status", layouts.status()});
  }
}

absl::Status NodeService::Checkpoint(std::string_view point) {
  if (!deps_.crash_hook) return absl::OkStatus();
  return deps_.crash_hook(point);
}

absl::Time NodeService::HelperDeadline(absl::Time co_deadline) const {
  return std::min(co_deadline, absl::Now() + deps_.helper_timeout);
}

// ---------------------------------------------------------------- gRPC edges

grpc::Status NodeService::NodeStageVolume(grpc::ServerContext* ctx,
                                          const csi::v1::NodeStageVolumeRequest* req,
                                          csi::v1::NodeStageVolumeResponse*) {
  LOG(kDebug, "request", log::Field::Proto("NodeStageVolume", *req));
  return Edge(deps_.metrics, "NodeStageVolume", req->volume_id(),
              [&] { return Stage(*req, DeadlineOf(ctx)); });
}

grpc::Status NodeService::NodeUnstageVolume(grpc::ServerContext* ctx,
                                            const csi::v1::NodeUnstageVolumeRequest* req,
                                            csi::v1::NodeUnstageVolumeResponse*) {
  LOG(kDebug, "request", log::Field::Proto("NodeUnstageVolume", *req));
  return Edge(deps_.metrics, "NodeUnstageVolume", req->volume_id(),
              [&] { return Unstage(*req, DeadlineOf(ctx)); });
}

grpc::Status NodeService::NodePublishVolume(grpc::ServerContext* ctx,
                                            const csi::v1::NodePublishVolumeRequest* req,
                                            csi::v1::NodePublishVolumeResponse*) {
  LOG(kDebug, "request", log::Field::Proto("NodePublishVolume", *req));
  return Edge(deps_.metrics, "NodePublishVolume", req->volume_id(),
              [&] { return Publish(*req, DeadlineOf(ctx)); });
}

grpc::Status NodeService::NodeUnpublishVolume(grpc::ServerContext* ctx,
                                              const csi::v1::NodeUnpublishVolumeRequest* req,
                                              csi::v1::NodeUnpublishVolumeResponse*) {
  LOG(kDebug, "request", log::Field::Proto("NodeUnpublishVolume", *req));
  return Edge(deps_.metrics, "NodeUnpublishVolume", req->volume_id(),
              [&] { return Unpublish(*req, DeadlineOf(ctx)); });
}

grpc::Status NodeService::NodeGetVolumeStats(grpc::ServerContext* ctx,
                                             const csi::v1::NodeGetVolumeStatsRequest* req,
                                             csi::v1::NodeGetVolumeStatsResponse* resp) {
  // Not logged per call (kubelet polls it), but counted and timed.
  absl::Time start = absl::Now();
  absl::Status s = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, Stats(*req, DeadlineOf(ctx)));
    return absl::OkStatus();
  }();
  RecordRpc(deps_.metrics, "NodeGetVolumeStats", s, absl::ToDoubleSeconds(absl::Now() - start));
  return ToGrpcStatus(s);
}

grpc::Status NodeService::NodeExpandVolume(grpc::ServerContext* ctx,
                                           const csi::v1::NodeExpandVolumeRequest* req,
                                           csi::v1::NodeExpandVolumeResponse* resp) {
  LOG(kDebug, "request", log::Field::Proto("NodeExpandVolume", *req));
  return Edge(deps_.metrics, "NodeExpandVolume", req->volume_id(), [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, Expand(*req, DeadlineOf(ctx)));
    return absl::OkStatus();
  });
}

grpc::Status NodeService::NodeGetCapabilities(grpc::ServerContext*,
                                              const csi::v1::NodeGetCapabilitiesRequest*,
                                              csi::v1::NodeGetCapabilitiesResponse* resp) {
  using T = csi::v1::NodeServiceCapability::RPC;
  for (auto t : {T::STAGE_UNSTAGE_VOLUME, T::EXPAND_VOLUME, T::GET_VOLUME_STATS,
                 T::VOLUME_CONDITION, T::SINGLE_NODE_MULTI_WRITER}) {
    resp->add_capabilities()->mutable_rpc()->set_type(t);
  }
  return grpc::Status::OK;
}

grpc::Status NodeService::NodeGetInfo(grpc::ServerContext*, const csi::v1::NodeGetInfoRequest*,
                                      csi::v1::NodeGetInfoResponse* resp) {
  resp->set_node_id(deps_.config.node_id);
  resp->set_max_volumes_per_node(deps_.config.max_volumes);
  return grpc::Status::OK;
}

// ---------------------------------------------------------------- stage

absl::StatusOr<NodeService::Where> NodeService::ResolveDataPath(
    const ResourceId& id, const google::protobuf::Map<std::string, std::string>& pc,
    const google::protobuf::Map<std::string, std::string>& secrets, absl::Time deadline,
    int* proof) {
  Where w;
  auto get = [&](const char* key) -> std::string {
    auto it = pc.find(key);
    return it == pc.end() ? std::string() : it->second;
  };
  w.subsystem_nqn = get(csictx::kSubsysNqn);
  if (!w.subsystem_nqn.empty()) {
    if (w.subsystem_nqn.size() > 223 || !w.subsystem_nqn.starts_with("nqn.")) {
      return InvalidField(Cat("publish_context[", csictx::kSubsysNqn, "]"), "not an NQN");
    }
    ASSIGN_OR_RETURN(w.nvme, ParseAddresses(Cat("publish_context[", csictx::kNvmeEndpoints, "]"),
                                            get(csictx::kNvmeEndpoints)));
    ASSIGN_OR_RETURN(w.discovery,
                     ParseAddresses(Cat("publish_context[", csictx::kDiscoveryEndpoints, "]"),
                                    get(csictx::kDiscoveryEndpoints)));
    if (w.nvme.empty() && w.discovery.empty()) {
      return InvalidField("publish_context", "names no NVMe or discovery endpoint");
    }
    if (IsTrue(pc, csictx::kNeverWritten)) *proof = hv1::NEVER_WRITTEN_PROOF_WRITTEN_BYTES_ZERO;
    return w;
  }
  // No data-path facts: a volume published by the shipped plugin. Ask LightOS
  // with the node-stage secrets.
  auto jwt = secrets.find("jwt");
  if (jwt == secrets.end() || jwt->second.empty()) {
    return absl::FailedPreconditionError(
        "publish_context carries no data-path information (volume published by the shipped "
        "plugin?) and the node-stage secrets hold no \"jwt\" to ask LightOS");
  }
  if (deps_.lightos == nullptr) {
    return absl::FailedPreconditionError(
        "publish_context carries no data-path information and this agent has no LightOS client");
  }
  lightos::ClusterTarget target{id.mgmt_endpoints, id.EffectiveScheme(), id.project};
  // The volume id names the endpoint: the token goes there only as
  // volumeid/credential_scope.h allows (never in plaintext to an unlisted cluster).
  RETURN_IF_ERROR(token_scope_.CheckRequestToken(target));
  lightos::TokenSource token;
  token.inline_token = jwt->second;
  ASSIGN_OR_RETURN(std::shared_ptr<lightos::Client> client,
                   deps_.lightos->GetClient(target, token));
  lightos::CallOptions opts{deadline};
  ASSIGN_OR_RETURN(lightos::ClusterInfo info, client->GetClusterInfo(opts));
  absl::StatusOr<lightos::Volume> vol = client->GetVolume(id.uuid, opts);
  if (!vol.ok()) return Annotate(vol.status(), "looking up the volume in LightOS");
  if (vol->written_bytes == 0 && vol->source_snapshot_uuid.empty()) {
    *proof = hv1::NEVER_WRITTEN_PROOF_WRITTEN_BYTES_ZERO;
  }
  w.subsystem_nqn = info.subsystem_nqn;
  ASSIGN_OR_RETURN(w.nvme, ParseAddresses("cluster nvme endpoints", [&] {
                     std::string s;
                     for (const auto& e : info.nvme_endpoints) {
                       if (!s.empty()) s += ",";
                       s += e;
                     }
                     return s;
                   }()));
  ASSIGN_OR_RETURN(w.discovery, ParseAddresses("cluster discovery endpoints", [&] {
                     std::string s;
                     for (const auto& e : info.discovery_endpoints) {
                       if (!s.empty()) s += ",";
                       s += e;
                     }
                     return s;
                   }()));
  return w;
}

absl::Status NodeService::AttachProbeFormatMount(const std::string& uuid, const Where& where,
                                                 const StageRecord& stage, int proof,
                                                 std::string_view p, absl::Time deadline,
                                                 std::string_view passphrase,
                                                 const StageOptions& opts) {
  hv1::AttachRequest areq;
  areq.set_volume_uuid(uuid);
  areq.set_subsystem_nqn(where.subsystem_nqn);
  for (const auto& a : where.nvme) *areq.add_nvme_endpoints() = a;
  for (const auto& a : where.discovery) *areq.add_discovery_endpoints() = a;
  ASSIGN_OR_RETURN(hv1::AttachResponse attached,
                   deps_.helper->Attach(areq, HelperDeadline(deadline)));
  LOG(kInfo, "attached", {"volume_uuid", uuid}, {"device", attached.device_name()},
      {"size_bytes", attached.size_bytes()});
  CHECKPOINT(Cat(p, ".after_attach"));
  if (stage.encrypted) {
    RETURN_IF_ERROR(OpenEncryptedVolume(uuid, stage, proof, passphrase, deadline));
    CHECKPOINT(Cat(p, ".after_open"));
  }
  if (stage.block) return absl::OkStatus();

  hv1::ProbeRequest preq;
  preq.set_volume_uuid(uuid);
  preq.set_encrypted(stage.encrypted);
  ASSIGN_OR_RETURN(hv1::ProbeResponse probe, deps_.helper->Probe(preq, HelperDeadline(deadline)));
  CHECKPOINT(Cat(p, ".after_probe"));

  const bool multi_node =
      stage.access_mode == csi::v1::VolumeCapability::AccessMode::MULTI_NODE_READER_ONLY ||
      stage.access_mode == csi::v1::VolumeCapability::AccessMode::MULTI_NODE_SINGLE_WRITER ||
      stage.access_mode == csi::v1::VolumeCapability::AccessMode::MULTI_NODE_MULTI_WRITER;
  std::string fs = stage.fs_type;
  bool fresh = false;
  if (probe.format_in_progress() || probe.kind() == hv1::CONTENT_KIND_BLANK) {
    // Rule 1: a blank probe is not enough; we need proof it was never written,
    // and never for read-only or multi-node volumes.
    if (stage.read_only) {
      return absl::FailedPreconditionError(
          "volume holds no filesystem and is read-only: refusing to format it");
    }
    if (multi_node) {
      return absl::FailedPreconditionError(
          "volume holds no filesystem and is multi-node: refusing to format it");
    }
    if (proof == hv1::NEVER_WRITTEN_PROOF_UNSPECIFIED) {
      return absl::FailedPreconditionError(
          "volume holds no recognisable filesystem and there is no proof it was never written: "
          "refusing to format it");
    }
    if (fs.empty()) fs = "ext4";
    hv1::FormatRequest freq;
    freq.set_volume_uuid(uuid);
    freq.set_fs_type(HelperFs(fs));
    freq.set_proof(static_cast<hv1::NeverWrittenProof>(proof));
    freq.set_encrypted(stage.encrypted);
    *freq.mutable_mkfs() = opts.mkfs;
    LOG(kInfo, "formatting", {"volume_uuid", uuid}, {"fs_type", fs}, {"proof", ProofName(proof)});
    ASSIGN_OR_RETURN(hv1::FormatResponse formatted,
                     deps_.helper->Format(freq, HelperDeadline(deadline)));
    fresh = formatted.formatted();
    CHECKPOINT(Cat(p, ".after_format"));
  } else if (probe.kind() == hv1::CONTENT_KIND_FILESYSTEM) {
    std::string have = ToLower(probe.type());
    if (have != "ext4" && have != "xfs") {
      return absl::FailedPreconditionError(
          Cat("volume holds a ", have, " filesystem; only ext4 and xfs are supported"));
    }
    if (!fs.empty() && fs != have) {
      return absl::FailedPreconditionError(
          Cat("volume holds an ", have, " filesystem but ", fs, " was requested"));
    }
    fs = have;
  } else {
    return absl::FailedPreconditionError(Cat("volume holds a \"", probe.type(),
                                             "\" signature, not a filesystem: refusing to use it"));
  }

  hv1::MountRequest mreq;
  mreq.set_volume_uuid(uuid);
  mreq.set_staging_path(stage.path);
  mreq.set_fs_type(HelperFs(fs));
  mreq.set_read_only(stage.read_only);
  AddOptions(&mreq, stage.mount_options);
  mreq.set_selinux_context(stage.selinux_context);
  mreq.set_encrypted(stage.encrypted);
  mreq.set_create_staging_path(opts.driver_owned_path);
  ASSIGN_OR_RETURN(hv1::MountResponse mounted, deps_.helper->Mount(mreq, HelperDeadline(deadline)));
  (void)mounted;
  CHECKPOINT(Cat(p, ".after_mount"));

  // A restore or clone may be larger than its source, so its filesystem
  // smaller than the device. The helper compares the two sizes itself and
  // grows only when needed (a cheap no-op otherwise), so every volume with a
  // content source is checked. An error fails the stage: a filesystem smaller
  // than the size asked for is not silently handed to the pod.
  if (opts.has_content_source && !fresh && !stage.read_only) {
    hv1::ExpandFilesystemRequest ereq;
    ereq.set_volume_uuid(uuid);
    ereq.set_mount_path(stage.path);
    ereq.set_encrypted(stage.encrypted);
    ASSIGN_OR_RETURN(hv1::ExpandFilesystemResponse grown,
                     deps_.helper->ExpandFilesystem(ereq, HelperDeadline(deadline)));
    if (grown.grown()) {
      LOG(kInfo, "grew filesystem at stage", {"volume_uuid", uuid},
          {"fs_bytes", grown.filesystem_size_bytes()}, {"device_bytes", grown.device_size_bytes()});
    }
  }
  return absl::OkStatus();
}

absl::Status NodeService::OpenEncryptedVolume(const std::string& uuid, const StageRecord& stage,
                                              int proof, std::string_view passphrase,
                                              absl::Time deadline) {
  if (passphrase.empty()) {
    return InvalidField("secrets", "\"", kPassphraseKey,
                        "\" is required to stage a host-encrypted volume");
  }
  hv1::ProbeRequest preq;
  preq.set_volume_uuid(uuid);
  ASSIGN_OR_RETURN(hv1::ProbeResponse raw, deps_.helper->Probe(preq, HelperDeadline(deadline)));
  if (raw.kind() == hv1::CONTENT_KIND_BLANK) {
    // Rule 1 for the LUKS header as for a filesystem.
    if (stage.read_only || IsMultiNode(stage.access_mode)) {
      return absl::FailedPreconditionError(
          "host-encrypted volume holds no LUKS header and is read-only or multi-node: refusing "
          "to format it");
    }
    if (proof == hv1::NEVER_WRITTEN_PROOF_UNSPECIFIED) {
      return absl::FailedPreconditionError(
          "host-encrypted volume holds no LUKS header and there is no proof it was never "
          "written: refusing to format it");
    }
    hv1::FormatEncryptedRequest freq;
    freq.set_volume_uuid(uuid);
    freq.set_proof(static_cast<hv1::NeverWrittenProof>(proof));
    freq.mutable_passphrase()->set_value(std::string(passphrase));
    LOG(kInfo, "formatting LUKS2", {"volume_uuid", uuid}, {"proof", ProofName(proof)});
    absl::StatusOr<hv1::FormatEncryptedResponse> formatted =
        deps_.helper->FormatEncrypted(freq, HelperDeadline(deadline));
    WipePassphrase(freq.mutable_passphrase());
    RETURN_IF_ERROR(formatted.status());
  } else if (raw.kind() != hv1::CONTENT_KIND_CRYPTO) {
    return absl::FailedPreconditionError(
        Cat("volume id says host-encrypted, but the volume holds ",
            raw.type().empty() ? "an unknown signature" : raw.type(),
            ", not a LUKS header: refusing to use it"));
  }
  hv1::OpenEncryptedRequest oreq;
  oreq.set_volume_uuid(uuid);
  oreq.set_read_only(stage.read_only);
  oreq.mutable_passphrase()->set_value(std::string(passphrase));
  absl::StatusOr<hv1::OpenEncryptedResponse> opened =
      deps_.helper->OpenEncrypted(oreq, HelperDeadline(deadline));
  WipePassphrase(oreq.mutable_passphrase());
  RETURN_IF_ERROR(opened.status());
  LOG(kInfo, "opened encrypted volume", {"volume_uuid", uuid}, {"mapping", opened->mapper_name()},
      {"already_open", opened->already_open()});
  return absl::OkStatus();
}

absl::Status NodeService::CloseEncryptedVolume(const std::string& uuid, absl::Time deadline) {
  hv1::CloseEncryptedRequest creq;
  creq.set_volume_uuid(uuid);
  return deps_.helper->CloseEncrypted(creq, HelperDeadline(deadline)).status();
}

absl::Status NodeService::TearDownStage(VolumeRecord& rec, absl::Time deadline, bool undo) {
  if (!rec.stage) return absl::OkStatus();
  // Crash points belong to NodeUnstage; an undo runs inside another operation.
  auto point = [&](std::string_view name) { return undo ? absl::OkStatus() : Checkpoint(name); };
  if (!rec.stage->block) {
    hv1::UnmountRequest ureq;
    ureq.set_staging_path(rec.stage->path);
    absl::Status unmounted = deps_.helper->Unmount(ureq, HelperDeadline(deadline)).status();
    if (undo && !unmounted.ok() && !IsTransient(unmounted)) {
      // A staging path the helper refuses (a symlinked component, ...) never
      // got our mount, as the mount was refused too: when its inventory shows
      // none there, go on and detach, or the record would wedge the volume.
      ASSIGN_OR_RETURN(hv1::InventoryResponse inv,
                       deps_.helper->Inventory(HelperDeadline(deadline)));
      for (const auto& m : inv.mounts()) {
        if (m.path() == rec.stage->path) return unmounted;
      }
      LOG(kWarn, "undo: the helper refuses the staging path and nothing is mounted there",
          {"volume_uuid", rec.volume_uuid}, {"status", unmounted});
    } else if (!unmounted.ok()) {
      return unmounted;
    }
  }
  RETURN_IF_ERROR(point("unstage.after_unmount"));
  if (rec.stage->encrypted) {
    RETURN_IF_ERROR(CloseEncryptedVolume(rec.volume_uuid, deadline));
    RETURN_IF_ERROR(point("unstage.after_close"));
  }
  hv1::DetachRequest dreq;
  dreq.set_volume_uuid(rec.volume_uuid);
  dreq.set_subsystem_nqn(rec.subsystem_nqn);
  RETURN_IF_ERROR(deps_.helper->Detach(dreq, HelperDeadline(deadline)).status());
  RETURN_IF_ERROR(point("unstage.after_detach"));
  rec.stage.reset();
  RETURN_IF_ERROR(deps_.store->Put(rec));
  return point("unstage.after_remove");
}

absl::StatusOr<std::optional<VolumeRecord>> NodeService::LoadRecord(
    const std::string& key, std::string_view volume_id) const {
  ASSIGN_OR_RETURN(std::optional<VolumeRecord> rec, deps_.store->Load(key));
  if (rec || key == volume_id) return rec;
  return deps_.store->Load(volume_id);
}

absl::Status NodeService::UnmountIfOurs(std::string_view path, std::string_view uuid, bool bind,
                                        absl::Time deadline) {
  ASSIGN_OR_RETURN(hv1::InventoryResponse inv, deps_.helper->Inventory(HelperDeadline(deadline)));
  bool mounted = false;
  for (const auto& m : inv.mounts()) {
    if (m.path() != path) continue;
    mounted = true;
    if (uuid.empty() || m.volume_uuid() != uuid) {
      // Another pod's tmpfs, another driver's bind, another volume of ours:
      // this node does not know the volume, so it touches none of them.
      return absl::FailedPreconditionError(
          "the path holds a mount that is not this volume's; this node has no record of the "
          "volume, so it leaves the mount alone");
    }
  }
  if (bind) {
    // Unmounts our bind, or only removes a target directory a lost record left.
    hv1::UnpublishRequest ureq;
    ureq.set_target_path(std::string(path));
    return deps_.helper->Unpublish(ureq, HelperDeadline(deadline)).status();
  }
  if (!mounted) return absl::OkStatus();
  hv1::UnmountRequest ureq;
  ureq.set_staging_path(std::string(path));
  return deps_.helper->Unmount(ureq, HelperDeadline(deadline)).status();
}

absl::Status NodeService::Stage(const csi::v1::NodeStageVolumeRequest& req, absl::Time deadline) {
  RETURN_IF_ERROR(CheckVolumeIdSize(req.volume_id()));
  const std::string key = VolumeKey(req.volume_id());
  RETURN_IF_ERROR(CheckKubeletPath("staging_target_path", req.staging_target_path(), layouts_,
                                   kRequestStagingKinds));
  if (!req.has_volume_capability()) return InvalidField("volume_capability", "is required");
  ASSIGN_OR_RETURN(CapabilityInfo cap,
                   CheckCapability("volume_capability", req.volume_capability()));
  ASSIGN_OR_RETURN(ResourceId id, ParseVolumeId(req.volume_id()));
  std::string_view passphrase;
  if (id.host_encryption) {
    auto it = req.secrets().find(kPassphraseKey);
    if (it == req.secrets().end() || it->second.empty()) {
      return InvalidField("secrets", "\"", kPassphraseKey,
                          "\" is required to stage a host-encrypted volume");
    }
    if (it->second.size() > kMaxPassphraseBytes) {
      return InvalidField("secrets", "\"", kPassphraseKey, "\" is longer than ",
                          kMaxPassphraseBytes, " bytes");
    }
    passphrase = it->second;
  }
  ASSIGN_OR_RETURN(hv1::MkfsOptions mkfs, CheckMkfsOptions(req.volume_context(), cap));
  if (!cap.block && cap.multi_node && !cap.reader_only) {
    return absl::FailedPreconditionError(
        "a filesystem cannot be written from several nodes: use a block volume or a read-only "
        "access mode");
  }
  StageRecord want;
  want.phase = StagePhase::kStaged;
  want.path = req.staging_target_path();
  want.block = cap.block;
  want.fs_type = cap.fs_type;
  want.read_only =
      cap.reader_only || cap.flags.read_only || IsTrue(req.publish_context(), csictx::kReadonly);
  want.access_mode = cap.access_mode;
  want.mount_options = OptionInts(cap.flags);
  want.selinux_context = cap.flags.selinux_context;
  want.encrypted = id.host_encryption;

  InFlight::Guard guard = inflight_.TryAcquire(key);
  if (!guard.held()) {
    return absl::AbortedError("an operation on this volume is in progress");
  }
  ASSIGN_OR_RETURN(std::optional<VolumeRecord> loaded, LoadRecord(key, req.volume_id()));
  VolumeRecord rec = loaded.value_or(VolumeRecord{});
  bool already_staged = false;
  if (rec.stage) {
    if (rec.stage->path != want.path) {
      return absl::FailedPreconditionError("volume is already staged at another staging path");
    }
    if (!SameStage(*rec.stage, want)) {
      return absl::AlreadyExistsError(
          "volume is already staged at this path with a different capability");
    }
    already_staged = rec.stage->phase == StagePhase::kStaged;
    if (want.fs_type.empty()) want.fs_type = rec.stage->fs_type;
  }

  int proof = hv1::NEVER_WRITTEN_PROOF_UNSPECIFIED;
  ASSIGN_OR_RETURN(Where where,
                   ResolveDataPath(id, req.publish_context(), req.secrets(), deadline, &proof));
  if (proof == hv1::NEVER_WRITTEN_PROOF_UNSPECIFIED &&
      IsTrue(req.volume_context(), csictx::kCreatedEmpty)) {
    proof = hv1::NEVER_WRITTEN_PROOF_CREATED_EMPTY;
  }

  CHECKPOINT("stage.before_intent");
  const bool created_now = !already_staged;
  if (created_now) {
    if (rec.volume_id.empty()) rec.volume_id = key;
    rec.volume_uuid = id.uuid;
    rec.subsystem_nqn = where.subsystem_nqn;
    StageRecord intent = want;
    intent.phase = StagePhase::kStaging;
    rec.stage = intent;
    RETURN_IF_ERROR(deps_.store->Save(rec));
  }
  CHECKPOINT("stage.after_intent");

  StageOptions sopts;
  sopts.mkfs = mkfs;
  // Only volumes this driver created empty are known to have no content source.
  auto created_empty = req.volume_context().find(csictx::kCreatedEmpty);
  sopts.has_content_source = created_empty == req.volume_context().end() ||
                             ToLower(created_empty->second) != csictx::kTrue;
  absl::Status s =
      AttachProbeFormatMount(id.uuid, where, want, proof, "stage", deadline, passphrase, sopts);
  if (!s.ok()) {
    if (IsSimulatedCrash(s)) return s;
    // A definite failure leaves nothing behind (kubelet will not call unstage
    // after a final error); a transient one keeps the intent for the retry.
    if (created_now && !KubeletKeepsTrack(s)) {
      absl::Status undo = TearDownStage(rec, deadline, /*undo=*/true);
      if (!undo.ok())
        LOG(kWarn, "undoing a failed stage", {"volume_id", rec.volume_id}, {"status", undo});
    }
    return s;
  }
  // Remember the filesystem actually found or made.
  CHECKPOINT("stage.before_done");
  if (created_now || rec.stage->fs_type != want.fs_type) {
    rec.stage = want;
    rec.stage->phase = StagePhase::kStaged;
    RETURN_IF_ERROR(deps_.store->Save(rec));
  }
  CHECKPOINT("stage.after_done");
  return absl::OkStatus();
}

absl::Status NodeService::Unstage(const csi::v1::NodeUnstageVolumeRequest& req,
                                  absl::Time deadline) {
  RETURN_IF_ERROR(CheckVolumeIdSize(req.volume_id()));
  const std::string key = VolumeKey(req.volume_id());
  RETURN_IF_ERROR(CheckKubeletPath("staging_target_path", req.staging_target_path(), layouts_,
                                   kRequestStagingKinds));
  ASSIGN_OR_RETURN(ResourceId id, ParseVolumeId(req.volume_id()));
  InFlight::Guard guard = inflight_.TryAcquire(key);
  if (!guard.held()) {
    return absl::AbortedError("an operation on this volume is in progress");
  }
  ASSIGN_OR_RETURN(std::optional<VolumeRecord> loaded, LoadRecord(key, req.volume_id()));
  CHECKPOINT("unstage.before_intent");
  if (!loaded || !loaded->stage) {
    // No record (state lost, or already unstaged): converge on what the helper
    // sees, touching only this volume.
    RETURN_IF_ERROR(UnmountIfOurs(req.staging_target_path(), id.uuid, /*bind=*/false, deadline));
    ASSIGN_OR_RETURN(hv1::InventoryResponse inv, deps_.helper->Inventory(HelperDeadline(deadline)));
    bool in_use = false;
    for (const auto& m : inv.mounts()) {
      in_use = in_use || (m.volume_uuid() == id.uuid && m.path() != req.staging_target_path());
    }
    for (const auto& a : inv.attached()) {
      if (a.volume_uuid() == id.uuid && !in_use) {
        if (a.encrypted_open()) RETURN_IF_ERROR(CloseEncryptedVolume(id.uuid, deadline));
        hv1::DetachRequest dreq;
        dreq.set_volume_uuid(id.uuid);
        RETURN_IF_ERROR(deps_.helper->Detach(dreq, HelperDeadline(deadline)).status());
      }
    }
    return absl::OkStatus();
  }
  VolumeRecord rec = *loaded;
  if (rec.stage->path != req.staging_target_path()) {
    LOG(kWarn, "unstage of a path the volume is not staged at; nothing to do",
        {"volume_id", req.volume_id()});
    return absl::OkStatus();
  }
  if (!rec.publishes.empty()) {
    return absl::FailedPreconditionError(
        Cat("volume is still published at ", rec.publishes.size(), " target(s); unpublish first"));
  }
  rec.stage->phase = StagePhase::kUnstaging;
  RETURN_IF_ERROR(deps_.store->Save(rec));
  CHECKPOINT("unstage.after_intent");
  return TearDownStage(rec, deadline, /*undo=*/false);
}

// ---------------------------------------------------------------- publish

absl::Status NodeService::Publish(const csi::v1::NodePublishVolumeRequest& req,
                                  absl::Time deadline) {
  RETURN_IF_ERROR(CheckVolumeIdSize(req.volume_id()));
  const std::string key = VolumeKey(req.volume_id());
  RETURN_IF_ERROR(
      CheckKubeletPath("target_path", req.target_path(), layouts_, kubeletpaths::kPublishKinds));
  if (!req.has_volume_capability()) return InvalidField("volume_capability", "is required");
  ASSIGN_OR_RETURN(CapabilityInfo cap,
                   CheckCapability("volume_capability", req.volume_capability()));
  auto eph = req.volume_context().find(csictx::kEphemeral);
  if (eph != req.volume_context().end() && ToLower(eph->second) == "true") {
    return PublishEphemeral(req, deadline);
  }
  if (req.staging_target_path().empty()) {
    return absl::FailedPreconditionError(
        "staging_target_path is required: this plugin stages volumes (STAGE_UNSTAGE_VOLUME)");
  }
  RETURN_IF_ERROR(CheckKubeletPath("staging_target_path", req.staging_target_path(), layouts_,
                                   kRequestStagingKinds));
  ASSIGN_OR_RETURN(ResourceId id, ParseVolumeId(req.volume_id()));
  PublishRecord want;
  want.phase = PublishPhase::kPublished;
  want.block = cap.block;
  want.read_only = req.readonly() || cap.reader_only || cap.flags.read_only;
  want.access_mode = cap.access_mode;
  want.fs_type = cap.fs_type;
  want.mount_options = OptionInts(cap.flags);
  want.selinux_context = cap.flags.selinux_context;

  InFlight::Guard guard = inflight_.TryAcquire(key);
  if (!guard.held()) {
    return absl::AbortedError("an operation on this volume is in progress");
  }
  ASSIGN_OR_RETURN(std::optional<VolumeRecord> loaded, LoadRecord(key, req.volume_id()));
  if (!loaded || !loaded->stage || loaded->stage->phase != StagePhase::kStaged ||
      loaded->stage->path != req.staging_target_path()) {
    return absl::FailedPreconditionError(
        "volume is not staged at staging_target_path: call NodeStageVolume first");
  }
  VolumeRecord rec = *loaded;
  if (rec.stage->block != want.block) {
    return absl::FailedPreconditionError(
        want.block ? "volume is staged as a filesystem, not as a block device"
                   : "volume is staged as a block device, not as a filesystem");
  }
  if (rec.stage->read_only && !want.read_only) {
    return absl::FailedPreconditionError(
        "volume is staged read-only; it cannot be published read-write");
  }
  if (!want.block && want.fs_type.empty()) want.fs_type = rec.stage->fs_type;
  if (!want.block && want.fs_type != rec.stage->fs_type) {
    return absl::FailedPreconditionError(
        Cat("volume is staged with ", rec.stage->fs_type, ", not ", want.fs_type));
  }
  auto existing = rec.publishes.find(req.target_path());
  if (existing != rec.publishes.end()) {
    if (!SamePublish(existing->second, want)) {
      return absl::AlreadyExistsError(
          "volume is already published at target_path with different arguments");
    }
  } else if (!rec.publishes.empty() && !(cap.multi_writer)) {
    return absl::FailedPreconditionError(
        "volume is already published at another target and its access mode allows only one");
  }

  CHECKPOINT("publish.before_intent");
  // Not yet published (new, or left by an attempt that failed transiently):
  // a final failure now must forget it, as kubelet will not unpublish.
  const bool not_published =
      existing == rec.publishes.end() || existing->second.phase != PublishPhase::kPublished;
  if (not_published) {
    PublishRecord intent = want;
    intent.phase = PublishPhase::kPublishing;
    rec.publishes[req.target_path()] = intent;
    RETURN_IF_ERROR(deps_.store->Save(rec));
  }
  CHECKPOINT("publish.after_intent");
  hv1::PublishRequest preq;
  preq.set_volume_uuid(rec.volume_uuid);
  preq.set_target_path(req.target_path());
  if (want.block) {
    preq.set_block_device(true);
  } else {
    preq.set_staging_path(rec.stage->path);
  }
  preq.set_read_only(want.read_only);
  // kubelet sends the same mount flags to stage and publish; nouuid belongs to
  // the xfs superblock mounted at stage, and a bind mount inherits it.
  for (int o : want.mount_options) {
    if (o != hv1::MOUNT_OPTION_NOUUID) preq.add_options(static_cast<hv1::MountOption>(o));
  }
  preq.set_selinux_context(want.selinux_context);
  // Encrypted: the helper binds the decrypted device (block) or checks the
  // staged mount against it; the raw device is never published.
  preq.set_encrypted(rec.stage->encrypted || id.host_encryption);
  absl::StatusOr<hv1::PublishResponse> published =
      deps_.helper->Publish(preq, HelperDeadline(deadline));
  if (!published.ok()) {
    if (not_published && !KubeletKeepsTrack(published.status())) {
      rec.publishes.erase(req.target_path());
      absl::Status undo = deps_.store->Put(rec);
      if (!undo.ok()) LOG(kWarn, "forgetting a failed publish", {"status", undo});
    }
    return published.status();
  }
  CHECKPOINT("publish.after_publish");
  if (rec.publishes[req.target_path()].phase != PublishPhase::kPublished) {
    rec.publishes[req.target_path()] = want;
    RETURN_IF_ERROR(deps_.store->Save(rec));
  }
  CHECKPOINT("publish.after_done");
  return absl::OkStatus();
}

absl::Status NodeService::Unpublish(const csi::v1::NodeUnpublishVolumeRequest& req,
                                    absl::Time deadline) {
  RETURN_IF_ERROR(CheckVolumeIdSize(req.volume_id()));
  const std::string key = VolumeKey(req.volume_id());
  RETURN_IF_ERROR(
      CheckKubeletPath("target_path", req.target_path(), layouts_, kubeletpaths::kPublishKinds));
  InFlight::Guard guard = inflight_.TryAcquire(key);
  if (!guard.held()) {
    return absl::AbortedError("an operation on this volume is in progress");
  }
  ASSIGN_OR_RETURN(std::optional<VolumeRecord> loaded, LoadRecord(key, req.volume_id()));
  if (loaded && loaded->ephemeral && loaded->ephemeral->target_path == req.target_path()) {
    VolumeRecord rec = *loaded;
    return DeleteEphemeral(rec, deadline, /*from_reconcile=*/false);
  }
  CHECKPOINT("unpublish.before_intent");
  std::optional<VolumeRecord> rec = loaded;
  bool known = rec && rec->publishes.count(req.target_path()) > 0;
  if (known) {
    rec->publishes[req.target_path()].phase = PublishPhase::kUnpublishing;
    RETURN_IF_ERROR(deps_.store->Save(*rec));
  }
  CHECKPOINT("unpublish.after_intent");
  if (known) {
    hv1::UnpublishRequest ureq;
    ureq.set_target_path(req.target_path());
    RETURN_IF_ERROR(deps_.helper->Unpublish(ureq, HelperDeadline(deadline)).status());
  } else {
    // Unknown here: "already gone" is success, a target directory a lost
    // record left is removed, and only a bind of this very volume is undone.
    absl::StatusOr<ResourceId> id = ParseResourceId(req.volume_id());
    RETURN_IF_ERROR(
        UnmountIfOurs(req.target_path(), id.ok() ? id->uuid : "", /*bind=*/true, deadline));
  }
  CHECKPOINT("unpublish.after_unpublish");
  if (known) {
    rec->publishes.erase(req.target_path());
    RETURN_IF_ERROR(deps_.store->Put(*rec));
  }
  CHECKPOINT("unpublish.after_remove");
  return absl::OkStatus();
}

// ---------------------------------------------------------------- stats / expand

absl::StatusOr<csi::v1::NodeGetVolumeStatsResponse> NodeService::Stats(
    const csi::v1::NodeGetVolumeStatsRequest& req, absl::Time deadline) {
  RETURN_IF_ERROR(CheckVolumeIdSize(req.volume_id()));
  if (req.volume_path().empty()) return InvalidField("volume_path", "is required");
  RETURN_IF_ERROR(CheckKubeletPath("staging_target_path", req.staging_target_path(), layouts_,
                                   kRequestStagingKinds, /*required=*/false));
  // Existence first (the spec's NOT_FOUND row): a volume_path is only compared with the paths
  // this node recorded for the volume, which were checked against kubelet's layouts when they
  // were recorded, so a path that cannot be one of ours is simply not found.
  const std::string key = VolumeKey(req.volume_id());
  ASSIGN_OR_RETURN(std::optional<VolumeRecord> rec, LoadRecord(key, req.volume_id()));
  const std::string& path = req.volume_path();
  bool known =
      rec &&
      ((rec->stage && rec->stage->path == path && rec->stage->phase == StagePhase::kStaged) ||
       rec->publishes.count(path) > 0 ||
       (rec->ephemeral && rec->ephemeral->target_path == path &&
        rec->ephemeral->phase == state::EphemeralPhase::kPublished));
  if (!known) {
    return absl::NotFoundError("volume is not staged or published at volume_path on this node");
  }
  hv1::StatsRequest sreq;
  sreq.set_volume_uuid(rec->volume_uuid);
  sreq.set_path(path);
  sreq.set_encrypted(rec->stage && rec->stage->encrypted);
  // A block staging path holds no mount: the helper reports the device by UUID.
  sreq.set_block(rec->stage && rec->stage->block);
  ASSIGN_OR_RETURN(hv1::StatsResponse st, deps_.helper->Stats(sreq, HelperDeadline(deadline)));
  csi::v1::NodeGetVolumeStatsResponse resp;
  auto clamp = [](uint64_t v) { return static_cast<int64_t>(std::min<uint64_t>(v, INT64_MAX)); };
  auto* bytes = resp.add_usage();
  bytes->set_unit(csi::v1::VolumeUsage::BYTES);
  bytes->set_total(clamp(st.total_bytes()));
  if (!st.is_block()) {
    bytes->set_available(clamp(st.available_bytes()));
    bytes->set_used(clamp(st.used_bytes()));
    auto* inodes = resp.add_usage();
    inodes->set_unit(csi::v1::VolumeUsage::INODES);
    inodes->set_total(clamp(st.total_inodes()));
    inodes->set_available(clamp(st.free_inodes()));
    inodes->set_used(clamp(st.used_inodes()));
  }
  resp.mutable_volume_condition()->set_abnormal(st.condition().abnormal());
  resp.mutable_volume_condition()->set_message(
      st.condition().message().empty() ? (st.condition().abnormal() ? "abnormal" : "healthy")
                                       : st.condition().message());
  return resp;
}

absl::StatusOr<csi::v1::NodeExpandVolumeResponse> NodeService::Expand(
    const csi::v1::NodeExpandVolumeRequest& req, absl::Time deadline) {
  RETURN_IF_ERROR(CheckVolumeIdSize(req.volume_id()));
  if (req.volume_path().empty()) return InvalidField("volume_path", "is required");
  const std::string key = VolumeKey(req.volume_id());
  RETURN_IF_ERROR(CheckKubeletPath("staging_target_path", req.staging_target_path(), layouts_,
                                   kRequestStagingKinds, /*required=*/false));
  int64_t required = req.capacity_range().required_bytes();
  int64_t limit = req.capacity_range().limit_bytes();
  if (required < 0 || limit < 0) return InvalidField("capacity_range", "must not be negative");
  if (limit > 0 && required > limit) {
    return absl::OutOfRangeError("capacity_range: required_bytes exceeds limit_bytes");
  }
  std::optional<bool> cap_block;
  if (req.has_volume_capability()) {
    ASSIGN_OR_RETURN(CapabilityInfo cap,
                     CheckCapability("volume_capability", req.volume_capability()));
    cap_block = cap.block;
  }
  ASSIGN_OR_RETURN(std::optional<VolumeRecord> rec, LoadRecord(key, req.volume_id()));
  const std::string& path = req.volume_path();
  bool known = rec && ((rec->stage && rec->stage->path == path) || rec->publishes.count(path) > 0 ||
                       (rec->ephemeral && rec->ephemeral->target_path == path));
  if (!known || rec->volume_uuid.empty()) {
    return absl::NotFoundError("volume is not staged or published at volume_path on this node");
  }
  bool block = rec->stage ? rec->stage->block : false;
  if (cap_block && *cap_block != block) {
    return InvalidField("volume_capability", "does not match how the volume is staged");
  }
  if (rec->stage && rec->stage->read_only && !block) {
    return absl::FailedPreconditionError("volume is staged read-only; its filesystem cannot grow");
  }
  InFlight::Guard guard = inflight_.TryAcquire(key);
  if (!guard.held()) {
    return absl::AbortedError("an operation on this volume is in progress");
  }
  hv1::ExpandFilesystemRequest ereq;
  ereq.set_volume_uuid(rec->volume_uuid);
  if (!block) ereq.set_mount_path(rec->stage ? rec->stage->path : path);
  ereq.set_encrypted(rec->stage && rec->stage->encrypted);
  ASSIGN_OR_RETURN(hv1::ExpandFilesystemResponse grown,
                   deps_.helper->ExpandFilesystem(ereq, HelperDeadline(deadline)));
  if (required > 0 && grown.device_size_bytes() < static_cast<uint64_t>(required)) {
    return absl::UnavailableError(
        Cat("the device is ", grown.device_size_bytes(), " bytes, less than the ", required,
            " requested; the LightOS resize is not visible on this node yet"));
  }
  csi::v1::NodeExpandVolumeResponse resp;
  // The volume's capacity as the node now sees it (the filesystem is a little
  // smaller: its metadata lives inside).
  uint64_t size = grown.device_size_bytes();
  resp.set_capacity_bytes(static_cast<int64_t>(std::min<uint64_t>(size, INT64_MAX)));
  return resp;
}

}  // namespace lbcsi::agent
