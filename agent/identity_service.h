#pragma once
// CSI Identity for the node plugin. Probe is ready only when the helper answers
// (short deadline), has the host NQN this node advertises, and the start-up
// reconcile has finished.

#include <atomic>
#include <memory>

#include <absl/time/time.h>

#include "agent/config.h"
#include "agent/helper_client.h"
#include "csi/v1/csi.grpc.pb.h"

namespace lbcsi::agent {

class IdentityService final : public csi::v1::Identity::Service {
 public:
  IdentityService(AgentConfig config, std::shared_ptr<HelperClient> helper,
                  absl::Duration probe_timeout = absl::Seconds(2));

  void SetReconciled(bool done) { reconciled_ = done; }
  // State records the reconcile quarantined: Probe stays ready (the other
  // volumes are served) and reports the count in trailing metadata
  // kQuarantinedMetadata, since ProbeResponse has no detail field.
  void SetQuarantined(int records) { quarantined_ = records; }
  static constexpr char kQuarantinedMetadata[] = "lbcsi-quarantined-records";

  grpc::Status GetPluginInfo(grpc::ServerContext*, const csi::v1::GetPluginInfoRequest*,
                             csi::v1::GetPluginInfoResponse* resp) override;
  grpc::Status GetPluginCapabilities(grpc::ServerContext*,
                                     const csi::v1::GetPluginCapabilitiesRequest*,
                                     csi::v1::GetPluginCapabilitiesResponse* resp) override;
  grpc::Status Probe(grpc::ServerContext*, const csi::v1::ProbeRequest*,
                     csi::v1::ProbeResponse* resp) override;

 private:
  const AgentConfig config_;
  std::shared_ptr<HelperClient> helper_;
  absl::Duration probe_timeout_;
  std::atomic<bool> reconciled_{false};
  std::atomic<int> quarantined_{0};
};

}  // namespace lbcsi::agent
