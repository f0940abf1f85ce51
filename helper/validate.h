#pragma once
// Syntax checks for the typed identifiers a request carries. They run before the
// helper touches anything, so a hostile value never reaches sysfs, libnvme or mount.

#include <string>
#include <string_view>
#include <vector>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include "lbcsi/helper/v1/helper.pb.h"
#include "mkfsopts/mkfs_options.h"

namespace lbcsi::helper {

inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr size_t kMaxNqnBytes = 223;  // NVMe base spec limit
inline constexpr size_t kMaxSelinuxLabelBytes = 255;
inline constexpr size_t kMaxEndpoints = 16;

// Lower-case 8-4-4-4-12 hex (how LightOS and sysfs print UUIDs). Upper case is
// refused rather than folded so that one volume has exactly one spelling.
absl::Status ValidateUuid(std::string_view field, std::string_view uuid);

// "nqn.yyyy-mm.reverse.domain:anything-printable" up to 223 bytes, no spaces,
// commas or '=' (they would break the fabrics option string).
absl::Status ValidateNqn(std::string_view field, std::string_view nqn);

// An IPv4 or IPv6 literal and a port in 1..65535.
absl::Status ValidateAddress(std::string_view field, const v1::TargetAddress& address);

// An address from a discovery log entry (traddr, trsvcid as the target sent
// them, padding removed): the same rules as ValidateAddress, the port all
// digits. A discovery controller is not trusted more than a request.
absl::StatusOr<v1::TargetAddress> ParseDiscoveryAddress(std::string_view traddr,
                                                        std::string_view trsvcid);

// A FormatRequest's mkfs options for `fs_type`, with the same rules the
// controller applied to the StorageClass (mkfsopts::Check).
absl::StatusOr<mkfsopts::MkfsOptions> ValidateMkfsOptions(const v1::MkfsOptions& options,
                                                          v1::FsType fs_type);

// SELinux label user:role:type:level; the level may hold ',' (categories) and
// '.' (ranges). Only [A-Za-z0-9_.:,-] are accepted. Quotes kubelet adds are
// stripped by the caller (the agent) — the helper refuses them.
absl::Status ValidateSelinuxLabel(std::string_view field, std::string_view label);

// Turns the typed options into a libmount option string. read_only adds "ro";
// the fs-specific journal options for read-only mounts are added here too
// (noload for ext4, norecovery for xfs) when `staging` is true.
struct MountOptionSet {
  std::string options;      // comma-separated, for libmount
  unsigned long flags = 0;  // MS_* flags equivalent to the VFS options (for bind remounts)
};
absl::StatusOr<MountOptionSet> BuildMountOptions(
    v1::FsType fs_type, bool read_only, const google::protobuf::RepeatedField<int>& options,
    std::string_view selinux_context, bool staging);

std::string_view FsTypeName(v1::FsType fs_type);  // "ext4", "xfs" or ""

}  // namespace lbcsi::helper
