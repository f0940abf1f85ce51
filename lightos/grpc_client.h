#pragma once
// Client (lightos/client.h) over the DurosAPI gRPC service of a real LightOS
// cluster or lightos-sim. Every call carries `authorization: Bearer <jwt>` as
// call metadata (call credentials are refused on plaintext channels), runs
// with endpoint failover inside the caller's deadline, and maps errors to the
// codes CSI expects with messages naming the endpoint and the object:
//   "LightOS 10.0.0.1:443: GetVolume 6bb3...: not found"
//
// Usage without pooling:
//   ASSIGN_OR_RETURN(auto client, GrpcClient::Create(target, {.token_file = "/etc/lb-csi/jwt"},
//                                                    {.connection = {.tls = tls}}));
// With pooling (the usual way): see lightos/client_pool.h.

#include <memory>
#include <string>
#include <string_view>

#include "lightos/client.h"
#include "lightos/connection.h"
#include "lightos/token.h"
#include "lightos/wire.h"

namespace lbcsi::lightos {

struct GrpcClientOptions {
  ConnectionOptions connection;
  // Backoff while waiting for a state to settle (LightOS's own client: 250 ms, x2, 2 s cap).
  absl::Duration poll_initial = absl::Milliseconds(250);
  absl::Duration poll_max = absl::Seconds(2);
  double poll_multiplier = 2.0;
  // First pause after a stale ETag (doubles, with jitter, up to poll_max).
  absl::Duration etag_retry_initial = absl::Milliseconds(20);
};

class GrpcClient : public Client {
 public:
  // A client with its own, unshared connection.
  static absl::StatusOr<std::shared_ptr<GrpcClient>> Create(const ClusterTarget& target,
                                                            const TokenSource& token,
                                                            const GrpcClientOptions& options = {});

  // A client over a shared connection (what the pool hands out).
  GrpcClient(std::shared_ptr<Connection> connection, std::string project,
             std::shared_ptr<TokenProvider> token, GrpcClientOptions options);

  absl::Status CheckVersion(const CallOptions& opts) override;
  absl::StatusOr<ClusterInfo> GetClusterInfo(const CallOptions& opts) override;

  absl::StatusOr<Volume> CreateVolume(const CreateVolumeSpec& spec,
                                      const CallOptions& opts) override;
  absl::StatusOr<Volume> GetVolume(const std::string& uuid, const CallOptions& opts) override;
  absl::StatusOr<Volume> GetVolumeByName(const std::string& name, const CallOptions& opts) override;
  absl::Status DeleteVolume(const std::string& uuid, const CallOptions& opts) override;
  absl::StatusOr<std::vector<Volume>> ListVolumes(const Page& page,
                                                  const CallOptions& opts) override;

  absl::StatusOr<Volume> UpdateVolumeAccess(const std::string& uuid, const AccessMutator& mutate,
                                            const CallOptions& opts) override;
  absl::StatusOr<Volume> ResizeVolume(const std::string& uuid, uint64_t size_bytes,
                                      const CallOptions& opts) override;
  absl::StatusOr<Volume> SetQosPolicy(const std::string& uuid, const std::string& policy_name,
                                      const CallOptions& opts) override;

  absl::StatusOr<Snapshot> CreateSnapshot(const std::string& name,
                                          const std::string& source_volume_uuid,
                                          const CallOptions& opts) override;
  absl::StatusOr<Snapshot> GetSnapshot(const std::string& uuid, const CallOptions& opts) override;
  absl::StatusOr<Snapshot> GetSnapshotByName(const std::string& name,
                                             const CallOptions& opts) override;
  absl::Status DeleteSnapshot(const std::string& uuid, const CallOptions& opts) override;
  absl::StatusOr<std::vector<Snapshot>> ListSnapshots(const Page& page,
                                                      const std::string& source_volume_uuid,
                                                      const CallOptions& opts) override;

  const std::shared_ptr<Connection>& connection() const { return connection_; }

 private:
  template <typename Req, typename Resp>
  using Method = grpc::Status (DurosStub::*)(grpc::ClientContext*, const Req&, Resp*);

  // One RPC with failover; errors come back mapped and named:
  // "LightOS <endpoint>: <rpc> <object>: <what>".
  template <typename Req, typename Resp>
  absl::Status Rpc(std::string_view rpc, std::string_view object, Method<Req, Resp> method,
                   const Req& request, Resp* response, absl::Time deadline,
                   std::string_view if_match = {});

  absl::StatusOr<pb::Volume> ReadVolume(const std::string& uuid, absl::Time deadline);
  absl::StatusOr<pb::Snapshot> ReadSnapshot(const std::string& uuid, absl::Time deadline);
  // Polls until the volume is usable (Available/Updating/Migrating); INTERNAL on Failed.
  absl::StatusOr<Volume> AwaitVolumeReady(pb::Volume volume, absl::Time deadline);
  absl::StatusOr<Snapshot> AwaitSnapshotReady(pb::Snapshot snapshot, absl::Time deadline);
  // Read-modify-write with if-match; `mutate` returns false to leave the volume as it is.
  absl::StatusOr<Volume> UpdateWithEtag(
      const std::string& uuid, std::string_view what,
      const std::function<bool(const pb::Volume&, pb::UpdateVolumeRequest&)>& mutate,
      absl::Time deadline);
  // Sleeps for `*delay` (never past the deadline) and grows it; false when the deadline hit.
  bool Backoff(absl::Duration* delay, absl::Time deadline) const;
  absl::Status Timeout(std::string_view what, std::string_view object) const;

  std::shared_ptr<Connection> connection_;
  std::string project_;
  std::shared_ptr<TokenProvider> token_;
  GrpcClientOptions options_;
};

}  // namespace lbcsi::lightos
