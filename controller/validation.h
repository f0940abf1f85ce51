#pragma once
// Request checks shared by the controller RPCs. Everything here runs before
// any LightOS call; errors are INVALID_ARGUMENT (or OUT_OF_RANGE for sizes)
// with messages that name the request field.

#include <cstdint>
#include <string>
#include <string_view>

#include <absl/status/statusor.h>
#include <google/protobuf/repeated_field.h>

#include "csi/v1/csi.pb.h"

namespace lbcsi::controller {

inline constexpr uint64_t kGiB = uint64_t{1} << 30;
// The shipped plugin's rules: at least 1 GiB, rounded up to whole GiB.
inline constexpr uint64_t kMinVolumeBytes = kGiB;

struct SizeRange {
  uint64_t required = 0;  // 0: unset
  uint64_t limit = 0;     // 0: unset
};

// Reads a CapacityRange (absent = both unset). Negative values and
// required > limit are INVALID_ARGUMENT naming `field`.
absl::StatusOr<SizeRange> ReadCapacityRange(const csi::v1::CapacityRange* range,
                                            std::string_view field);

// Picks the size for a new (empty) volume or an expansion: required (or the
// minimum when unset) raised to 1 GiB and rounded up to whole GiB. OUT_OF_RANGE
// when that exceeds the limit.
absl::StatusOr<uint64_t> ChooseSize(const SizeRange& range, std::string_view field);

enum class AccessType { kBlock, kMount };

// What a VolumeCapability asks for, once checked.
struct Capability {
  AccessType type = AccessType::kMount;
  csi::v1::VolumeCapability::AccessMode::Mode mode = csi::v1::VolumeCapability::AccessMode::UNKNOWN;
  std::string fs_type;  // mount only; "" means ext4

  bool ReadOnlyMode() const;  // SINGLE_NODE_READER_ONLY, MULTI_NODE_READER_ONLY
  bool MultiNode() const;     // MULTI_NODE_*
};

// Structural checks: access type and access mode present. INVALID_ARGUMENT naming `field`.
absl::StatusOr<Capability> ReadCapability(const csi::v1::VolumeCapability& cap,
                                          std::string_view field);

// Support checks on a structurally valid capability: access mode, MULTI_NODE_MULTI_WRITER
// only for block, fs type ext4/xfs, mount flags from the allow-list. INVALID_ARGUMENT
// naming the field (and the flag).
absl::Status CheckSupported(const csi::v1::VolumeCapability& cap, const Capability& parsed,
                            std::string_view field);

// Both of the above for a REQUIRED repeated field (at least one element).
absl::Status CheckCapabilities(
    const google::protobuf::RepeatedPtrField<csi::v1::VolumeCapability>& caps,
    std::string_view field);

bool IsAllowedMountFlag(std::string_view flag);

// CSI names (volume and snapshot): required, at most 128 bytes, none of the
// control characters the spec bans.
absl::Status CheckCsiName(std::string_view name, std::string_view field);

// Required string fields (ids): non-empty.
absl::Status CheckRequired(std::string_view value, std::string_view field);

// LightOS object names: ^[a-zA-Z0-9-_.]{1,253}$.
bool IsValidLightosName(std::string_view name);

// Deterministic LightOS name for a CSI name. Names that are already valid are
// used unchanged (what the shipped plugin does, so its volumes are found);
// others become a readable prefix plus a hash of the full name.
std::string LightosNameFor(std::string_view csi_name);

// Name of the temporary snapshot a clone into `volume_name` goes through.
std::string CloneSnapshotName(std::string_view volume_name);

}  // namespace lbcsi::controller
