#pragma once
// Hands out GrpcClients that share one Connection per (endpoints, scheme, TLS
// settings). Connections nobody used for `idle_timeout` have their channels
// closed (sockets released); a background janitor sweeps, and so does every
// GetClient() call. Token files are shared per path so a rotation is noticed once.
//
//   PooledClientFactory factory({.client = {.connection = {.tls = {.ca_bundle_file = ca}}}});
//   ASSIGN_OR_RETURN(auto client, factory.GetClient(target, {.inline_token = secrets["jwt"]}));

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "lightos/client.h"
#include "lightos/grpc_client.h"

namespace lbcsi::lightos {

struct PoolOptions {
  GrpcClientOptions client;  // the TLS options here apply unless GetClient is given others
  absl::Duration idle_timeout = absl::Minutes(5);
  bool start_janitor = true;  // sweep every min(idle_timeout / 2, 30 s) in a thread
  // Clusters are named by requests, so the pool is bounded: at this many
  // entries, a new one first drops every entry no caller holds; when all are
  // in use, GetClient is UNAVAILABLE (retry) instead of growing.
  size_t max_connections = 64;
};

class PooledClientFactory : public ClientFactory {
 public:
  explicit PooledClientFactory(PoolOptions options = {});
  ~PooledClientFactory() override;
  PooledClientFactory(const PooledClientFactory&) = delete;
  PooledClientFactory& operator=(const PooledClientFactory&) = delete;

  absl::StatusOr<std::shared_ptr<Client>> GetClient(const ClusterTarget& target,
                                                    const TokenSource& token) override;
  // Same, with TLS settings other than the factory's (e.g. a per-StorageClass CA).
  absl::StatusOr<std::shared_ptr<Client>> GetClient(const ClusterTarget& target,
                                                    const TokenSource& token,
                                                    const TlsOptions& tls);

  // Closes idle channels and forgets unreferenced idle connections now.
  void SweepIdle();
  size_t ConnectionCount() const;   // pool entries
  size_t OpenChannelCount() const;  // live channels across entries

 private:
  void JanitorLoop();

  const PoolOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Connection>> connections_;     // guarded by mu_
  std::map<std::string, std::shared_ptr<TokenProvider>> token_files_;  // guarded by mu_
  absl::Time last_sweep_;                                              // guarded by mu_
  bool stopping_ = false;                                              // guarded by mu_
  std::condition_variable cv_;
  std::thread janitor_;
};

}  // namespace lbcsi::lightos
