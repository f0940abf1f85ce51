#pragma once
// The helper must share the host's network and mount namespaces (PID 1's):
// NVMe/TCP queue sockets live in the network namespace of the process that
// writes to /dev/nvme-fabrics, and mounts must be visible to kubelet.

#include <string>

#include <absl/status/status.h>

namespace lbcsi::helper {

// OK when /proc/self/ns/net and /proc/1/ns/net are the same namespace
// (st_dev and st_ino); FAILED_PRECONDITION with an explanation otherwise,
// including when PID 1's namespace cannot be read (fail closed).
// `reference_proc` names the process to compare with (tests pass another pid).
absl::Status CheckHostNetworkNamespace(const std::string& reference_proc = "/proc/1");

// The same for the mount namespace (/proc/self/ns/mnt vs /proc/1/ns/mnt). Meant
// for host-service mode: a privileged container has its own mount namespace and
// relies on Bidirectional mount propagation instead, so the caller decides.
absl::Status CheckHostMountNamespace(const std::string& reference_proc = "/proc/1");

// The comparison itself, for any two namespace files (tests).
absl::Status CheckSameNamespace(const std::string& ours, const std::string& reference,
                                const std::string& why);

}  // namespace lbcsi::helper
