// Inline ephemeral volumes: created at NodePublish, deleted at NodeUnpublish
// (or by the start-up reconcile). The pod spec is hostile input: the cluster,
// project, credentials and limits come only from the node's configuration.

#include "agent/node_service.h"
#include "agent/request_checks.h"
#include "common/logging.h"
#include "common/plugin_dir.h"
#include "common/sha256.h"
#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::agent {

using state::EphemeralPhase;
using state::EphemeralRecord;
using state::VolumeRecord;

namespace {

constexpr char kLabelNode[] = "lbcsi-node";
constexpr char kLabelVolume[] = "lbcsi-ephemeral-volume";
constexpr char kLabelOwner[] = "lbcsi-owner";

// Keys kubelet itself adds to an inline volume's context (pod info).
bool IsKubeletKey(std::string_view key) {
  static constexpr std::string_view kKeys[] = {
      "csi.storage.k8s.io/ephemeral", "csi.storage.k8s.io/pod.name",
      "csi.storage.k8s.io/pod.namespace", "csi.storage.k8s.io/pod.uid",
      "csi.storage.k8s.io/serviceAccount.name"};
  for (std::string_view k : kKeys) {
    if (key == k) return true;
  }
  return false;
}

// Label values: what LightOS names accept, bounded.
std::string LabelValue(std::string_view s) {
  std::string out;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    out.push_back(ok ? c : '_');
    if (out.size() == 63) break;
  }
  return out;
}

// The smallest filesystems mkfs makes (xfsprogs refuses data sections under 300 MiB).
constexpr uint64_t kMinInlineExt4Bytes = 16ull << 20;
constexpr uint64_t kMinInlineXfsBytes = 300ull << 20;

struct EphemeralParams {
  uint64_t size_bytes = 0;
  uint32_t replica_count = 1;
  bool compression = false;
  std::string fs_type;
};

absl::StatusOr<EphemeralParams> CheckAttributes(
    const EphemeralConfig& cfg, const google::protobuf::Map<std::string, std::string>& ctx,
    const std::string& cap_fs) {
  EphemeralParams p;
  p.size_bytes = cfg.default_size_bytes;
  p.replica_count = cfg.default_replica_count;
  p.compression = cfg.default_compression;
  std::string attr_fs;
  for (const auto& [key, value] : ctx) {
    std::string field = Cat("volume_context[\"", key, "\"]");
    if (IsKubeletKey(key)) continue;
    if (key == "size") {
      absl::StatusOr<uint64_t> size = ParseByteSize(value);
      // Never echo the value: the pod spec is untrusted.
      if (!size.ok()) return InvalidField(field, "is not a byte count such as 1Gi or 512Mi");
      if (*size == 0) return InvalidField(field, "must be positive");
      if (*size > cfg.max_size_bytes) {
        return InvalidField(field, "exceeds this node's limit of ", cfg.max_size_bytes, " bytes");
      }
      p.size_bytes = *size;
    } else if (key == "replica-count") {
      if (value.size() != 1 || value[0] < '1' || value[0] > '9' ||
          static_cast<uint32_t>(value[0] - '0') > cfg.max_replica_count) {
        return InvalidField(field, "must be 1..", cfg.max_replica_count);
      }
      p.replica_count = static_cast<uint32_t>(value[0] - '0');
    } else if (key == "compression") {
      std::string v = ToLower(value);
      if (v == "enabled" || v == "true") {
        p.compression = true;
      } else if (v == "disabled" || v == "false") {
        p.compression = false;
      } else {
        return InvalidField(field, "must be enabled or disabled");
      }
    } else if (key == "fs-type") {
      attr_fs = ToLower(value);
      if (attr_fs != "ext4" && attr_fs != "xfs") return InvalidField(field, "must be ext4 or xfs");
    } else {
      // Never echo the value: the pod spec is untrusted.
      return InvalidField(field, "is not allowed for inline ephemeral volumes");
    }
  }
  if (!cap_fs.empty() && !attr_fs.empty() && cap_fs != attr_fs) {
    return InvalidField("volume_context[\"fs-type\"]",
                        "contradicts volume_capability.mount.fs_type");
  }
  p.fs_type = !cap_fs.empty() ? cap_fs : !attr_fs.empty() ? attr_fs : cfg.default_fs_type;
  // Refused here, before anything is created: mkfs cannot make a filesystem
  // this small, and a failed publish of an inline volume is never unpublished.
  const uint64_t min_bytes = p.fs_type == "xfs" ? kMinInlineXfsBytes : kMinInlineExt4Bytes;
  if (p.size_bytes < min_bytes) {
    return InvalidField("volume_context[\"size\"]", "must be at least ", min_bytes, " bytes for ",
                        p.fs_type);
  }
  return p;
}

}  // namespace

std::string NodeService::EphemeralVolumeName(std::string_view volume_id) {
  return Cat("eph-", Sha256Hex(volume_id).substr(0, 40));
}

std::string NodeService::EphemeralStagingPath(std::string_view volume_id) const {
  return Cat(deps_.config.kubelet_root, "/plugins/", deps_.config.driver_name, "/",
             kEphemeralDirName, "/", Sha256Hex(volume_id).substr(0, 40));
}

absl::StatusOr<std::shared_ptr<lightos::Client>> NodeService::EphemeralClient() {
  if (!deps_.config.ephemeral || deps_.lightos == nullptr) {
    return absl::FailedPreconditionError(
        "inline ephemeral volumes are not enabled on this node (--ephemeral-config)");
  }
  const EphemeralConfig& cfg = *deps_.config.ephemeral;
  lightos::ClusterTarget target{cfg.mgmt_endpoints, cfg.scheme, cfg.project};
  lightos::TokenSource token;
  token.token_file = cfg.token_file;
  return deps_.lightos->GetClient(target, token);
}

absl::Status NodeService::PublishEphemeral(const csi::v1::NodePublishVolumeRequest& req,
                                           absl::Time deadline) {
  if (!deps_.config.ephemeral || deps_.lightos == nullptr) {
    return absl::FailedPreconditionError(
        "inline ephemeral volumes are not enabled on this node (--ephemeral-config)");
  }
  ASSIGN_OR_RETURN(CapabilityInfo cap,
                   CheckCapability("volume_capability", req.volume_capability()));
  if (cap.block) return InvalidField("volume_capability", "inline volumes must be filesystems");
  if (cap.multi_node) {
    // As CreateVolume: a filesystem cannot be shared between nodes, and an
    // inline volume belongs to one pod on this node.
    return InvalidField("volume_capability.access_mode", "inline volumes are single-node");
  }
  ASSIGN_OR_RETURN(EphemeralParams params,
                   CheckAttributes(*deps_.config.ephemeral, req.volume_context(), cap.fs_type));
  const bool read_only = req.readonly() || cap.reader_only || cap.flags.read_only;

  const std::string key = VolumeKey(req.volume_id());
  InFlight::Guard guard = inflight_.TryAcquire(key);
  if (!guard.held()) return absl::AbortedError("an operation on this volume is in progress");
  ASSIGN_OR_RETURN(std::optional<VolumeRecord> loaded, LoadRecord(key, req.volume_id()));
  if (loaded && !loaded->ephemeral) {
    return absl::FailedPreconditionError("volume_id names a persistent volume on this node");
  }
  EphemeralRecord want;
  want.phase = EphemeralPhase::kCreating;
  want.lightos_name = EphemeralVolumeName(req.volume_id());
  want.staging_path = EphemeralStagingPath(req.volume_id());
  want.target_path = req.target_path();
  want.size_bytes = params.size_bytes;
  want.replica_count = params.replica_count;
  want.compression = params.compression;
  want.fs_type = params.fs_type;
  VolumeRecord rec;
  if (loaded) {
    rec = *loaded;
    EphemeralRecord have = *rec.ephemeral;
    if (have.target_path != want.target_path) {
      return absl::FailedPreconditionError("inline volume is already published at another target");
    }
    want.phase = have.phase;
    if (!(have == want)) {
      return absl::AlreadyExistsError("inline volume is already published with other attributes");
    }
    if (have.phase == EphemeralPhase::kDeleting) {
      return absl::FailedPreconditionError("inline volume is being deleted; retry later");
    }
  } else {
    CHECKPOINT("eph_publish.before_intent");
    rec.volume_id = req.volume_id();
    rec.ephemeral = want;
    RETURN_IF_ERROR(deps_.store->Save(rec));
  }
  CHECKPOINT("eph_publish.after_intent");

  auto body = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::shared_ptr<lightos::Client> client, EphemeralClient());
    lightos::CallOptions opts{deadline};
    if (rec.ephemeral->phase == EphemeralPhase::kCreating) {
      lightos::CreateVolumeSpec spec;
      spec.name = want.lightos_name;
      spec.size_bytes = want.size_bytes;
      spec.replica_count = want.replica_count;
      spec.compression = want.compression;
      spec.acl = {deps_.config.host_nqn};
      spec.labels = {{kLabelNode, LabelValue(deps_.config.node_id)},
                     {kLabelVolume, LabelValue(req.volume_id())},
                     {kLabelOwner, "lbcsi-agent"}};
      absl::StatusOr<lightos::Volume> vol = client->CreateVolume(spec, opts);
      if (absl::IsAlreadyExists(vol.status())) {
        // A create that succeeded before a crash: adopt it only if it is ours.
        vol = client->GetVolumeByName(want.lightos_name, opts);
        if (vol.ok() && (vol->labels[kLabelNode] != LabelValue(deps_.config.node_id) ||
                         vol->labels[kLabelVolume] != LabelValue(req.volume_id()))) {
          return absl::FailedPreconditionError(
              Cat("a LightOS volume named ", want.lightos_name, " exists and is not this one"));
        }
      }
      if (!vol.ok()) return Annotate(vol.status(), "creating the inline volume in LightOS");
      CHECKPOINT("eph_publish.after_create");
      ASSIGN_OR_RETURN(lightos::ClusterInfo info, client->GetClusterInfo(opts));
      rec.volume_uuid = vol->uuid;
      rec.subsystem_nqn = info.subsystem_nqn;
      rec.ephemeral->phase = EphemeralPhase::kCreated;
      RETURN_IF_ERROR(deps_.store->Save(rec));
    }
    CHECKPOINT("eph_publish.after_created");
    ASSIGN_OR_RETURN(lightos::ClusterInfo info, client->GetClusterInfo(opts));
    Where where;
    where.subsystem_nqn = info.subsystem_nqn;
    for (const auto& e : info.nvme_endpoints) {
      ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(e));
      hv1::TargetAddress a;
      a.set_ip(hp.host);
      a.set_port(hp.port);
      where.nvme.push_back(a);
    }
    for (const auto& e : info.discovery_endpoints) {
      ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(e));
      hv1::TargetAddress a;
      a.set_ip(hp.host);
      a.set_port(hp.port);
      where.discovery.push_back(a);
    }
    state::StageRecord stage;
    stage.path = want.staging_path;
    stage.fs_type = want.fs_type;
    stage.access_mode = csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER;
    StageOptions sopts;
    sopts.driver_owned_path = true;  // the helper creates the private mount point
    RETURN_IF_ERROR(AttachProbeFormatMount(rec.volume_uuid, where, stage,
                                           hv1::NEVER_WRITTEN_PROOF_CREATED_EMPTY, "eph_publish",
                                           deadline, /*passphrase=*/{}, sopts));
    hv1::PublishRequest preq;
    preq.set_volume_uuid(rec.volume_uuid);
    preq.set_target_path(want.target_path);
    preq.set_staging_path(want.staging_path);
    preq.set_read_only(read_only);
    for (auto o : cap.flags.options) preq.add_options(o);
    preq.set_selinux_context(cap.flags.selinux_context);
    RETURN_IF_ERROR(deps_.helper->Publish(preq, HelperDeadline(deadline)).status());
    CHECKPOINT("eph_publish.after_publish");
    if (rec.ephemeral->phase != EphemeralPhase::kPublished) {
      rec.ephemeral->phase = EphemeralPhase::kPublished;
      RETURN_IF_ERROR(deps_.store->Save(rec));
    }
    CHECKPOINT("eph_publish.after_done");
    return absl::OkStatus();
  };
  absl::Status s = body();
  if (!s.ok() && !IsSimulatedCrash(s) && !KubeletKeepsTrack(s) &&
      rec.ephemeral->phase != EphemeralPhase::kPublished) {
    // A definite failure: take back everything this publish made.
    absl::Status undo = DeleteEphemeral(rec, deadline, /*from_reconcile=*/false);
    if (!undo.ok()) {
      LOG(kWarn, "undoing a failed inline volume", {"volume_id", rec.volume_id}, {"status", undo});
    }
  }
  return s;
}

absl::Status NodeService::DeleteEphemeral(VolumeRecord& rec, absl::Time deadline,
                                          bool from_reconcile) {
  EphemeralRecord& e = *rec.ephemeral;
  if (e.phase != EphemeralPhase::kDeleting) {
    e.phase = EphemeralPhase::kDeleting;
    RETURN_IF_ERROR(deps_.store->Save(rec));
  }
  CHECKPOINT("eph_unpublish.after_intent");
  if (!e.target_path.empty()) {
    hv1::UnpublishRequest ureq;
    ureq.set_target_path(e.target_path);
    absl::Status unpublished = deps_.helper->Unpublish(ureq, HelperDeadline(deadline)).status();
    // A target the helper refuses was never bound by it: nothing of ours is there.
    if (!unpublished.ok() && !IsPathRefusal(unpublished)) return unpublished;
  }
  CHECKPOINT("eph_unpublish.after_unpublish");
  // The private mount point is the driver's, created by the helper at
  // publish; the helper removes it too (the agent never writes there).
  hv1::UnmountRequest mreq;
  mreq.set_staging_path(e.staging_path);
  mreq.set_remove_staging_path(true);
  RETURN_IF_ERROR(deps_.helper->Unmount(mreq, HelperDeadline(deadline)).status());
  CHECKPOINT("eph_unpublish.after_unmount");
  if (!rec.volume_uuid.empty()) {
    hv1::DetachRequest dreq;
    dreq.set_volume_uuid(rec.volume_uuid);
    dreq.set_subsystem_nqn(rec.subsystem_nqn);
    RETURN_IF_ERROR(deps_.helper->Detach(dreq, HelperDeadline(deadline)).status());
  }
  CHECKPOINT("eph_unpublish.after_detach");
  ASSIGN_OR_RETURN(std::shared_ptr<lightos::Client> client, EphemeralClient());
  lightos::CallOptions opts{deadline};
  std::string uuid = rec.volume_uuid;
  if (uuid.empty()) {
    // The crash came between CreateVolume and the record of its UUID.
    absl::StatusOr<lightos::Volume> vol = client->GetVolumeByName(e.lightos_name, opts);
    if (vol.ok() && vol->labels[kLabelNode] == LabelValue(deps_.config.node_id) &&
        vol->labels[kLabelVolume] == LabelValue(rec.volume_id)) {
      uuid = vol->uuid;
    } else if (!vol.ok() && !absl::IsNotFound(vol.status())) {
      return Annotate(vol.status(), "looking up the inline volume in LightOS");
    }
  }
  if (!uuid.empty()) {
    absl::Status del = client->DeleteVolume(uuid, opts);
    if (!del.ok() && !absl::IsNotFound(del)) {
      return Annotate(del, "deleting the inline volume in LightOS");
    }
  }
  CHECKPOINT("eph_unpublish.after_delete");
  RETURN_IF_ERROR(deps_.store->Remove(rec.volume_id));
  LOG(kInfo, "inline volume deleted", {"volume_id", rec.volume_id},
      {"lightos_name", e.lightos_name}, {"reconcile", from_reconcile});
  CHECKPOINT("eph_unpublish.after_remove");
  return absl::OkStatus();
}

}  // namespace lbcsi::agent
