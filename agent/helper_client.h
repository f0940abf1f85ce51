#pragma once
// The agent's side of the private helper API: one typed call per privileged
// operation, with a deadline that never outlives the CSI call it serves.

#include <memory>
#include <string>
#include <string_view>

#include <absl/status/statusor.h>
#include <absl/time/time.h>
#include <grpcpp/channel.h>

#include "lbcsi/helper/v1/helper.grpc.pb.h"
#include "metrics/registry.h"

namespace lbcsi::agent {

namespace hv1 = ::lbcsi::helper::v1;

class HelperClient {
 public:
  explicit HelperClient(std::shared_ptr<grpc::Channel> channel);
  // Counts and times every call (agent/metrics.h); null: not recorded.
  void SetMetrics(metrics::Registry* registry) { metrics_ = registry; }
  // Connects lazily to the helper's unix socket.
  static std::unique_ptr<HelperClient> ForSocket(const std::string& socket_path);

  absl::StatusOr<hv1::GetInfoResponse> GetInfo(absl::Time deadline);
  absl::StatusOr<hv1::PrepareSocketDirResponse> PrepareSocketDir(
      const hv1::PrepareSocketDirRequest& req, absl::Time deadline);
  absl::StatusOr<hv1::AttachResponse> Attach(const hv1::AttachRequest& req, absl::Time deadline);
  absl::StatusOr<hv1::DetachResponse> Detach(const hv1::DetachRequest& req, absl::Time deadline);
  absl::StatusOr<hv1::ProbeResponse> Probe(const hv1::ProbeRequest& req, absl::Time deadline);
  absl::StatusOr<hv1::FormatResponse> Format(const hv1::FormatRequest& req, absl::Time deadline);
  absl::StatusOr<hv1::MountResponse> Mount(const hv1::MountRequest& req, absl::Time deadline);
  absl::StatusOr<hv1::UnmountResponse> Unmount(const hv1::UnmountRequest& req, absl::Time deadline);
  absl::StatusOr<hv1::PublishResponse> Publish(const hv1::PublishRequest& req, absl::Time deadline);
  absl::StatusOr<hv1::UnpublishResponse> Unpublish(const hv1::UnpublishRequest& req,
                                                   absl::Time deadline);
  absl::StatusOr<hv1::ExpandFilesystemResponse> ExpandFilesystem(
      const hv1::ExpandFilesystemRequest& req, absl::Time deadline);
  absl::StatusOr<hv1::StatsResponse> Stats(const hv1::StatsRequest& req, absl::Time deadline);
  absl::StatusOr<hv1::InventoryResponse> Inventory(absl::Time deadline);
  // Host encryption; the passphrase travels in a csi_secret field (redacted in logs).
  absl::StatusOr<hv1::FormatEncryptedResponse> FormatEncrypted(
      const hv1::FormatEncryptedRequest& req, absl::Time deadline);
  absl::StatusOr<hv1::OpenEncryptedResponse> OpenEncrypted(const hv1::OpenEncryptedRequest& req,
                                                           absl::Time deadline);
  absl::StatusOr<hv1::CloseEncryptedResponse> CloseEncrypted(const hv1::CloseEncryptedRequest& req,
                                                             absl::Time deadline);

 private:
  template <typename Req, typename Resp>
  using Method = grpc::Status (hv1::NodeHelper::StubInterface::*)(grpc::ClientContext*, const Req&,
                                                                  Resp*);
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(Method<Req, Resp> method, std::string_view name, const Req& req,
                            absl::Time deadline);

  std::unique_ptr<hv1::NodeHelper::StubInterface> stub_;
  metrics::Registry* metrics_ = nullptr;
};

}  // namespace lbcsi::agent
