// CreateVolume, DeleteVolume, ControllerPublish/Unpublish, ValidateVolumeCapabilities,
// ControllerExpandVolume, ControllerGetVolume, ControllerModifyVolume.
#include <algorithm>

#include "common/logging.h"
#include "common/status.h"
#include "common/strings.h"
#include "controller/controller_service.h"
#include "controller/internal.h"
#include "csicontext/keys.h"
#include "lightos/state_names.h"
#include "mkfsopts/mkfs_options.h"
#include "scparams/storage_class.h"

namespace lbcsi::controller {

using internal::IdFor;
using lightos::VolumeState;
using lightos::VolumeStateName;

namespace {

// Where a new volume's data comes from, once resolved against LightOS.
struct Source {
  enum Kind { kNone, kSnapshot, kVolume } kind = kNone;
  ResourceId id;      // the source's id
  uint64_t size = 0;  // bytes
  std::string label;  // value of internal::kSourceLabel
};

absl::Status NotFoundField(std::string_view field, std::string_view what) {
  return absl::NotFoundError(Cat(field, ": ", what));
}

// Rejects LightOS states in which a volume must not be handed out or changed yet.
absl::Status CheckSettled(const lightos::Volume& v, std::string_view what) {
  switch (v.state) {
    case VolumeState::kCreating:
    case VolumeState::kDeleting:
    case VolumeState::kRollback:
      return absl::UnavailableError(Cat(what, " ", v.name, " (", v.uuid, ") is in state ",
                                        VolumeStateName(v.state), "; retry later"));
    case VolumeState::kFailed:
    case VolumeState::kDeleted:
      return absl::FailedPreconditionError(
          Cat(what, " ", v.name, " (", v.uuid, ") is in state ", VolumeStateName(v.state)));
    default: return absl::OkStatus();
  }
}

bool HasSingleNodeMode(const Capability& c) {
  return !c.MultiNode();
}

// The StorageClass's mkfs options must suit every filesystem the request names
// (a capability without fs_type gets the node's default, checked there).
absl::Status CheckMkfsFits(
    const mkfsopts::MkfsOptions& mkfs,
    const google::protobuf::RepeatedPtrField<csi::v1::VolumeCapability>& caps) {
  for (const csi::v1::VolumeCapability& cap : caps) {
    if (!cap.has_mount() || cap.mount().fs_type().empty()) continue;
    mkfsopts::Fs fs = cap.mount().fs_type() == "xfs" ? mkfsopts::Fs::kXfs : mkfsopts::Fs::kExt4;
    absl::Status fits = mkfsopts::Under("parameters", mkfsopts::Check(mkfs, fs));
    if (!fits.ok()) return Annotate(fits, Cat("with fs_type ", cap.mount().fs_type()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ControllerService::DoCreateVolume(const Opts& o,
                                               const csi::v1::CreateVolumeRequest& req,
                                               csi::v1::CreateVolumeResponse* resp) {
  // ---- validation, before any LightOS call ----
  RETURN_IF_ERROR(CheckCsiName(req.name(), "name"));
  RETURN_IF_ERROR(CheckCapabilities(req.volume_capabilities(), "volume_capabilities"));
  ASSIGN_OR_RETURN(SizeRange range,
                   ReadCapacityRange(req.has_capacity_range() ? &req.capacity_range() : nullptr,
                                     "capacity_range"));
  if (req.has_accessibility_requirements()) {
    return InvalidField("accessibility_requirements",
                        "not supported: this driver has no topology (volumes are reachable from "
                        "every node)");
  }
  ASSIGN_OR_RETURN(StorageClassParams params, ParseStorageClassParams(req.parameters()));
  if (!req.parameters().contains(sc_keys::kMgmtScheme)) params.scheme = options_.default_scheme;
  RETURN_IF_ERROR(CheckMkfsFits(params.mkfs, req.volume_capabilities()));
  ASSIGN_OR_RETURN(MutableParams mutables, ParseMutableParams(req.mutable_parameters()));
  std::string qos = req.mutable_parameters().contains(sc_keys::kQosPolicyName)
                        ? mutables.qos_policy_name
                        : params.qos_policy_name;

  lightos::ClusterTarget target{params.mgmt_endpoints, params.scheme, params.project_name};
  ResourceId self = IdFor(target, "", params.host_encryption);

  Source source;
  if (req.has_volume_content_source()) {
    const auto& src = req.volume_content_source();
    std::string_view field;
    std::string_view id_text;
    if (src.has_snapshot()) {
      source.kind = Source::kSnapshot;
      field = "volume_content_source.snapshot.snapshot_id";
      id_text = src.snapshot().snapshot_id();
    } else if (src.has_volume()) {
      source.kind = Source::kVolume;
      field = "volume_content_source.volume.volume_id";
      id_text = src.volume().volume_id();
    } else {
      return InvalidField("volume_content_source", "snapshot or volume is required");
    }
    RETURN_IF_ERROR(CheckRequired(id_text, field));
    absl::StatusOr<ResourceId> sid = internal::ParseOurId(id_text);
    if (!sid.ok()) return NotFoundField(field, Cat("no such source: ", sid.status().message()));
    source.id = *std::move(sid);
    if (!internal::SameCluster(source.id, self)) {
      return InvalidField(field,
                          "the source is in another LightOS cluster or project than the "
                          "StorageClass (mgmt-endpoint, project-name); LightOS cannot "
                          "copy between them");
    }
    if (source.id.host_encryption != params.host_encryption) {
      return InvalidField(field, "host-encryption of the source and of the StorageClass differ");
    }
  }

  std::string name = LightosNameFor(req.name());
  ASSIGN_OR_RETURN(Inflight::Hold hold,
                   inflight_.Acquire(Cat("create/", params.project_name, "/", name),
                                     Cat("volume name \"", req.name(), "\"")));
  ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(target, &req.secrets()));

  // ---- resolve the source ----
  if (source.kind == Source::kSnapshot) {
    absl::StatusOr<lightos::Snapshot> snap = client->GetSnapshot(source.id.uuid, o);
    if (absl::IsNotFound(snap.status())) {
      return NotFoundField("volume_content_source.snapshot.snapshot_id",
                           Cat("snapshot ", source.id.uuid, " does not exist"));
    }
    RETURN_IF_ERROR(snap.status());
    if (snap->state != lightos::SnapshotState::kAvailable) {
      return absl::UnavailableError(Cat("source snapshot ", snap->uuid, " is in state ",
                                        lightos::SnapshotStateName(snap->state),
                                        ", not Available; retry later"));
    }
    source.size = snap->size_bytes;
    source.label = Cat("snapshot.", snap->uuid);
  } else if (source.kind == Source::kVolume) {
    absl::StatusOr<lightos::Volume> vol = client->GetVolume(source.id.uuid, o);
    if (absl::IsNotFound(vol.status())) {
      return NotFoundField("volume_content_source.volume.volume_id",
                           Cat("volume ", source.id.uuid, " does not exist"));
    }
    RETURN_IF_ERROR(vol.status());
    RETURN_IF_ERROR(CheckSettled(*vol, "source volume"));
    source.size = vol->size_bytes;
    source.label = Cat("volume.", vol->uuid);
  }

  // ---- the size to provide ----
  uint64_t size = 0;
  if (source.kind == Source::kNone) {
    ASSIGN_OR_RETURN(size, ChooseSize(range, "capacity_range"));
  } else if (range.required == 0) {
    size = source.size;
    if (range.limit != 0 && size > range.limit) {
      return absl::OutOfRangeError(Cat("capacity_range.limit_bytes: ", range.limit,
                                       " is smaller than the source (", source.size, " bytes)"));
    }
  } else {
    ASSIGN_OR_RETURN(size, ChooseSize(range, "capacity_range"));
    if (size < source.size) {
      if (range.limit != 0 && source.size > range.limit) {
        return absl::OutOfRangeError(Cat("capacity_range.limit_bytes: ", range.limit,
                                         " is smaller than the source (", source.size, " bytes)"));
      }
      size = source.size;
    }
  }

  // ---- find or create ----
  std::string clone_snapshot = CloneSnapshotName(name);
  absl::StatusOr<lightos::Volume> vol = client->GetVolumeByName(name, o);
  if (!vol.ok() && !absl::IsNotFound(vol.status())) return vol.status();

  if (vol.ok()) {
    // A retry (or a twin) of an earlier call: same properties or ALREADY_EXISTS.
    auto incompatible = [&](std::string_view why) {
      return absl::AlreadyExistsError(
          Cat("volume \"", req.name(), "\" already exists (", vol->uuid, ") with ", why));
    };
    if (vol->replica_count != params.replica_count) {
      return incompatible(Cat(vol->replica_count, " replicas, not ", params.replica_count));
    }
    if (vol->compression != params.compression) {
      return incompatible(Cat("compression ", vol->compression ? "enabled" : "disabled"));
    }
    auto label = vol->labels.find(internal::kSourceLabel);
    std::string have = label == vol->labels.end() ? "" : label->second;
    if (source.kind == Source::kNone && !vol->source_snapshot_uuid.empty()) {
      return incompatible("content from a snapshot, but this request has no content source");
    }
    if (source.kind == Source::kSnapshot && have != source.label &&
        vol->source_snapshot_uuid != source.id.uuid) {
      return incompatible("another content source");
    }
    if (source.kind == Source::kVolume && have != source.label) {
      return incompatible("another content source");
    }
    if (range.limit != 0 && vol->size_bytes > range.limit) {
      return incompatible(Cat("size ", vol->size_bytes, " bytes, above limit_bytes ", range.limit));
    }
    if (vol->size_bytes < size && source.kind == Source::kNone) {
      return incompatible(Cat("size ", vol->size_bytes, " bytes, below required_bytes ", size));
    }
    RETURN_IF_ERROR(CheckSettled(*vol, "volume"));
  } else {
    lightos::CreateVolumeSpec spec;
    spec.name = name;
    spec.size_bytes = size;
    spec.replica_count = params.replica_count;
    spec.compression = params.compression;
    spec.qos_policy_name = qos;
    if (source.kind == Source::kSnapshot) {
      spec.source_snapshot_uuid = source.id.uuid;
      spec.size_bytes = source.size;  // LightOS creates restores at the source's size
    } else if (source.kind == Source::kVolume) {
      // Clones go through a temporary snapshot with a name derived from the new volume's.
      absl::StatusOr<lightos::Snapshot> snap = client->GetSnapshotByName(clone_snapshot, o);
      if (snap.ok() && snap->source_volume_uuid != source.id.uuid) {
        RETURN_IF_ERROR(client->DeleteSnapshot(snap->uuid, o));
        snap = absl::NotFoundError("replaced");
      }
      if (absl::IsNotFound(snap.status())) {
        snap = client->CreateSnapshot(clone_snapshot, source.id.uuid, o);
        if (absl::IsAlreadyExists(snap.status()))
          snap = client->GetSnapshotByName(clone_snapshot, o);
      }
      if (!snap.ok()) return Annotate(snap.status(), "creating the clone's temporary snapshot");
      spec.source_snapshot_uuid = snap->uuid;
      spec.size_bytes = snap->size_bytes != 0 ? snap->size_bytes : source.size;
    }
    if (source.kind != Source::kNone) spec.labels[internal::kSourceLabel] = source.label;
    vol = client->CreateVolume(spec, o);
    if (absl::IsAlreadyExists(vol.status())) vol = client->GetVolumeByName(name, o);
    if (!vol.ok()) {
      if (source.kind == Source::kVolume) {
        // Never leave the temporary snapshot behind, even when the create failed.
        if (auto s = client->GetSnapshotByName(clone_snapshot, o); s.ok()) {
          (void)client->DeleteSnapshot(s->uuid, o);
        }
      }
      return vol.status();
    }
  }

  // ---- finish: grow to the requested size (resumable), drop the clone snapshot ----
  if (vol->size_bytes < size) {
    absl::StatusOr<lightos::Volume> grown = client->ResizeVolume(vol->uuid, size, o);
    if (!grown.ok())
      return Annotate(grown.status(), Cat("growing volume ", vol->uuid, " to ", size));
    vol = std::move(grown);
  }
  if (source.kind == Source::kVolume) {
    absl::StatusOr<lightos::Snapshot> s = client->GetSnapshotByName(clone_snapshot, o);
    if (s.ok()) {
      absl::Status d = client->DeleteSnapshot(s->uuid, o);
      if (!d.ok() && !absl::IsNotFound(d))
        return Annotate(d, "removing the clone's temporary snapshot");
    } else if (!absl::IsNotFound(s.status())) {
      return s.status();
    }
  }
  if (req.mutable_parameters().contains(sc_keys::kQosPolicyName) && vol->qos_policy_name != qos) {
    ASSIGN_OR_RETURN(*vol, client->SetQosPolicy(vol->uuid, qos, o));
  }

  ResourceId id = IdFor(target, vol->uuid, params.host_encryption);
  ASSIGN_OR_RETURN(std::string volume_id, FormatResourceId(id));
  csi::v1::Volume* out = resp->mutable_volume();
  out->set_volume_id(volume_id);
  out->set_capacity_bytes(internal::CsiBytes(vol->size_bytes));
  internal::FillVolumeContext(*vol, out->mutable_volume_context());
  // The node formats with these (docs/design.md "mkfs options").
  for (auto& [key, value] : mkfsopts::ToKeys(params.mkfs)) {
    (*out->mutable_volume_context())[key] = value;
  }
  if (req.has_volume_content_source()) *out->mutable_content_source() = req.volume_content_source();
  LOG(kInfo, "volume ready", {"name", req.name()}, {"volume_id", volume_id},
      {"bytes", vol->size_bytes});
  return absl::OkStatus();
}

absl::Status ControllerService::DoDeleteVolume(const Opts& o,
                                               const csi::v1::DeleteVolumeRequest& req) {
  RETURN_IF_ERROR(CheckRequired(req.volume_id(), "volume_id"));
  absl::StatusOr<ResourceId> id = internal::ParseOurId(req.volume_id());
  if (!id.ok()) {
    // Not an id this driver (or the shipped plugin) issues: no such volume exists.
    LOG(kInfo, "delete of a malformed volume id: nothing to do", {"volume_id", req.volume_id()});
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(Inflight::Hold hold,
                   inflight_.Acquire(Cat("volume/", id->uuid), Cat("volume ", id->uuid)));
  ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(*id, &req.secrets()));
  absl::StatusOr<lightos::Volume> vol = client->GetVolume(id->uuid, o);
  if (absl::IsNotFound(vol.status())) return absl::OkStatus();
  RETURN_IF_ERROR(vol.status());
  switch (vol->state) {
    case VolumeState::kDeleted: return absl::OkStatus();
    case VolumeState::kCreating:
    case VolumeState::kDeleting:
    case VolumeState::kUpdating:
    case VolumeState::kRollback:
    case VolumeState::kMigrating:
      return absl::UnavailableError(Cat("volume ", vol->uuid, " is in state ",
                                        VolumeStateName(vol->state),
                                        "; retry when it has settled"));
    default: break;
  }
  if (internal::AclGrantsAccess(vol->acl)) {
    std::vector<std::string> nodes = internal::PublishedNodes(vol->acl);
    std::string who;
    for (const std::string& entry : nodes.empty() ? vol->acl : nodes)
      who += Cat(who.empty() ? "" : ", ", entry);
    return absl::FailedPreconditionError(Cat("volume ", vol->uuid,
                                             " is still published (ACL grants access to ", who,
                                             "); unpublish it first"));
  }
  absl::Status s = client->DeleteVolume(vol->uuid, o);
  if (absl::IsNotFound(s)) return absl::OkStatus();
  RETURN_IF_ERROR(s);
  LOG(kInfo, "volume deleted", {"volume_id", req.volume_id()});
  return absl::OkStatus();
}

absl::Status ControllerService::DoPublish(const Opts& o,
                                          const csi::v1::ControllerPublishVolumeRequest& req,
                                          csi::v1::ControllerPublishVolumeResponse* resp) {
  RETURN_IF_ERROR(CheckRequired(req.volume_id(), "volume_id"));
  RETURN_IF_ERROR(CheckRequired(req.node_id(), "node_id"));
  if (!req.has_volume_capability()) return InvalidField("volume_capability", "is required");
  ASSIGN_OR_RETURN(Capability cap, ReadCapability(req.volume_capability(), "volume_capability"));
  RETURN_IF_ERROR(CheckSupported(req.volume_capability(), cap, "volume_capability"));
  absl::StatusOr<ResourceId> id = internal::ParseOurId(req.volume_id());
  if (!id.ok()) return NotFoundField("volume_id", Cat("no such volume: ", id.status().message()));
  // LightOS has no node registry: a node id that cannot form a host NQN cannot be a node of ours.
  if (!csictx::IsValidNodeId(req.node_id())) {
    return NotFoundField("node_id",
                         "is not a node id of this driver (\"<node name>.node\": letters, "
                         "digits, '.', '-', '_', ':'; host NQN <= 223 bytes)");
  }
  std::string nqn = csictx::HostNqnForNode(req.node_id());

  ASSIGN_OR_RETURN(Inflight::Hold hold,
                   inflight_.Acquire(Cat("volume/", id->uuid), Cat("volume ", id->uuid)));
  ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(*id, &req.secrets()));
  absl::StatusOr<lightos::Volume> vol = client->GetVolume(id->uuid, o);
  if (absl::IsNotFound(vol.status())) {
    return NotFoundField("volume_id", Cat("volume ", id->uuid, " does not exist"));
  }
  RETURN_IF_ERROR(vol.status());
  RETURN_IF_ERROR(CheckSettled(*vol, "volume"));

  // Other hosts in the ACL (NQNs or ALLOW_ANY) block single-node access modes.
  auto others_of = [&](const std::vector<std::string>& acl) {
    std::vector<std::string> out;
    for (const std::string& e : acl) {
      if (e != nqn && e != lightos::kAclAllowNone) out.push_back(e);
    }
    return out;
  };
  auto refuse = [&](const std::vector<std::string>& others) {
    std::string who;
    for (const std::string& e : others) {
      std::string_view node = csictx::NodeIdFromHostNqn(e);
      who += Cat(who.empty() ? "" : ", ", node.empty() ? std::string_view(e) : node);
    }
    return absl::FailedPreconditionError(
        Cat("volume ", vol->uuid, " is already published to node ", who, " and access mode ",
            csi::v1::VolumeCapability::AccessMode::Mode_Name(cap.mode), " allows a single node"));
  };
  bool single = HasSingleNodeMode(cap);
  if (single && !others_of(vol->acl).empty()) return refuse(others_of(vol->acl));
  // A read-only access mode publishes read-only whatever the flag says.
  bool readonly = req.readonly() || cap.ReadOnlyMode();
  auto incompatible = [&]() {
    return absl::AlreadyExistsError(
        Cat("volume ", vol->uuid, " is already published to node ", req.node_id(),
            internal::PublishedReadonly(vol->labels, req.node_id()) ? " read-only" : " read-write",
            "; unpublish it before publishing it ", readonly ? "read-only" : "read-write"));
  };
  auto in_acl = [&](const std::vector<std::string>& acl) {
    return std::find(acl.begin(), acl.end(), nqn) != acl.end();
  };
  if (in_acl(vol->acl)) {
    if (internal::PublishedReadonly(vol->labels, req.node_id()) != readonly) return incompatible();
  } else {
    std::vector<std::string> raced;  // set when another publish won the ETag race
    bool conflict = false;           // set when a twin publish with the other mode won it
    absl::StatusOr<lightos::Volume> updated = client->UpdateVolumeAccess(
        vol->uuid,
        [&](std::vector<std::string>& acl, lightos::Labels& labels) {
          raced.clear();
          conflict = false;
          if (in_acl(acl)) {
            conflict = internal::PublishedReadonly(labels, req.node_id()) != readonly;
            return false;
          }
          if (single && !others_of(acl).empty()) {
            raced = others_of(acl);
            return false;
          }
          std::erase(acl, std::string(lightos::kAclAllowNone));
          acl.push_back(nqn);
          // The ACL entry and the record of its mode change in one ETag-guarded update.
          internal::RecordPublication(labels, req.node_id(), readonly);
          return true;
        },
        o);
    if (absl::IsNotFound(updated.status())) {
      return NotFoundField("volume_id", Cat("volume ", id->uuid, " does not exist"));
    }
    RETURN_IF_ERROR(updated.status());
    if (!raced.empty()) return refuse(raced);
    *vol = *std::move(updated);
    if (conflict) return incompatible();
  }

  ASSIGN_OR_RETURN(lightos::ClusterInfo info, client->GetClusterInfo(o));
  auto join = [](const std::vector<std::string>& items) {
    std::string out;
    for (const std::string& s : items) out += Cat(out.empty() ? "" : ",", s);
    return out;
  };
  auto& pc = *resp->mutable_publish_context();
  pc[csictx::kSubsysNqn] = info.subsystem_nqn;
  pc[csictx::kNvmeEndpoints] = join(info.nvme_endpoints);
  pc[csictx::kDiscoveryEndpoints] = join(info.discovery_endpoints);
  bool never_written = vol->written_bytes == 0 && vol->source_snapshot_uuid.empty();
  pc[csictx::kNeverWritten] = never_written ? csictx::kTrue : csictx::kFalse;
  pc[csictx::kReadonly] = readonly ? csictx::kTrue : csictx::kFalse;
  LOG(kInfo, "volume published", {"volume_id", req.volume_id()}, {"node_id", req.node_id()});
  return absl::OkStatus();
}

absl::Status ControllerService::DoUnpublish(const Opts& o,
                                            const csi::v1::ControllerUnpublishVolumeRequest& req) {
  RETURN_IF_ERROR(CheckRequired(req.volume_id(), "volume_id"));
  absl::StatusOr<ResourceId> id = internal::ParseOurId(req.volume_id());
  if (!id.ok()) return absl::OkStatus();  // no such volume: it is unpublished everywhere
  // A node id that cannot be in an ACL of ours is not published anywhere.
  if (!req.node_id().empty() && !csictx::IsValidNodeId(req.node_id())) return absl::OkStatus();
  std::string nqn = req.node_id().empty() ? "" : csictx::HostNqnForNode(req.node_id());

  ASSIGN_OR_RETURN(Inflight::Hold hold,
                   inflight_.Acquire(Cat("volume/", id->uuid), Cat("volume ", id->uuid)));
  ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(*id, &req.secrets()));
  // Removes the node's NQN (or every NQN of ours), and marks the removed publications as no
  // longer read-only; ALLOW_NONE when nothing is left.
  auto strip = [&](std::vector<std::string>& acl, lightos::Labels& labels) {
    std::vector<std::string> before = acl;
    if (nqn.empty()) {
      std::erase_if(acl, [&](const std::string& e) {
        std::string_view node = csictx::NodeIdFromHostNqn(e);
        if (!node.empty()) internal::RecordPublication(labels, node, false);
        return !node.empty();
      });
    } else {
      std::erase(acl, nqn);
      internal::RecordPublication(labels, req.node_id(), false);
    }
    if (acl.empty()) acl.push_back(lightos::kAclAllowNone);
    return acl != before;
  };
  absl::StatusOr<lightos::Volume> vol = client->GetVolume(id->uuid, o);
  if (absl::IsNotFound(vol.status())) return absl::OkStatus();
  RETURN_IF_ERROR(vol.status());
  std::vector<std::string> preview = vol->acl;
  lightos::Labels preview_labels = vol->labels;
  if (!strip(preview, preview_labels)) return absl::OkStatus();
  absl::StatusOr<lightos::Volume> updated = client->UpdateVolumeAccess(id->uuid, strip, o);
  if (absl::IsNotFound(updated.status())) return absl::OkStatus();
  RETURN_IF_ERROR(updated.status());
  LOG(kInfo, "volume unpublished", {"volume_id", req.volume_id()}, {"node_id", req.node_id()});
  return absl::OkStatus();
}

absl::Status ControllerService::DoValidate(const Opts& o,
                                           const csi::v1::ValidateVolumeCapabilitiesRequest& req,
                                           csi::v1::ValidateVolumeCapabilitiesResponse* resp) {
  RETURN_IF_ERROR(CheckRequired(req.volume_id(), "volume_id"));
  if (req.volume_capabilities().empty()) {
    return InvalidField("volume_capabilities", "at least one volume capability is required");
  }
  std::string unsupported;
  for (int i = 0; i < req.volume_capabilities_size(); ++i) {
    std::string field = Cat("volume_capabilities[", i, "]");
    ASSIGN_OR_RETURN(Capability c, ReadCapability(req.volume_capabilities(i), field));
    absl::Status s = CheckSupported(req.volume_capabilities(i), c, field);
    if (!s.ok() && unsupported.empty()) unsupported = std::string(s.message());
  }
  if (unsupported.empty() && !req.parameters().empty()) {
    absl::StatusOr<StorageClassParams> p = ParseStorageClassParams(req.parameters());
    if (!p.ok()) unsupported = std::string(p.status().message());
  }
  if (unsupported.empty() && !req.mutable_parameters().empty()) {
    absl::StatusOr<MutableParams> p = ParseMutableParams(req.mutable_parameters());
    if (!p.ok()) unsupported = std::string(p.status().message());
  }
  absl::StatusOr<ResourceId> id = internal::ParseOurId(req.volume_id());
  if (!id.ok()) return NotFoundField("volume_id", Cat("no such volume: ", id.status().message()));
  ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(*id, &req.secrets()));
  absl::StatusOr<lightos::Volume> vol = client->GetVolume(id->uuid, o);
  if (absl::IsNotFound(vol.status())) {
    return NotFoundField("volume_id", Cat("volume ", id->uuid, " does not exist"));
  }
  RETURN_IF_ERROR(vol.status());
  if (!unsupported.empty()) {
    resp->set_message(unsupported);
    return absl::OkStatus();
  }
  auto* confirmed = resp->mutable_confirmed();
  *confirmed->mutable_volume_capabilities() = req.volume_capabilities();
  *confirmed->mutable_volume_context() = req.volume_context();
  *confirmed->mutable_parameters() = req.parameters();
  *confirmed->mutable_mutable_parameters() = req.mutable_parameters();
  return absl::OkStatus();
}

absl::Status ControllerService::DoExpand(const Opts& o,
                                         const csi::v1::ControllerExpandVolumeRequest& req,
                                         csi::v1::ControllerExpandVolumeResponse* resp) {
  RETURN_IF_ERROR(CheckRequired(req.volume_id(), "volume_id"));
  if (!req.has_capacity_range()) return InvalidField("capacity_range", "is required");
  ASSIGN_OR_RETURN(SizeRange range, ReadCapacityRange(&req.capacity_range(), "capacity_range"));
  if (range.required == 0 && range.limit == 0) {
    return InvalidField("capacity_range", "required_bytes or limit_bytes is required");
  }
  bool block = false;
  if (req.has_volume_capability()) {
    ASSIGN_OR_RETURN(Capability cap, ReadCapability(req.volume_capability(), "volume_capability"));
    RETURN_IF_ERROR(CheckSupported(req.volume_capability(), cap, "volume_capability"));
    block = cap.type == AccessType::kBlock;
  }
  ASSIGN_OR_RETURN(uint64_t size, ChooseSize(range, "capacity_range"));
  absl::StatusOr<ResourceId> id = internal::ParseOurId(req.volume_id());
  if (!id.ok()) return NotFoundField("volume_id", Cat("no such volume: ", id.status().message()));
  ASSIGN_OR_RETURN(Inflight::Hold hold,
                   inflight_.Acquire(Cat("volume/", id->uuid), Cat("volume ", id->uuid)));
  ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(*id, &req.secrets()));
  absl::StatusOr<lightos::Volume> vol = client->GetVolume(id->uuid, o);
  if (absl::IsNotFound(vol.status())) {
    return NotFoundField("volume_id", Cat("volume ", id->uuid, " does not exist"));
  }
  RETURN_IF_ERROR(vol.status());
  if (range.limit != 0 && vol->size_bytes > range.limit) {
    return absl::OutOfRangeError(Cat("capacity_range.limit_bytes: volume ", vol->uuid,
                                     " is already ", vol->size_bytes,
                                     " bytes; volumes cannot shrink"));
  }
  if (vol->size_bytes < size) {
    RETURN_IF_ERROR(CheckSettled(*vol, "volume"));
    ASSIGN_OR_RETURN(*vol, client->ResizeVolume(vol->uuid, size, o));
  }
  resp->set_capacity_bytes(internal::CsiBytes(vol->size_bytes));
  resp->set_node_expansion_required(!block);
  return absl::OkStatus();
}

absl::Status ControllerService::DoGetVolume(const Opts& o,
                                            const csi::v1::ControllerGetVolumeRequest& req,
                                            csi::v1::ControllerGetVolumeResponse* resp) {
  RETURN_IF_ERROR(CheckRequired(req.volume_id(), "volume_id"));
  absl::StatusOr<ResourceId> id = internal::ParseOurId(req.volume_id());
  if (!id.ok()) return NotFoundField("volume_id", Cat("no such volume: ", id.status().message()));
  ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(*id, nullptr));
  absl::StatusOr<lightos::Volume> vol = client->GetVolume(id->uuid, o);
  if (absl::IsNotFound(vol.status())) {
    return NotFoundField("volume_id", Cat("volume ", id->uuid, " does not exist"));
  }
  RETURN_IF_ERROR(vol.status());
  csi::v1::Volume* out = resp->mutable_volume();
  out->set_volume_id(req.volume_id());
  out->set_capacity_bytes(internal::CsiBytes(vol->size_bytes));
  internal::FillVolumeContext(*vol, out->mutable_volume_context());
  auto* status = resp->mutable_status();
  for (const std::string& node : internal::PublishedNodes(vol->acl))
    status->add_published_node_ids(node);
  bool usable = internal::Usable(*vol);
  status->mutable_volume_condition()->set_abnormal(!usable);
  status->mutable_volume_condition()->set_message(
      Cat("LightOS state ", VolumeStateName(vol->state), ", protection ",
          lightos::ProtectionStateName(vol->protection), usable ? "" : ": not usable for I/O"));
  return absl::OkStatus();
}

absl::Status ControllerService::DoModify(const Opts& o,
                                         const csi::v1::ControllerModifyVolumeRequest& req) {
  RETURN_IF_ERROR(CheckRequired(req.volume_id(), "volume_id"));
  ASSIGN_OR_RETURN(MutableParams params, ParseMutableParams(req.mutable_parameters()));
  absl::StatusOr<ResourceId> id = internal::ParseOurId(req.volume_id());
  if (!id.ok()) return NotFoundField("volume_id", Cat("no such volume: ", id.status().message()));
  ASSIGN_OR_RETURN(Inflight::Hold hold,
                   inflight_.Acquire(Cat("volume/", id->uuid), Cat("volume ", id->uuid)));
  ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(*id, &req.secrets()));
  absl::StatusOr<lightos::Volume> vol = client->GetVolume(id->uuid, o);
  if (absl::IsNotFound(vol.status())) {
    return NotFoundField("volume_id", Cat("volume ", id->uuid, " does not exist"));
  }
  RETURN_IF_ERROR(vol.status());
  // No parameters: nothing to change (the CSI spec has no "at least one"; csi-sanity modifies
  // with an empty set). The volume's existence was still checked above.
  if (req.mutable_parameters().empty()) return absl::OkStatus();
  if (vol->qos_policy_name == params.qos_policy_name) return absl::OkStatus();
  RETURN_IF_ERROR(CheckSettled(*vol, "volume"));
  absl::StatusOr<lightos::Volume> updated =
      client->SetQosPolicy(vol->uuid, params.qos_policy_name, o);
  if (absl::IsNotFound(updated.status()) || absl::IsInvalidArgument(updated.status())) {
    // The volume was there a moment ago: the policy is what LightOS does not know.
    return InvalidField("mutable_parameters.qos-policy-name", "LightOS refused policy \"",
                        params.qos_policy_name, "\": ", updated.status().message());
  }
  return updated.status();
}

}  // namespace lbcsi::controller
