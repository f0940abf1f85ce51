// Fuzzes the CSI request checks of the controller (controller/validation.h)
// and the node agent (agent/request_checks.h). The first byte picks the check;
// the rest is a string (names, paths, ids) or a serialized CSI message
// (VolumeCapability, CapacityRange). Invariants: whatever is accepted obeys the
// rule it was checked against, sizes chosen honour the range, and the LightOS
// name derived from any CSI name is valid and stable.
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/request_checks.h"
#include "controller/validation.h"

namespace {

namespace ctl = lbcsi::controller;
namespace agent = lbcsi::agent;

void Check(bool ok) {
  if (!ok) std::abort();
}

bool CleanAbsolute(std::string_view p) {
  if (p.empty() || p[0] != '/' || p.size() > PATH_MAX) return false;
  if (p.find('\0') != std::string_view::npos) return false;
  size_t start = 1;
  while (start < p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    std::string_view part = p.substr(start, end - start);
    if (part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

void OnCapability(const csi::v1::VolumeCapability& cap) {
  auto parsed = ctl::ReadCapability(cap, "volume_capability");
  if (parsed.ok()) {
    Check(cap.has_block() || cap.has_mount());
    Check(cap.has_access_mode());
    Check((parsed->type == ctl::AccessType::kBlock) == cap.has_block());
    if (ctl::CheckSupported(cap, *parsed, "volume_capability").ok()) {
      Check(parsed->type == ctl::AccessType::kBlock || parsed->fs_type.empty() ||
            parsed->fs_type == "ext4" || parsed->fs_type == "xfs");
      if (cap.has_mount()) {
        for (const auto& flag : cap.mount().mount_flags()) Check(ctl::IsAllowedMountFlag(flag));
      }
    }
  }
  auto node = agent::CheckCapability("volume_capability", cap);
  if (node.ok()) {
    Check(node->block == cap.has_block());
    Check(node->block || node->fs_type.empty() || node->fs_type == "ext4" ||
          node->fs_type == "xfs");
    Check(!node->block || node->fs_type.empty());
    Check(node->access_mode == static_cast<int>(cap.access_mode().mode()));
    // The node accepts nothing the controller refuses as malformed.
    Check(parsed.ok());
  }
}

void OnRange(const csi::v1::CapacityRange& range) {
  auto r = ctl::ReadCapacityRange(&range, "capacity_range");
  if (!r.ok()) return;
  Check(range.required_bytes() >= 0 && range.limit_bytes() >= 0);
  Check(r->required == static_cast<uint64_t>(range.required_bytes()));
  Check(r->limit == static_cast<uint64_t>(range.limit_bytes()));
  Check(r->limit == 0 || r->required <= r->limit);
  auto size = ctl::ChooseSize(*r, "capacity_range");
  if (!size.ok()) return;
  Check(*size >= ctl::kMinVolumeBytes && *size % ctl::kGiB == 0);
  Check(*size >= r->required);
  Check(r->limit == 0 || *size <= r->limit);
  Check(*size <= static_cast<uint64_t>(INT64_MAX));  // reported to the CO as int64
}

void OnName(std::string_view name) {
  if (ctl::CheckCsiName(name, "name").ok()) Check(!name.empty() && name.size() <= 128);
  const std::string lightos = ctl::LightosNameFor(name);
  Check(ctl::IsValidLightosName(lightos));
  Check(lightos == ctl::LightosNameFor(name));
  if (ctl::IsValidLightosName(name)) Check(lightos == name);
  Check(ctl::IsValidLightosName(ctl::CloneSnapshotName(lightos)));
  if (ctl::CheckRequired(name, "volume_id").ok()) Check(!name.empty());
}

void OnPath(std::string_view path) {
  if (agent::CheckPath("target_path", path).ok()) Check(CleanAbsolute(path));
  if (path.empty()) Check(agent::CheckPath("target_path", path, /*required=*/false).ok());
  auto id = agent::ParseVolumeId(path);
  if (!id.ok()) Check(id.status().code() == absl::StatusCode::kNotFound);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 4) {
    case 0: {
      csi::v1::VolumeCapability cap;
      if (cap.ParseFromArray(body.data(), static_cast<int>(body.size()))) OnCapability(cap);
      break;
    }
    case 1: {
      csi::v1::CapacityRange range;
      if (range.ParseFromArray(body.data(), static_cast<int>(body.size()))) OnRange(range);
      break;
    }
    case 2: OnName(body); break;
    default: OnPath(body); break;
  }
  return 0;
}
