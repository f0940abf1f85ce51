// Fuzzes LightOS response handling: arbitrary bytes parsed as the DurosAPI
// reply messages (Volume, Snapshot, ListVolumesResponse, ClusterInfoV2), then
// converted by lightos/wire.h and turned into CSI objects by the controller
// (controller/internal.h). Invariants: conversions keep what they promise
// (UUIDs lower-cased, ACL entries kept in order, sizes kept), and what reaches
// the CO is valid CSI (sizes never negative, timestamps valid).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <google/protobuf/util/time_util.h>

#include "controller/internal.h"
#include "lightos/wire.h"

namespace {

namespace pb = ::lightbits::api::duros::v2;
using google::protobuf::util::TimeUtil;

void Check(bool ok) {
  if (!ok) std::abort();
}

bool IsLower(const std::string& s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return true;
}

bool ValidTimestamp(const google::protobuf::Timestamp& ts) {
  return ts.seconds() >= TimeUtil::kTimestampMinSeconds &&
         ts.seconds() <= TimeUtil::kTimestampMaxSeconds && ts.nanos() >= 0 &&
         ts.nanos() < 1000000000;
}

void OnVolume(const pb::Volume& in) {
  lbcsi::lightos::Volume v = lbcsi::lightos::FromWire(in);
  Check(v.uuid.size() == in.uuid().size() && IsLower(v.uuid));
  Check(IsLower(v.source_snapshot_uuid));
  Check(v.size_bytes == in.size());
  Check(v.acl.size() == static_cast<size_t>(in.acl().values_size()));
  for (size_t i = 0; i < v.acl.size(); ++i) Check(v.acl[i] == in.acl().values(static_cast<int>(i)));
  Check(v.labels.size() <= static_cast<size_t>(in.labels_size()));
  Check(!lbcsi::lightos::VolumeStateName(v.state).empty());
  google::protobuf::Map<std::string, std::string> ctx;
  lbcsi::controller::internal::FillVolumeContext(v, &ctx);
  Check(ctx.size() == 1);
  // Nodes named in a publish error come only from host NQNs of ours.
  for (const std::string& node : lbcsi::controller::internal::PublishedNodes(v.acl)) {
    Check(!node.empty());
  }
  if (lbcsi::controller::internal::AclGrantsAccess(v.acl)) Check(!v.acl.empty());
}

void OnSnapshot(const pb::Snapshot& in) {
  lbcsi::lightos::Snapshot s = lbcsi::lightos::FromWire(in);
  Check(s.uuid.size() == in.uuid().size() && IsLower(s.uuid) && IsLower(s.source_volume_uuid));
  Check(s.size_bytes == in.size());
  Check(!lbcsi::lightos::SnapshotStateName(s.state).empty());
  csi::v1::Snapshot out;
  lbcsi::controller::internal::FillCsiSnapshot(s, "snap-id", "vol-id", &out);
  Check(out.size_bytes() >= 0);  // CSI: the value MUST NOT be negative
  Check(ValidTimestamp(out.creation_time()));
  Check(out.ready_to_use() == (s.state == lbcsi::lightos::SnapshotState::kAvailable));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const char* body = reinterpret_cast<const char*>(data + 1);
  const int len = static_cast<int>(size - 1);
  switch (data[0] % 4) {
    case 0: {
      pb::Volume v;
      if (v.ParseFromArray(body, len)) OnVolume(v);
      break;
    }
    case 1: {
      pb::Snapshot s;
      if (s.ParseFromArray(body, len)) OnSnapshot(s);
      break;
    }
    case 2: {
      pb::ListVolumesResponse list;
      if (list.ParseFromArray(body, len)) {
        for (const auto& v : list.volumes()) OnVolume(v);
      }
      break;
    }
    default: {
      pb::ListSnapshotsResponse list;
      if (list.ParseFromArray(body, len)) {
        for (const auto& s : list.snapshots()) OnSnapshot(s);
      }
      break;
    }
  }
  return 0;
}
