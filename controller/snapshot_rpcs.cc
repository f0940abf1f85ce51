// CreateSnapshot, DeleteSnapshot, GetSnapshot.
#include "common/logging.h"
#include "common/status.h"
#include "common/strings.h"
#include "controller/controller_service.h"
#include "controller/internal.h"
#include "lightos/state_names.h"

namespace lbcsi::controller {

using lightos::SnapshotState;

absl::Status ControllerService::DoCreateSnapshot(const Opts& o,
                                                 const csi::v1::CreateSnapshotRequest& req,
                                                 csi::v1::CreateSnapshotResponse* resp) {
  RETURN_IF_ERROR(CheckRequired(req.source_volume_id(), "source_volume_id"));
  RETURN_IF_ERROR(CheckCsiName(req.name(), "name"));
  absl::StatusOr<ResourceId> src = internal::ParseOurId(req.source_volume_id());
  if (!src.ok()) {
    return absl::NotFoundError(Cat("source_volume_id: no such volume: ", src.status().message()));
  }
  std::string name = LightosNameFor(req.name());
  ASSIGN_OR_RETURN(Inflight::Hold hold,
                   inflight_.Acquire(Cat("snapshot-create/", src->project, "/", name),
                                     Cat("snapshot name \"", req.name(), "\"")));
  ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(*src, &req.secrets()));

  absl::StatusOr<lightos::Snapshot> snap = client->GetSnapshotByName(name, o);
  if (absl::IsNotFound(snap.status())) {
    absl::StatusOr<lightos::Volume> vol = client->GetVolume(src->uuid, o);
    if (absl::IsNotFound(vol.status())) {
      return absl::NotFoundError(Cat("source_volume_id: volume ", src->uuid, " does not exist"));
    }
    RETURN_IF_ERROR(vol.status());
    snap = client->CreateSnapshot(name, src->uuid, o);
    if (absl::IsAlreadyExists(snap.status())) snap = client->GetSnapshotByName(name, o);
  }
  RETURN_IF_ERROR(snap.status());
  if (snap->source_volume_uuid != src->uuid) {
    return absl::AlreadyExistsError(Cat("snapshot \"", req.name(), "\" already exists (",
                                        snap->uuid, ") with another source volume (",
                                        snap->source_volume_uuid, ")"));
  }
  if (snap->state == SnapshotState::kFailed) {
    return absl::InternalError(Cat("snapshot ", snap->uuid, " failed in LightOS; delete it"));
  }
  ASSIGN_OR_RETURN(std::string snapshot_id, internal::IdInCluster(*src, snap->uuid));
  internal::FillCsiSnapshot(*snap, snapshot_id, req.source_volume_id(), resp->mutable_snapshot());
  LOG(kInfo, "snapshot ready", {"name", req.name()}, {"snapshot_id", snapshot_id},
      {"ready", snap->state == SnapshotState::kAvailable});
  return absl::OkStatus();
}

absl::Status ControllerService::DoDeleteSnapshot(const Opts& o,
                                                 const csi::v1::DeleteSnapshotRequest& req) {
  RETURN_IF_ERROR(CheckRequired(req.snapshot_id(), "snapshot_id"));
  absl::StatusOr<ResourceId> id = internal::ParseOurId(req.snapshot_id());
  if (!id.ok()) return absl::OkStatus();  // not ours: it does not exist
  ASSIGN_OR_RETURN(Inflight::Hold hold,
                   inflight_.Acquire(Cat("snapshot/", id->uuid), Cat("snapshot ", id->uuid)));
  ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(*id, &req.secrets()));
  absl::StatusOr<lightos::Snapshot> snap = client->GetSnapshot(id->uuid, o);
  if (absl::IsNotFound(snap.status())) return absl::OkStatus();
  RETURN_IF_ERROR(snap.status());
  if (snap->state == SnapshotState::kDeleted) return absl::OkStatus();
  if (snap->state == SnapshotState::kCreating || snap->state == SnapshotState::kDeleting) {
    return absl::UnavailableError(Cat("snapshot ", snap->uuid, " is in state ",
                                      lightos::SnapshotStateName(snap->state), "; retry later"));
  }
  absl::Status s = client->DeleteSnapshot(snap->uuid, o);
  if (absl::IsNotFound(s)) return absl::OkStatus();
  return s;
}

absl::Status ControllerService::DoGetSnapshot(const Opts& o, const csi::v1::GetSnapshotRequest& req,
                                              csi::v1::GetSnapshotResponse* resp) {
  RETURN_IF_ERROR(CheckRequired(req.snapshot_id(), "snapshot_id"));
  absl::StatusOr<ResourceId> id = internal::ParseOurId(req.snapshot_id());
  if (!id.ok()) {
    return absl::NotFoundError(Cat("snapshot_id: no such snapshot: ", id.status().message()));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<Client> client, ClientFor(*id, &req.secrets()));
  absl::StatusOr<lightos::Snapshot> snap = client->GetSnapshot(id->uuid, o);
  if (absl::IsNotFound(snap.status())) {
    return absl::NotFoundError(Cat("snapshot_id: snapshot ", id->uuid, " does not exist"));
  }
  RETURN_IF_ERROR(snap.status());
  std::string source_id;
  if (!snap->source_volume_uuid.empty()) {
    ASSIGN_OR_RETURN(source_id, internal::IdInCluster(*id, snap->source_volume_uuid));
  }
  internal::FillCsiSnapshot(*snap, req.snapshot_id(), source_id, resp->mutable_snapshot());
  return absl::OkStatus();
}

}  // namespace lbcsi::controller
