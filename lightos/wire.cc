#include "lightos/wire.h"

#include "common/strings.h"

namespace lbcsi::lightos {
namespace {

absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return absl::InfinitePast();
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

}  // namespace

std::string CreateSizeString(uint64_t bytes) {
  return Cat(bytes, "b");
}
std::string UpdateSizeString(uint64_t bytes) {
  return Cat(bytes);
}

bool ParseCompression(std::string_view value) {
  std::string v = ToLower(value);
  return v == "true" || v == "enable" || v == "enabled";
}

VolumeState FromWire(pb::Volume::StateEnum state) {
  switch (state) {
    case pb::Volume::Creating: return VolumeState::kCreating;
    case pb::Volume::Available: return VolumeState::kAvailable;
    case pb::Volume::Deleting: return VolumeState::kDeleting;
    case pb::Volume::Deleted: return VolumeState::kDeleted;
    case pb::Volume::Failed: return VolumeState::kFailed;
    case pb::Volume::Updating: return VolumeState::kUpdating;
    case pb::Volume::Rollback: return VolumeState::kRollback;
    case pb::Volume::Migrating: return VolumeState::kMigrating;
    default: return VolumeState::kUnknown;
  }
}

ProtectionState FromWire(pb::ProtectionStateEnum state) {
  switch (state) {
    case pb::FullyProtected: return ProtectionState::kFullyProtected;
    case pb::Degraded: return ProtectionState::kDegraded;
    case pb::ReadOnly: return ProtectionState::kReadOnly;
    case pb::NotAvailable: return ProtectionState::kNotAvailable;
    default: return ProtectionState::kUnknown;
  }
}

SnapshotState FromWire(pb::Snapshot::StateEnum state) {
  switch (state) {
    case pb::Snapshot::Creating: return SnapshotState::kCreating;
    case pb::Snapshot::Available: return SnapshotState::kAvailable;
    case pb::Snapshot::Deleting: return SnapshotState::kDeleting;
    case pb::Snapshot::Deleted: return SnapshotState::kDeleted;
    case pb::Snapshot::Failed: return SnapshotState::kFailed;
    default: return SnapshotState::kUnknown;
  }
}

Volume FromWire(const pb::Volume& v) {
  Volume out;
  out.uuid = ToLower(v.uuid());
  out.name = v.name();
  out.project = v.projectname();
  out.state = FromWire(v.state());
  out.protection = FromWire(v.protectionstate());
  out.size_bytes = v.size();
  out.replica_count = v.replicacount();
  out.compression = ParseCompression(v.compression());
  out.acl.assign(v.acl().values().begin(), v.acl().values().end());
  out.etag = v.etag();
  out.source_snapshot_uuid = ToLower(v.sourcesnapshotuuid());
  out.qos_policy_name = v.qospolicyname();
  out.written_bytes = v.statistics().userwritten();
  for (const auto& label : v.labels()) out.labels[label.key()] = label.value();
  out.creation_time = FromTimestamp(v.creationtime());
  return out;
}

Snapshot FromWire(const pb::Snapshot& s) {
  Snapshot out;
  out.uuid = ToLower(s.uuid());
  out.name = s.name();
  out.project = s.projectname();
  out.state = FromWire(s.state());
  out.source_volume_uuid = ToLower(s.sourcevolumeuuid());
  out.size_bytes = s.size();
  out.creation_time = FromTimestamp(s.creationtime());
  out.etag = s.etag();
  return out;
}

pb::CreateVolumeRequest ToWire(const CreateVolumeSpec& spec, const std::string& project) {
  pb::CreateVolumeRequest req;
  req.set_name(spec.name);
  req.set_size(CreateSizeString(spec.size_bytes));
  for (const auto& entry : spec.acl) req.mutable_acl()->add_values(entry);
  req.set_compression(spec.compression ? "true" : "false");
  req.set_replicacount(spec.replica_count);
  req.set_projectname(project);
  if (!spec.source_snapshot_uuid.empty()) req.set_sourcesnapshotuuid(spec.source_snapshot_uuid);
  if (!spec.qos_policy_name.empty()) req.set_qospolicyname(spec.qos_policy_name);
  for (const auto& [key, value] : spec.labels) {
    auto* label = req.add_labels();
    label->set_key(key);
    label->set_value(value);
  }
  return req;
}

}  // namespace lbcsi::lightos
