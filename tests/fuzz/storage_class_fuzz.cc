// Fuzzes StorageClass parameter parsing with arbitrary key/value maps: no crash,
// and an accepted map always yields values inside the documented ranges.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "scparams/storage_class.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Input: lines "key=value"; known keys are likelier to be hit from the seed corpus.
  lbcsi::ParamMap params;
  std::string text(reinterpret_cast<const char*>(data), size);
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    size_t eq = line.find('=');
    if (eq != std::string::npos) params[line.substr(0, eq)] = line.substr(eq + 1);
    start = end + 1;
  }
  absl::StatusOr<lbcsi::StorageClassParams> p = lbcsi::ParseStorageClassParams(params);
  if (!p.ok()) {
    if (p.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  if (p->replica_count < 1 || p->replica_count > lbcsi::kMaxReplicaCount) std::abort();
  if (p->mgmt_endpoints.empty()) std::abort();
  if (p->compression && p->host_encryption) std::abort();
  if (!p->project_name.empty() && !lbcsi::IsValidProjectName(p->project_name)) std::abort();
  return 0;
}
