#pragma once
// The node's NVMe host NQN and host id come only from files the helper reads
// or manages, never from a request. A fresh machine has no /etc/nvme/hostnqn:
// then one is generated ("nqn.2014-08.org.nvmexpress:uuid:<random v4 uuid>")
// and written, with the uuid as hostid beside it (<dir>/hostid), atomically.

#include <string>

#include <absl/status/statusor.h>

namespace lbcsi::helper {

struct HostIdentity {
  std::string host_nqn;
  std::string host_id;
};

// hostid lives next to the hostnqn file ("hostid" in the same directory).
absl::StatusOr<HostIdentity> LoadOrCreateHostIdentity(const std::string& host_nqn_file);

std::string RandomUuid();  // v4, lower case

}  // namespace lbcsi::helper
