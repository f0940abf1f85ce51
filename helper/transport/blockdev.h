#pragma once
// Small, transport-independent facts about block devices, read from sysfs,
// /dev and mountinfo. Device nodes are opened only after their major:minor is
// checked, so a tampered /dev cannot redirect the helper.

#include <sys/types.h>

#include <string>
#include <string_view>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include "helper/fd.h"
#include "helper/transport/transport.h"

namespace lbcsi::helper {

// Reads a small sysfs attribute, trailing newline removed. NOT_FOUND if absent.
absl::StatusOr<std::string> ReadSysfs(const std::string& path);
absl::Status WriteSysfs(const std::string& path, std::string_view value);

// Fills dev and size_bytes from <sysfs_root>/block/<name>.
absl::Status FillFromSysfs(BlockDevice* device, std::string_view sysfs_root = "/sys");

// Opens /dev/<name>; FAILED_PRECONDITION when it is not the block device
// dev says (gone, replaced, or not a block device).
absl::StatusOr<UniqueFd> OpenDevice(const BlockDevice& device, int flags);

// Why the device is in use ("mounted at X", "held by dm-0", "bound at Y"),
// or empty when it is not. Derived from kernel state only.
absl::StatusOr<std::string> InUseReason(const BlockDevice& device);

// Device size via BLKGETSIZE64 on an open fd.
absl::StatusOr<uint64_t> DeviceSize(int fd);

}  // namespace lbcsi::helper
