#pragma once
// The gRPC channels to one LightOS cluster: one per management endpoint,
// created lazily, shared by every client of that cluster. Call() runs an RPC
// on the last endpoint that answered, and fails over to the next on
// UNAVAILABLE or a failed connection, always within the caller's deadline.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <absl/status/statusor.h>
#include <absl/time/time.h>
#include <grpcpp/grpcpp.h>

#include "lightbits/api/duros/v2/durosapi.grpc.pb.h"
#include "lightos/client.h"

namespace lbcsi::lightos {

using DurosStub = ::lightbits::api::duros::v2::DurosAPI::Stub;

struct ConnectionOptions {
  TlsOptions tls;  // ignored for the plaintext `grpc` scheme
  // Longest wait for a TCP+TLS connection to one endpoint before trying the
  // next (a black-holed server would otherwise eat the whole deadline).
  absl::Duration connect_timeout = absl::Seconds(5);
  // An endpoint whose last connection failed is given this long to come back
  // before the next one is tried.
  absl::Duration failed_endpoint_grace = absl::Milliseconds(200);
};

class Connection {
 public:
  // Validates the options and reads the CA bundle; no network traffic yet.
  static absl::StatusOr<std::shared_ptr<Connection>> Create(std::vector<HostPort> endpoints,
                                                            MgmtScheme scheme,
                                                            const ConnectionOptions& options);
  ~Connection();

  // One attempt: issue the RPC with `ctx` (deadline and metadata already set).
  using Attempt = std::function<grpc::Status(DurosStub& stub, grpc::ClientContext& ctx)>;
  struct Outcome {
    grpc::Status status;
    std::string endpoint;  // where the final attempt went ("a:1,b:2" when none answered)
  };
  // `metadata` is added to every attempt's context.
  Outcome Call(absl::Time deadline,
               const std::vector<std::pair<std::string, std::string>>& metadata,
               const Attempt& attempt);

  // Drops the channels (closing their sockets) when nothing used them for
  // `idle` and no call is in flight; the next call reconnects. True if closed.
  bool CloseIfIdle(absl::Time now, absl::Duration idle);
  size_t OpenChannels() const;
  absl::Time LastUsed() const;
  std::string LastGoodEndpoint() const;
  std::string EndpointList() const;

 private:
  struct Endpoint {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<DurosStub> stub;
  };

  Connection(std::vector<HostPort> endpoints, MgmtScheme scheme, ConnectionOptions options,
             std::string ca_pem);
  std::shared_ptr<Endpoint> GetEndpoint(size_t index);
  // False when the endpoint could not be connected to before `until`.
  bool WaitConnected(grpc::Channel& channel, absl::Time until);

  const std::vector<HostPort> endpoints_;
  const MgmtScheme scheme_;
  const ConnectionOptions options_;
  const std::string ca_pem_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;

  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Endpoint>> channels_;  // guarded by mu_; null when closed
  absl::Time last_used_;                             // guarded by mu_
  std::atomic<size_t> last_good_{0};
  std::atomic<int> in_flight_{0};
};

}  // namespace lbcsi::lightos
