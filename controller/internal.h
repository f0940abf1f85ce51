#pragma once
// Helpers shared by the controller's RPC files (not a public API).

#include <string>
#include <string_view>
#include <vector>

#include <absl/status/statusor.h>

#include "csi/v1/csi.pb.h"
#include "lightos/client.h"
#include "volumeid/resource_id.h"

namespace lbcsi::controller::internal {

// Label on volumes this controller clones or restores: "snapshot.<uuid>" / "volume.<uuid>".
inline constexpr char kSourceLabel[] = "lbcsi-content-source";

// LightOS's usable-for-I/O rule (state Available/Updating/Migrating and
// protection FullyProtected/Degraded).
bool Usable(const lightos::Volume& v);

// A volume id or snapshot id for `uuid` in the cluster of `base`.
absl::StatusOr<std::string> IdInCluster(const ResourceId& base, const std::string& uuid);
ResourceId IdFor(const lightos::ClusterTarget& target, const std::string& uuid,
                 bool host_encryption);

lightos::ClusterTarget TargetOf(const ResourceId& id);
bool SameCluster(const ResourceId& a, const ResourceId& b);

// How a node's publication is recorded beside its ACL entry (docs/design.md, "Read-only
// publications"): LightOS ACLs cannot say read-only, so the controller keeps one label per node
// that was ever published read-only, "lbcsi-ro-<16 hex of sha256(node id)>", valued "true"
// while that node's publication is read-only and "false" otherwise. A label is set to "false"
// rather than removed, so the record stays right whether LightOS replaces or merges labels.
std::string ReadonlyLabelKey(std::string_view node_id);
// True when the labels record the node's current publication as read-only.
bool PublishedReadonly(const lightos::Labels& labels, std::string_view node_id);
// Records the node's publication mode; returns false when the labels already say so (no
// label is written for a read-write publication of a node that never had one).
bool RecordPublication(lightos::Labels& labels, std::string_view node_id, bool readonly);

// Node ids of the host NQNs in an ACL (entries that are ours).
std::vector<std::string> PublishedNodes(const std::vector<std::string>& acl);
// True when the ACL grants access to anyone (host NQNs or ALLOW_ANY).
bool AclGrantsAccess(const std::vector<std::string>& acl);

// A LightOS size as CSI's int64: sizes past INT64_MAX (only a broken or hostile
// reply has them) are clamped, never reported negative.
int64_t CsiBytes(uint64_t bytes);

void FillCsiSnapshot(const lightos::Snapshot& snap, const std::string& snapshot_id,
                     const std::string& source_volume_id, csi::v1::Snapshot* out);

// created-empty is derived from LightOS (no source snapshot) so that every
// call reports the same volume_context for a volume.
void FillVolumeContext(const lightos::Volume& v,
                       google::protobuf::Map<std::string, std::string>* ctx);

// Parses an id of ours; a malformed one is reported as `missing` (NOT_FOUND
// or OK depending on the RPC) by the caller.
absl::StatusOr<ResourceId> ParseOurId(std::string_view id);

}  // namespace lbcsi::controller::internal
