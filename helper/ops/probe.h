#pragma once
// What a block device holds, from libblkid in-process. Two passes: a safe probe
// that classifies the content (and fails on ambiguity), then a signature walk
// like wipefs's that must find nothing for BLANK. Any probe error is an error:
// "could not read" is never "empty" (the data-loss pattern of other drivers).

#include <string>

#include <absl/status/statusor.h>

#include "lbcsi/helper/v1/helper.pb.h"

namespace lbcsi::helper {

struct ProbeResult {
  v1::ContentKind kind = v1::CONTENT_KIND_UNSPECIFIED;
  std::string type;  // TYPE or PTTYPE
};

absl::StatusOr<ProbeResult> ProbeDevice(int fd);

}  // namespace lbcsi::helper
