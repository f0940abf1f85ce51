#include "helper/confinement/netns.h"

#include <errno.h>
#include <sys/stat.h>

#include <cstring>

#include "common/strings.h"

namespace lbcsi::helper {

absl::Status CheckSameNamespace(const std::string& ours, const std::string& reference,
                                const std::string& why) {
  struct stat a {
  }, b{};
  if (stat(ours.c_str(), &a) != 0) {
    return absl::FailedPreconditionError(Cat("cannot stat ", ours, ": ", strerror(errno)));
  }
  if (stat(reference.c_str(), &b) != 0) {
    return absl::FailedPreconditionError(
        Cat("cannot stat ", reference, ": ", strerror(errno),
            " (reading another process's namespace needs root with ptrace access to it; the "
            "helper refuses to run when it cannot verify)"));
  }
  if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
    return absl::FailedPreconditionError(Cat(ours, " (inode ", a.st_ino, ") differs from ",
                                             reference, " (inode ", b.st_ino, "): ", why));
  }
  return absl::OkStatus();
}

absl::Status CheckHostNetworkNamespace(const std::string& reference_proc) {
  return CheckSameNamespace(
      "/proc/self/ns/net", reference_proc + "/ns/net",
      "the helper must run in the host network namespace (hostNetwork: true), because the "
      "kernel creates NVMe/TCP queue sockets in the network namespace of the process that "
      "connects; in a private namespace they would use the wrong routes and die with it");
}

absl::Status CheckHostMountNamespace(const std::string& reference_proc) {
  return CheckSameNamespace(
      "/proc/self/ns/mnt", reference_proc + "/ns/mnt",
      "as a host service the helper must run in the host mount namespace, otherwise kubelet "
      "never sees the mounts it makes (in container mode a private mount namespace with "
      "Bidirectional propagation of the kubelet root is expected: skip this check there)");
}

}  // namespace lbcsi::helper
