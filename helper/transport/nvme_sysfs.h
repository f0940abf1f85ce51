#pragma once
// What the kernel shows of NVMe namespaces and controllers in sysfs, read from
// a configurable root so that tests can lay out a fake tree. No libnvme here:
// these are the facts the helper checks before it uses a device as a volume's.
//
// A namespace head is /sys/block/nvme<S>n<N>. Its `device` is the subsystem
// (native multipath: the path controllers nvme<C> are entries in it) or, with
// multipath off, the one controller itself.

#include <string>
#include <string_view>
#include <vector>

namespace lbcsi::helper {

struct NvmeController {
  std::string name;  // nvme3
  std::string transport;
  std::string host_nqn;
  std::string subsystem_nqn;
  std::string address;  // traddr=..,trsvcid=..
  std::string state;    // live, connecting, ...
};

struct NvmeNamespace {
  std::string name;           // nvme0n1
  std::string uuid;           // lower case; from uuid, else wwid "uuid.<UUID>"; may be empty
  std::string subsystem_nqn;  // the namespace's subsystem
  std::vector<NvmeController> controllers;  // its paths
};

class NvmeSysfs {
 public:
  explicit NvmeSysfs(std::string root = "/sys") : root_(std::move(root)) {}

  // Every namespace head, with its subsystem and controllers.
  std::vector<NvmeNamespace> Namespaces() const;
  // Every controller in /sys/class/nvme.
  std::vector<NvmeController> Controllers() const;

  // Why `ns` is not a namespace the helper may use for a volume it attached
  // from `subsystem_nqn` over NVMe/TCP with `host_nqn`, or "" when it may:
  // same subsystem, at least one controller, every controller TCP with our
  // host NQN. This is what keeps the node's own disks (PCIe), other hosts'
  // connections and other subsystems out of reach.
  static std::string ForeignReason(const NvmeNamespace& ns, std::string_view host_nqn,
                                   std::string_view subsystem_nqn);

  const std::string& root() const { return root_; }

 private:
  NvmeController ReadController(const std::string& dir, std::string name) const;
  std::string root_;
};

// Namespace heads are nvme<S>n<N>; nvme<S>c<C>n<N> are hidden path devices.
bool IsNvmeNamespaceHead(std::string_view name);
// Controllers are nvme<C>.
bool IsNvmeControllerName(std::string_view name);

}  // namespace lbcsi::helper
