#pragma once
// NVMe/TCP through libnvme 1.3 (no nvme-cli). Tested in the VM suite; this
// host has no nvme modules.
//
// Attach: connect through the discovery endpoints when given (so target ports
// added later are found), else to each NVMe endpoint; every path only when
// nvme_core native multipath is on, otherwise the first that works. "Already
// connected" is success. While waiting for the namespace whose uuid/wwid is the
// volume's, write rescan_controller of each controller of the subsystem (a new
// namespace on an existing controller shows up only after a rescan), until the
// request deadline.
// Detach: under a per-subsystem lock, disconnect the subsystem's controllers
// only when no namespace of it is in use (mountinfo, holders/, device binds).
//
// Device identity: a UUID names a device only when the attach registry lists
// the volume (the helper attached it) and exactly one namespace with that UUID
// belongs to the registered subsystem over TCP controllers with this node's
// host NQN (NvmeSysfs::ForeignReason). Subsystems outside the operator's
// allowed NQN prefixes are refused at Attach.

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "helper/state/attach_registry.h"
#include "helper/transport/nvme_sysfs.h"
#include "helper/transport/transport.h"

namespace lbcsi::helper {

struct NvmeDefaults {
  int ctrl_loss_tmo_seconds = 120;    // finite: a dead target does not hang the node forever
  int fast_io_fail_tmo_seconds = 20;  // fail I/O early so multipath can move it
  int reconnect_delay_seconds = 2;
};

// Who the transport is on this node and what it may attach.
struct NvmeIdentity {
  std::string host_nqn;
  std::string host_id;
  // Attach refuses a subsystem NQN that starts with none of these (empty: any).
  std::vector<std::string> allowed_subsystem_prefixes;
};

class NvmeTransport final : public Transport {
 public:
  NvmeTransport(NvmeIdentity identity, NvmeDefaults defaults, AttachRegistry registry,
                NvmeSysfs sysfs = NvmeSysfs())
      : identity_(std::move(identity)),
        defaults_(defaults),
        registry_(std::move(registry)),
        sysfs_(std::move(sysfs)) {}

  // First start with a registry: adopt the volumes already attached from an
  // allowed subsystem over TCP with this host NQN (attached by an earlier
  // helper that kept no registry), so their mounts stay manageable. Returns
  // how many were adopted.
  absl::StatusOr<int> SeedRegistry();

  std::string_view Name() const override { return "nvme"; }
  bool Development() const override { return false; }
  absl::StatusOr<BlockDevice> Attach(const AttachSpec& spec) override;
  absl::StatusOr<DetachResult> Detach(const std::string& volume_uuid,
                                      const std::string& subsystem_nqn) override;
  absl::StatusOr<std::optional<BlockDevice>> FindDevice(const std::string& volume_uuid) override;
  absl::StatusOr<std::vector<BlockDevice>> Inventory() override;
  absl::Status RefreshSize(const BlockDevice& device) override;

  static bool NativeMultipath();
  // libnvme's connect errno, in words a user can act on.
  static std::string DescribeConnectError(int err);

 private:
  std::vector<NvmeController> ControllersOf(const std::string& subsystem_nqn) const;
  absl::Status Connect(const AttachSpec& spec);
  absl::Status CheckSubsystemAllowed(const std::string& subsystem_nqn) const;
  // The one namespace of `subsystem_nqn` that shows `volume_uuid`, or nullopt.
  absl::StatusOr<std::optional<BlockDevice>> Resolve(const std::string& volume_uuid,
                                                     const std::string& subsystem_nqn) const;
  std::mutex& SubsystemLock(const std::string& nqn);

  NvmeIdentity identity_;
  NvmeDefaults defaults_;
  AttachRegistry registry_;
  NvmeSysfs sysfs_;
  std::mutex locks_mu_;
  std::map<std::string, std::unique_ptr<std::mutex>> subsystem_locks_;
};

}  // namespace lbcsi::helper
