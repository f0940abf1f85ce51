// ListVolumes, ListSnapshots, GetCapacity: paging over one or more clusters.
#include <algorithm>

#include "common/status.h"
#include "common/strings.h"
#include "controller/controller_service.h"
#include "controller/internal.h"
#include "controller/list_token.h"
#include "lightos/state_names.h"
#include "scparams/storage_class.h"

namespace lbcsi::controller {

namespace {

// Pages through `count` clusters whose items are fetched by `fetch(i)` (sorted by UUID here).
// `emit(i, item)` adds one entry. Returns true when entries are left over.
template <typename Item, typename Fetch, typename Emit>
absl::StatusOr<bool> Page(size_t count, const ListPosition& start, int32_t max_entries,
                          Fetch&& fetch, Emit&& emit) {
  size_t emitted = 0;
  for (size_t c = start.cluster; c < count; ++c) {
    absl::StatusOr<std::vector<Item>> items = fetch(c);
    RETURN_IF_ERROR(items.status());
    std::sort(items->begin(), items->end(),
              [](const Item& a, const Item& b) { return a.uuid < b.uuid; });
    for (const Item& item : *items) {
      if (c == start.cluster && !start.after_uuid.empty() && item.uuid <= start.after_uuid)
        continue;
      if (max_entries > 0 && emitted == static_cast<size_t>(max_entries)) {
        return true;  // the caller's token resumes after the last item emitted
      }
      RETURN_IF_ERROR(emit(c, item));
      ++emitted;
    }
  }
  return false;
}

}  // namespace

absl::Status ControllerService::DoListVolumes(const Opts& o, const csi::v1::ListVolumesRequest& req,
                                              csi::v1::ListVolumesResponse* resp) {
  if (req.max_entries() < 0) return InvalidField("max_entries", "must not be negative");
  if (options_.clusters.empty()) {
    return absl::UnimplementedError(
        "ListVolumes needs the controller-wide cluster list (--cluster); none is configured");
  }
  ListPosition start;
  if (!req.starting_token().empty()) {
    ASSIGN_OR_RETURN(start, DecodeListToken(req.starting_token(), options_.clusters.size()));
  }
  size_t last_cluster = 0;
  std::string last_uuid;
  auto fetch = [&](size_t c) -> absl::StatusOr<std::vector<lightos::Volume>> {
    ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(options_.clusters[c], nullptr));
    return client->ListVolumes(lightos::Page{}, o);
  };
  auto emit = [&](size_t c, const lightos::Volume& v) -> absl::Status {
    const lightos::ClusterTarget& t = options_.clusters[c];
    bool crypto = false;  // not recorded in LightOS: ids of host-encrypted volumes differ
    ASSIGN_OR_RETURN(std::string id, FormatResourceId(internal::IdFor(t, v.uuid, crypto)));
    auto* entry = resp->add_entries();
    entry->mutable_volume()->set_volume_id(id);
    entry->mutable_volume()->set_capacity_bytes(internal::CsiBytes(v.size_bytes));
    internal::FillVolumeContext(v, entry->mutable_volume()->mutable_volume_context());
    for (const std::string& n : internal::PublishedNodes(v.acl)) {
      entry->mutable_status()->add_published_node_ids(n);
    }
    bool usable = internal::Usable(v);
    entry->mutable_status()->mutable_volume_condition()->set_abnormal(!usable);
    entry->mutable_status()->mutable_volume_condition()->set_message(
        Cat("LightOS state ", lightos::VolumeStateName(v.state), ", protection ",
            lightos::ProtectionStateName(v.protection)));
    last_cluster = c;
    last_uuid = v.uuid;
    return absl::OkStatus();
  };
  ASSIGN_OR_RETURN(bool more, Page<lightos::Volume>(options_.clusters.size(), start,
                                                    req.max_entries(), fetch, emit));
  if (more) resp->set_next_token(EncodeListToken({last_cluster, last_uuid}));
  return absl::OkStatus();
}

absl::Status ControllerService::DoListSnapshots(const Opts& o,
                                                const csi::v1::ListSnapshotsRequest& req,
                                                csi::v1::ListSnapshotsResponse* resp) {
  if (req.max_entries() < 0) return InvalidField("max_entries", "must not be negative");

  // A single snapshot by id: current information, or an empty list.
  if (!req.snapshot_id().empty()) {
    if (!req.starting_token().empty()) {
      ASSIGN_OR_RETURN(ListPosition p, DecodeListToken(req.starting_token(), 1));
      (void)p;
    }
    absl::StatusOr<ResourceId> id = internal::ParseOurId(req.snapshot_id());
    if (!id.ok()) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(*id, &req.secrets()));
    absl::StatusOr<lightos::Snapshot> snap = client->GetSnapshot(id->uuid, o);
    if (absl::IsNotFound(snap.status())) return absl::OkStatus();
    RETURN_IF_ERROR(snap.status());
    if (snap->state != lightos::SnapshotState::kAvailable) return absl::OkStatus();
    std::string source_id;
    if (!snap->source_volume_uuid.empty()) {
      ASSIGN_OR_RETURN(source_id, internal::IdInCluster(*id, snap->source_volume_uuid));
      if (!req.source_volume_id().empty() && req.source_volume_id() != source_id) {
        absl::StatusOr<ResourceId> want = internal::ParseOurId(req.source_volume_id());
        if (!want.ok() || want->uuid != snap->source_volume_uuid) return absl::OkStatus();
      }
    }
    internal::FillCsiSnapshot(*snap, req.snapshot_id(), source_id,
                              resp->add_entries()->mutable_snapshot());
    return absl::OkStatus();
  }

  // Which clusters to list, and the id fields of the entries.
  std::vector<ResourceId> bases;
  std::string source_uuid;
  if (!req.source_volume_id().empty()) {
    absl::StatusOr<ResourceId> src = internal::ParseOurId(req.source_volume_id());
    if (!src.ok()) return absl::OkStatus();
    source_uuid = src->uuid;
    bases.push_back(*src);
  } else {
    for (const lightos::ClusterTarget& t : options_.clusters)
      bases.push_back(internal::IdFor(t, "", false));
  }
  ListPosition start;
  if (!req.starting_token().empty()) {
    if (bases.empty()) return absl::AbortedError("starting_token: no listing is in progress");
    ASSIGN_OR_RETURN(start, DecodeListToken(req.starting_token(), bases.size()));
  }
  size_t last_cluster = 0;
  std::string last_uuid;
  auto fetch = [&](size_t c) -> absl::StatusOr<std::vector<lightos::Snapshot>> {
    ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(bases[c], &req.secrets()));
    ASSIGN_OR_RETURN(std::vector<lightos::Snapshot> snaps,
                     client->ListSnapshots(lightos::Page{}, source_uuid, o));
    // Only snapshots that are cut.
    std::erase_if(snaps, [](const lightos::Snapshot& s) {
      return s.state != lightos::SnapshotState::kAvailable;
    });
    return snaps;
  };
  auto emit = [&](size_t c, const lightos::Snapshot& s) -> absl::Status {
    ASSIGN_OR_RETURN(std::string id, internal::IdInCluster(bases[c], s.uuid));
    std::string source_id;
    if (!s.source_volume_uuid.empty()) {
      ASSIGN_OR_RETURN(source_id, internal::IdInCluster(bases[c], s.source_volume_uuid));
    }
    internal::FillCsiSnapshot(s, id, source_id, resp->add_entries()->mutable_snapshot());
    last_cluster = c;
    last_uuid = s.uuid;
    return absl::OkStatus();
  };
  ASSIGN_OR_RETURN(bool more,
                   Page<lightos::Snapshot>(bases.size(), start, req.max_entries(), fetch, emit));
  if (more) resp->set_next_token(EncodeListToken({last_cluster, last_uuid}));
  return absl::OkStatus();
}

absl::Status ControllerService::DoGetCapacity(const Opts& o, const csi::v1::GetCapacityRequest& req,
                                              csi::v1::GetCapacityResponse* resp) {
  for (int i = 0; i < req.volume_capabilities_size(); ++i) {
    std::string field = Cat("volume_capabilities[", i, "]");
    ASSIGN_OR_RETURN(Capability c, ReadCapability(req.volume_capabilities(i), field));
    if (!CheckSupported(req.volume_capabilities(i), c, field).ok()) {
      resp->set_available_capacity(0);  // nothing can be provisioned with these
      return absl::OkStatus();
    }
  }
  if (req.has_accessible_topology()) {
    return InvalidField("accessible_topology", "not supported: this driver has no topology");
  }
  std::vector<lightos::ClusterTarget> targets;
  if (!req.parameters().empty()) {
    ASSIGN_OR_RETURN(StorageClassParams p, ParseStorageClassParams(req.parameters()));
    if (!req.parameters().contains(sc_keys::kMgmtScheme)) p.scheme = options_.default_scheme;
    targets.push_back({p.mgmt_endpoints, p.scheme, p.project_name});
  } else {
    // Projects share their cluster's capacity: count each cluster once.
    for (const lightos::ClusterTarget& t : options_.clusters) {
      bool seen = std::any_of(targets.begin(), targets.end(), [&](const lightos::ClusterTarget& x) {
        return x.endpoints == t.endpoints;
      });
      if (!seen) targets.push_back(t);
    }
  }
  if (targets.empty()) {
    return absl::UnimplementedError(
        "GetCapacity needs StorageClass parameters or the cluster list (--cluster)");
  }
  uint64_t total = 0;
  for (const lightos::ClusterTarget& t : targets) {
    ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(t, nullptr));
    ASSIGN_OR_RETURN(lightos::ClusterInfo info, client->GetClusterInfo(o));
    total += info.free_logical_bytes;
  }
  resp->set_available_capacity(static_cast<int64_t>(std::min<uint64_t>(total, INT64_MAX)));
  resp->mutable_minimum_volume_size()->set_value(static_cast<int64_t>(kMinVolumeBytes));
  return absl::OkStatus();
}

}  // namespace lbcsi::controller
