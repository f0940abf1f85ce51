// Fuzzes StorageClass parameter parsing with arbitrary key/value maps: no crash,
// an accepted map always yields values inside the documented ranges, and its
// mkfs options round-trip through the volume context and become only the
// fixed flags and numbers mkfsopts defines.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "mkfsopts/mkfs_options.h"
#include "scparams/storage_class.h"

namespace {

// Every mkfs argument is a known flag, a number, "size=<number>" or the -m list.
bool IsTameArgument(const std::string& a) {
  static const char* const kFlags[] = {"-b", "-I", "-i", "-O", "bigalloc", "-C", "-m"};
  for (const char* f : kFlags) {
    if (a == f) return true;
  }
  std::string digits = a.rfind("size=", 0) == 0 ? a.substr(5) : a;
  if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos) return true;
  for (const char* m : {"crc=0", "crc=1", "reflink=0", "reflink=1", "crc=0,reflink=0",
                        "crc=1,reflink=0", "crc=1,reflink=1"}) {
    if (a == m) return true;
  }
  return false;
}

void CheckMkfs(const lbcsi::mkfsopts::MkfsOptions& o) {
  namespace mk = lbcsi::mkfsopts;
  absl::StatusOr<mk::MkfsOptions> again = mk::ParseMap(mk::ToKeys(o));
  if (!again.ok() || !(*again == o)) std::abort();
  for (mk::Fs fs : {mk::Fs::kExt4, mk::Fs::kXfs}) {
    if (!mk::Check(o, fs).ok()) continue;
    for (const std::string& a : mk::Arguments(o, fs)) {
      if (!IsTameArgument(a)) std::abort();
    }
  }
}

}  // namespace

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
  CheckMkfs(p->mkfs);
  return 0;
}
