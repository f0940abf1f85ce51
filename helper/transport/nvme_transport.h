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

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "helper/transport/transport.h"

namespace lbcsi::helper {

struct NvmeDefaults {
  int ctrl_loss_tmo_seconds = 120;    // finite: a dead target does not hang the node forever
  int fast_io_fail_tmo_seconds = 20;  // fail I/O early so multipath can move it
  int reconnect_delay_seconds = 2;
};

class NvmeTransport final : public Transport {
 public:
  NvmeTransport(std::string host_nqn, std::string host_id, NvmeDefaults defaults)
      : host_nqn_(std::move(host_nqn)), host_id_(std::move(host_id)), defaults_(defaults) {}

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
  struct Controller {
    std::string name;     // nvme3
    std::string address;  // traddr=..,trsvcid=..
    std::string state;    // live, connecting, ...
  };
  std::vector<Controller> ControllersOf(const std::string& subsystem_nqn) const;
  absl::Status Connect(const AttachSpec& spec);
  std::mutex& SubsystemLock(const std::string& nqn);

  std::string host_nqn_;
  std::string host_id_;
  NvmeDefaults defaults_;
  std::mutex locks_mu_;
  std::map<std::string, std::unique_ptr<std::mutex>> subsystem_locks_;
};

}  // namespace lbcsi::helper
