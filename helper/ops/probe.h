#pragma once
// What a block device holds, from libblkid in-process. Two passes: a safe probe
// that classifies the content (and fails on ambiguity), then a signature walk
// like wipefs's that must find nothing for BLANK. Any probe error is an error:
// "could not read" is never "empty" (the data-loss pattern of other drivers).

#include <cstddef>
#include <string>

#include <absl/status/statusor.h>

#include "lbcsi/helper/v1/helper.pb.h"

namespace lbcsi::helper {

struct ProbeResult {
  v1::ContentKind kind = v1::CONTENT_KIND_UNSPECIFIED;
  std::string type;  // TYPE or PTTYPE
};

absl::StatusOr<ProbeResult> ProbeDevice(int fd);

// Before the helper writes a header on a device that probed blank: the first
// and last kZeroCheckBytes must read as zeros (data without any signature
// usually starts or ends there). FAILED_PRECONDITION naming the offset of the
// first non-zero byte; a read error is an error, never "zeros".
inline constexpr size_t kZeroCheckBytes = 1 << 20;
absl::Status CheckEndsReadZero(int fd, const std::string& volume_uuid);

}  // namespace lbcsi::helper
