#pragma once
// DEVELOPMENT TRANSPORT (compiled only with LBCSI_DEV_TRANSPORT, used only with
// --transport loop). Emulates what an NVMe/TCP target shows this host, using
// lightos-sim's data directory:
//   <sim-data-dir>/volumes/<uuid>.img   the volume's content (sparse file)
//   <sim-data-dir>/volumes/<uuid>.acl   host NQNs allowed, one token per line
//                                       (also accepts ',', spaces, a JSON list;
//                                       ALLOW_ANY / ALLOW_NONE as in LightOS)
// Attach makes a loop device over the file only while the ACL holds this host's
// NQN, just as a real target hides the namespace otherwise. The loop device is
// found again from sysfs loop/backing_file; lo_file_name carries "lbcsi:<uuid>".

#include <string>

#include "helper/transport/transport.h"

namespace lbcsi::helper {

class LoopTransport final : public Transport {
 public:
  // sim_data_dir must exist; it is canonicalised here.
  static absl::StatusOr<std::unique_ptr<LoopTransport>> Create(const std::string& sim_data_dir,
                                                               std::string host_nqn);

  std::string_view Name() const override { return "loop"; }
  bool Development() const override { return true; }
  absl::StatusOr<BlockDevice> Attach(const AttachSpec& spec) override;
  absl::StatusOr<DetachResult> Detach(const std::string& volume_uuid,
                                      const std::string& subsystem_nqn) override;
  absl::StatusOr<std::optional<BlockDevice>> FindDevice(const std::string& volume_uuid) override;
  absl::StatusOr<std::vector<BlockDevice>> Inventory() override;
  absl::Status RefreshSize(const BlockDevice& device) override;

  // True when the ACL file lets this host see the volume.
  bool AclAllows(const std::string& volume_uuid) const;

 private:
  LoopTransport(std::string dir, std::string host_nqn)
      : volumes_dir_(std::move(dir)), host_nqn_(std::move(host_nqn)) {}
  absl::StatusOr<BlockDevice> Configure(const std::string& volume_uuid);
  std::string volumes_dir_;
  std::string host_nqn_;
};

}  // namespace lbcsi::helper
