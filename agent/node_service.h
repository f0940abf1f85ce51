#pragma once
// CSI Node service. Validates, guards each volume against concurrent calls,
// records intents in the state store, and asks the helper to do every
// privileged step. Never touches a device, a mount or a kubelet directory.

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include "agent/config.h"
#include "agent/crash_points.h"
#include "agent/helper_client.h"
#include "agent/inflight.h"
#include "agent/mount_flags.h"
#include "agent/state/store.h"
#include "csi/v1/csi.grpc.pb.h"
#include "kubeletpaths/kubelet_paths.h"
#include "lightos/client.h"
#include "metrics/registry.h"
#include "volumeid/credential_scope.h"

namespace lbcsi::agent {

struct NodeDeps {
  AgentConfig config;
  std::shared_ptr<HelperClient> helper;
  std::shared_ptr<state::Store> store;
  std::shared_ptr<lightos::ClientFactory> lightos;   // may be null: no fallback, no ephemeral
  CrashHook crash_hook;                              // tests only
  absl::Duration helper_timeout = absl::Minutes(2);  // per helper call, capped by the CSI deadline
  metrics::Registry* metrics = nullptr;              // per-RPC counts and latency; null: none
};

// How a stage differs beyond its record. `has_content_source`: a restore or
// clone, whose filesystem may be smaller than the device (checked and grown at
// stage). `driver_owned_path`: the helper creates the staging directory
// (inline volumes); kubelet did not.
struct StageOptions {
  bool has_content_source = false;
  bool driver_owned_path = false;
  hv1::MkfsOptions mkfs;  // checked by CheckMkfsOptions; used only when formatting
};

class NodeService final : public csi::v1::Node::Service {
 public:
  explicit NodeService(NodeDeps deps);

  grpc::Status NodeStageVolume(grpc::ServerContext* ctx, const csi::v1::NodeStageVolumeRequest* req,
                               csi::v1::NodeStageVolumeResponse* resp) override;
  grpc::Status NodeUnstageVolume(grpc::ServerContext* ctx,
                                 const csi::v1::NodeUnstageVolumeRequest* req,
                                 csi::v1::NodeUnstageVolumeResponse* resp) override;
  grpc::Status NodePublishVolume(grpc::ServerContext* ctx,
                                 const csi::v1::NodePublishVolumeRequest* req,
                                 csi::v1::NodePublishVolumeResponse* resp) override;
  grpc::Status NodeUnpublishVolume(grpc::ServerContext* ctx,
                                   const csi::v1::NodeUnpublishVolumeRequest* req,
                                   csi::v1::NodeUnpublishVolumeResponse* resp) override;
  grpc::Status NodeGetVolumeStats(grpc::ServerContext* ctx,
                                  const csi::v1::NodeGetVolumeStatsRequest* req,
                                  csi::v1::NodeGetVolumeStatsResponse* resp) override;
  grpc::Status NodeExpandVolume(grpc::ServerContext* ctx,
                                const csi::v1::NodeExpandVolumeRequest* req,
                                csi::v1::NodeExpandVolumeResponse* resp) override;
  grpc::Status NodeGetCapabilities(grpc::ServerContext* ctx,
                                   const csi::v1::NodeGetCapabilitiesRequest* req,
                                   csi::v1::NodeGetCapabilitiesResponse* resp) override;
  grpc::Status NodeGetInfo(grpc::ServerContext* ctx, const csi::v1::NodeGetInfoRequest* req,
                           csi::v1::NodeGetInfoResponse* resp) override;

  // Start-up reconcile: compares the records with the helper's inventory (and
  // LightOS for ephemeral volumes) and finishes or undoes half-done operations.
  // Returns how many records it changed. Records it cannot use are
  // quarantined (agent/reconcile.cc) and counted in QuarantinedRecords().
  absl::StatusOr<int> Reconcile(absl::Time deadline);
  int QuarantinedRecords() const { return quarantined_.load(); }

  // Plain-status entry points (the gRPC methods wrap these); `deadline` is the CO's.
  absl::Status Stage(const csi::v1::NodeStageVolumeRequest& req, absl::Time deadline);
  absl::Status Unstage(const csi::v1::NodeUnstageVolumeRequest& req, absl::Time deadline);
  absl::Status Publish(const csi::v1::NodePublishVolumeRequest& req, absl::Time deadline);
  absl::Status Unpublish(const csi::v1::NodeUnpublishVolumeRequest& req, absl::Time deadline);
  absl::StatusOr<csi::v1::NodeGetVolumeStatsResponse> Stats(
      const csi::v1::NodeGetVolumeStatsRequest& req, absl::Time deadline);
  absl::StatusOr<csi::v1::NodeExpandVolumeResponse> Expand(
      const csi::v1::NodeExpandVolumeRequest& req, absl::Time deadline);

  // The LightOS name an ephemeral volume with kubelet's `volume_id` gets.
  static std::string EphemeralVolumeName(std::string_view volume_id);
  // Where its filesystem is mounted before being bound to the pod's target.
  std::string EphemeralStagingPath(std::string_view volume_id) const;

 private:
  // Where the volume's data path is: subsystem and addresses.
  struct Where {
    std::string subsystem_nqn;
    std::vector<hv1::TargetAddress> nvme;
    std::vector<hv1::TargetAddress> discovery;
  };
  absl::Status Checkpoint(std::string_view point);
  absl::Time HelperDeadline(absl::Time co_deadline) const;
  absl::StatusOr<Where> ResolveDataPath(
      const ResourceId& id, const google::protobuf::Map<std::string, std::string>& pc,
      const google::protobuf::Map<std::string, std::string>& secrets, absl::Time deadline,
      int* proof);
  // `passphrase`: host-encrypted stages only (stage.encrypted); never stored or logged.
  absl::Status AttachProbeFormatMount(const std::string& uuid, const Where& where,
                                      const state::StageRecord& stage, int proof,
                                      std::string_view point_prefix, absl::Time deadline,
                                      std::string_view passphrase = {},
                                      const StageOptions& opts = {});
  // Host encryption at stage: LUKS2-format a never-written volume (rule 1),
  // then open its mapping. The volume is attached.
  absl::Status OpenEncryptedVolume(const std::string& uuid, const state::StageRecord& stage,
                                   int proof, std::string_view passphrase, absl::Time deadline);
  // Closes the volume's LUKS mapping (no-op when it is not open).
  absl::Status CloseEncryptedVolume(const std::string& uuid, absl::Time deadline);
  // The one teardown of a stage, in its one safe order: unmount (filesystems),
  // close the LUKS mapping, detach, forget the stage. `undo`: taking back a
  // failed stage (from Stage or reconcile), which may go past a staging path
  // the helper refuses when nothing is mounted there and passes no crash points.
  absl::Status TearDownStage(state::VolumeRecord& rec, absl::Time deadline, bool undo);
  // The record under `key` (VolumeKey), else one an older agent wrote under
  // the id as the CO spelled it.
  absl::StatusOr<std::optional<state::VolumeRecord>> LoadRecord(const std::string& key,
                                                                std::string_view volume_id) const;
  // Unmounts what the helper's inventory shows at `path` only when it is this
  // volume's (`uuid`); a mount of anything else is never touched.
  absl::Status UnmountIfOurs(std::string_view path, std::string_view uuid, bool bind,
                             absl::Time deadline);

  absl::Status PublishEphemeral(const csi::v1::NodePublishVolumeRequest& req, absl::Time deadline);
  absl::Status DeleteEphemeral(state::VolumeRecord& rec, absl::Time deadline, bool from_reconcile);
  absl::StatusOr<std::shared_ptr<lightos::Client>> EphemeralClient();

  NodeDeps deps_;
  CredentialScope token_scope_;  // where the node-stage fallback may send a token
  // kubelet's path layouts for this root and driver; empty when the
  // configuration is not usable (every path is then refused).
  std::optional<kubeletpaths::KubeletLayouts> layouts_;
  InFlight inflight_;
  std::atomic<int> quarantined_{0};
};

}  // namespace lbcsi::agent
