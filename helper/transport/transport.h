#pragma once
// How a volume's block device comes and goes on this node. One interface, two
// implementations: NVMe/TCP through libnvme (production) and, in development
// builds only, loop devices over lightos-sim volume files. Everything above this
// interface (probe, format, mount, stats) is shared, so the same tests cover both.

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include "lbcsi/helper/v1/helper.pb.h"

namespace lbcsi::helper {

// A namespace block device found by volume UUID.
struct BlockDevice {
  std::string volume_uuid;
  std::string name;  // kernel name: "nvme0n1", "loop3"
  dev_t dev = 0;     // major:minor, checked against /dev/<name> on every open
  uint64_t size_bytes = 0;
  uint32_t paths_total = 1;
  uint32_t paths_live = 1;
};

struct AttachSpec {
  std::string volume_uuid;
  std::string subsystem_nqn;
  std::vector<v1::TargetAddress> nvme_endpoints;
  std::vector<v1::TargetAddress> discovery_endpoints;
  v1::ConnectOptions options;
  absl::Time deadline;  // give up (with a clear reason) by then
};

struct DetachResult {
  bool was_attached = false;
  bool controllers_disconnected = false;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual std::string_view Name() const = 0;
  virtual bool Development() const = 0;

  // Connects if needed and waits for the namespace; FAILED_PRECONDITION with the
  // reason when it never appears (e.g. this host is not in the volume's ACL).
  virtual absl::StatusOr<BlockDevice> Attach(const AttachSpec& spec) = 0;
  // FAILED_PRECONDITION when the volume's device is still in use.
  virtual absl::StatusOr<DetachResult> Detach(const std::string& volume_uuid,
                                              const std::string& subsystem_nqn) = 0;
  // nullopt when the volume is not attached.
  virtual absl::StatusOr<std::optional<BlockDevice>> FindDevice(const std::string& volume_uuid) = 0;
  virtual absl::StatusOr<std::vector<BlockDevice>> Inventory() = 0;
  // Makes the kernel re-read the namespace size (after a controller-side expand).
  virtual absl::Status RefreshSize(const BlockDevice& device) = 0;
};

}  // namespace lbcsi::helper
