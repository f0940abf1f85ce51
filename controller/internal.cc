#include "controller/internal.h"

#include <algorithm>

#include <google/protobuf/util/time_util.h>

#include "common/sha256.h"
#include "common/strings.h"
#include "controller/validation.h"
#include "csicontext/keys.h"

namespace lbcsi::controller::internal {

using lightos::ProtectionState;
using lightos::SnapshotState;
using lightos::VolumeState;

bool Usable(const lightos::Volume& v) {
  bool state_ok = v.state == VolumeState::kAvailable || v.state == VolumeState::kUpdating ||
                  v.state == VolumeState::kMigrating;
  bool prot_ok = v.protection == ProtectionState::kFullyProtected ||
                 v.protection == ProtectionState::kDegraded;
  return state_ok && prot_ok;
}

absl::StatusOr<std::string> IdInCluster(const ResourceId& base, const std::string& uuid) {
  ResourceId id = base;
  id.uuid = uuid;
  return FormatResourceId(id);
}

ResourceId IdFor(const lightos::ClusterTarget& target, const std::string& uuid,
                 bool host_encryption) {
  ResourceId id;
  id.mgmt_endpoints = target.endpoints;
  id.uuid = uuid;
  id.project = target.project;
  id.scheme = target.scheme;  // always written, like the shipped plugin
  id.host_encryption = host_encryption;
  return id;
}

lightos::ClusterTarget TargetOf(const ResourceId& id) {
  lightos::ClusterTarget t;
  t.endpoints = id.mgmt_endpoints;
  t.scheme = id.EffectiveScheme();
  t.project = id.project;
  return t;
}

bool SameCluster(const ResourceId& a, const ResourceId& b) {
  // Endpoint lists are canonical (sorted, unique) after parsing; any overlap means the
  // same cluster (a StorageClass may list a subset of the servers).
  bool overlap = false;
  for (const HostPort& x : a.mgmt_endpoints) {
    if (std::find(b.mgmt_endpoints.begin(), b.mgmt_endpoints.end(), x) != b.mgmt_endpoints.end()) {
      overlap = true;
    }
  }
  return overlap && a.project == b.project;
}

std::string ReadonlyLabelKey(std::string_view node_id) {
  return Cat("lbcsi-ro-", Sha256Hex(node_id).substr(0, 16));
}

bool PublishedReadonly(const lightos::Labels& labels, std::string_view node_id) {
  auto it = labels.find(ReadonlyLabelKey(node_id));
  return it != labels.end() && it->second == csictx::kTrue;
}

bool RecordPublication(lightos::Labels& labels, std::string_view node_id, bool readonly) {
  std::string key = ReadonlyLabelKey(node_id);
  auto it = labels.find(key);
  if (it == labels.end() && !readonly) return false;
  const char* want = readonly ? csictx::kTrue : csictx::kFalse;
  if (it != labels.end() && it->second == want) return false;
  labels[key] = want;
  return true;
}

std::vector<std::string> PublishedNodes(const std::vector<std::string>& acl) {
  std::vector<std::string> out;
  for (const std::string& entry : acl) {
    std::string_view node = csictx::NodeIdFromHostNqn(entry);
    if (!node.empty()) out.emplace_back(node);
  }
  return out;
}

bool AclGrantsAccess(const std::vector<std::string>& acl) {
  for (const std::string& entry : acl) {
    if (!entry.empty() && entry != lightos::kAclAllowNone) return true;
  }
  return false;
}

int64_t CsiBytes(uint64_t bytes) {
  return static_cast<int64_t>(std::min<uint64_t>(bytes, INT64_MAX));
}

void FillCsiSnapshot(const lightos::Snapshot& snap, const std::string& snapshot_id,
                     const std::string& source_volume_id, csi::v1::Snapshot* out) {
  out->set_size_bytes(CsiBytes(snap.size_bytes));
  out->set_snapshot_id(snapshot_id);
  out->set_source_volume_id(source_volume_id);
  absl::Time t =
      snap.creation_time == absl::InfinitePast() ? absl::UnixEpoch() : snap.creation_time;
  *out->mutable_creation_time() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
  out->set_ready_to_use(snap.state == SnapshotState::kAvailable);
}

void FillVolumeContext(const lightos::Volume& v,
                       google::protobuf::Map<std::string, std::string>* ctx) {
  // The key is a std::string first: indexing the Map with the char array makes GCC 12 at -O3
  // report a false -Warray-bounds in protobuf's key conversion (it broke Release builds).
  const std::string key = csictx::kCreatedEmpty;
  (*ctx)[key] = v.source_snapshot_uuid.empty() ? csictx::kTrue : csictx::kFalse;
}

absl::StatusOr<ResourceId> ParseOurId(std::string_view id) {
  return ParseResourceId(id);
}

}  // namespace lbcsi::controller::internal
