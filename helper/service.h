#pragma once
// The NodeHelper gRPC service: validates each typed request, takes the
// per-volume in-flight slot, and runs the operation on fds opened under the
// configured roots. Every path a request names must be one of kubelet's CSI
// layouts for this driver (kubeletpaths/), and only mounts of the helper's own
// volumes are ever removed. grpc::Status appears only here.

#include <sys/types.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <absl/time/time.h>

#include "helper/crypto/luks.h"
#include "helper/inflight.h"
#include "helper/ops/fs_tools.h"
#include "helper/paths/mountinfo.h"
#include "helper/paths/path_guard.h"
#include "helper/state/format_state.h"
#include "helper/transport/transport.h"
#include "kubeletpaths/kubelet_paths.h"
#include "lbcsi/helper/v1/helper.grpc.pb.h"

namespace lbcsi::helper {

struct ServiceConfig {
  std::string host_nqn;
  std::string host_id;
  std::string version;
  std::string plugin_socket_dir;  // PrepareSocketDir(SOCKET_DIR_PLUGIN); empty: refused
  std::string registration_dir;   // PrepareSocketDir(SOCKET_DIR_REGISTRATION)
  uid_t agent_uid = 0;            // owner of prepared socket dirs (group: root)
  absl::Duration default_deadline = absl::Seconds(60);  // when the client sets none
  absl::Duration max_deadline = absl::Seconds(300);
  crypto::LuksConfig luks;  // host encryption: key size and PBKDF cost of new LUKS2 headers
};

class HelperService final : public v1::NodeHelper::Service {
 public:
  // `layouts` is kubelet's root (the guard's root) and this driver's name.
  HelperService(ServiceConfig config, PathGuard guard, kubeletpaths::KubeletLayouts layouts,
                std::unique_ptr<Transport> transport, FsTools* fs_tools, FormatState format_state);
  ~HelperService() override;  // waits for running mkfs jobs

  grpc::Status GetInfo(grpc::ServerContext*, const v1::GetInfoRequest*,
                       v1::GetInfoResponse*) override;
  grpc::Status PrepareSocketDir(grpc::ServerContext*, const v1::PrepareSocketDirRequest*,
                                v1::PrepareSocketDirResponse*) override;
  grpc::Status Attach(grpc::ServerContext*, const v1::AttachRequest*, v1::AttachResponse*) override;
  grpc::Status Detach(grpc::ServerContext*, const v1::DetachRequest*, v1::DetachResponse*) override;
  grpc::Status Probe(grpc::ServerContext*, const v1::ProbeRequest*, v1::ProbeResponse*) override;
  grpc::Status Format(grpc::ServerContext*, const v1::FormatRequest*, v1::FormatResponse*) override;
  grpc::Status Mount(grpc::ServerContext*, const v1::MountRequest*, v1::MountResponse*) override;
  grpc::Status Unmount(grpc::ServerContext*, const v1::UnmountRequest*,
                       v1::UnmountResponse*) override;
  grpc::Status Publish(grpc::ServerContext*, const v1::PublishRequest*,
                       v1::PublishResponse*) override;
  grpc::Status Unpublish(grpc::ServerContext*, const v1::UnpublishRequest*,
                         v1::UnpublishResponse*) override;
  grpc::Status ExpandFilesystem(grpc::ServerContext*, const v1::ExpandFilesystemRequest*,
                                v1::ExpandFilesystemResponse*) override;
  grpc::Status Stats(grpc::ServerContext*, const v1::StatsRequest*, v1::StatsResponse*) override;
  grpc::Status Inventory(grpc::ServerContext*, const v1::InventoryRequest*,
                         v1::InventoryResponse*) override;
  grpc::Status FormatEncrypted(grpc::ServerContext*, const v1::FormatEncryptedRequest*,
                               v1::FormatEncryptedResponse*) override;
  grpc::Status OpenEncrypted(grpc::ServerContext*, const v1::OpenEncryptedRequest*,
                             v1::OpenEncryptedResponse*) override;
  grpc::Status CloseEncrypted(grpc::ServerContext*, const v1::CloseEncryptedRequest*,
                              v1::CloseEncryptedResponse*) override;

  // The operations, without the gRPC wrapping (also what the handlers call).
  absl::Status DoAttach(const v1::AttachRequest&, absl::Time deadline, v1::AttachResponse*);
  absl::Status DoDetach(const v1::DetachRequest&, v1::DetachResponse*);
  absl::Status DoProbe(const v1::ProbeRequest&, v1::ProbeResponse*);
  absl::Status DoFormat(const v1::FormatRequest&, absl::Time deadline, v1::FormatResponse*);
  absl::Status DoMount(const v1::MountRequest&, v1::MountResponse*);
  absl::Status DoUnmount(const v1::UnmountRequest&, v1::UnmountResponse*);
  absl::Status DoPublish(const v1::PublishRequest&, v1::PublishResponse*);
  absl::Status DoUnpublish(const v1::UnpublishRequest&, v1::UnpublishResponse*);
  absl::Status DoExpand(const v1::ExpandFilesystemRequest&, v1::ExpandFilesystemResponse*);
  absl::Status DoStats(const v1::StatsRequest&, v1::StatsResponse*);
  absl::Status DoInventory(v1::InventoryResponse*);
  // The passphrase field is wiped in place once copied (it is the helper's
  // last copy of the caller's bytes).
  absl::Status DoFormatEncrypted(v1::FormatEncryptedRequest& req, v1::FormatEncryptedResponse*);
  absl::Status DoOpenEncrypted(v1::OpenEncryptedRequest& req, v1::OpenEncryptedResponse*);
  absl::Status DoCloseEncrypted(const v1::CloseEncryptedRequest&, v1::CloseEncryptedResponse*);
  absl::Status DoPrepareSocketDir(const v1::PrepareSocketDirRequest&,
                                  v1::PrepareSocketDirResponse*);

 private:
  absl::Time Deadline(const grpc::ServerContext* ctx) const;
  // In-flight slots for a volume and/or paths; ABORTED while a format of the
  // volume is still running in the background.
  absl::StatusOr<InFlight::Guard> Acquire(const std::string& volume_uuid,
                                          std::vector<std::string> paths);
  absl::StatusOr<BlockDevice> AttachedDevice(const std::string& volume_uuid);
  // Path authority: `path` must match one of `kinds` of kubelet's layouts for this driver
  // (INVALID_ARGUMENT naming the wrong component), then it is opened beneath the root.
  absl::StatusOr<PathGuard::Parent> OpenKubeletPath(
      std::string_view field, std::string_view path,
      std::initializer_list<kubeletpaths::PathKind> kinds,
      kubeletpaths::KubeletPath* matched = nullptr) const;
  // Whether a mount is one of ours: a filesystem on one of our devices or open mappings (a
  // staging mount, or a bind of one), or one of those device nodes bound as a file.
  absl::StatusOr<std::function<bool(const MountEntry&)>> OurMounts();
  // docs/design.md rule 1's request-level part, shared by Format and FormatEncrypted: never on
  // read-only or multi-node volumes, never without a never-written proof.
  static absl::Status CheckMayWriteHeader(bool read_only, bool multi_node,
                                          v1::NeverWrittenProof proof, std::string_view what);
  // The device a request works on: the attached volume, or with `encrypted`
  // its open LUKS mapping lbcsi-<uuid>, checked to sit on that volume (paths
  // counted from the volume). FAILED_PRECONDITION when not attached / not open.
  absl::StatusOr<BlockDevice> VolumeDevice(const std::string& volume_uuid, bool encrypted);
  // The open mapping of an attached volume, or nullopt; FAILED_PRECONDITION
  // when a device of that name exists but is not a LUKS2 mapping of `raw`.
  absl::StatusOr<std::optional<BlockDevice>> OpenMapping(const BlockDevice& raw);
  // nullopt when the volume is not attached or (encrypted) its mapping is closed.
  absl::StatusOr<std::optional<BlockDevice>> FindVolumeDevice(const std::string& volume_uuid,
                                                              bool encrypted);
  // e2fsck -p on the unmounted ext4 filesystem of `dev` before a read-write
  // stage (docs/design.md "Filesystem check before mount").
  absl::Status PreenBeforeMount(const std::string& volume_uuid, const BlockDevice& dev);

  ServiceConfig config_;
  PathGuard guard_;
  kubeletpaths::KubeletLayouts layouts_;
  std::unique_ptr<Transport> transport_;
  FsTools* fs_tools_;
  FormatState format_state_;
  InFlight inflight_;

  std::mutex format_mu_;
  std::condition_variable format_cv_;
  std::set<std::string> formatting_;  // volumes with mkfs running now

  std::mutex preen_mu_;
  std::map<std::string, std::string> preen_notes_;  // volume -> what its last preen repaired
};

}  // namespace lbcsi::helper
