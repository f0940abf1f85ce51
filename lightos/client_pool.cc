#include "lightos/client_pool.h"

#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::lightos {
namespace {

std::string PoolKey(const ClusterTarget& target, const TlsOptions& tls) {
  std::string key = Cat(JoinEndpoints(target.endpoints), "|", MgmtSchemeName(target.scheme));
  if (target.scheme == MgmtScheme::kGrpcs) {
    key += Cat("|ca=", tls.ca_bundle_file, "|sni=", tls.server_name_override,
               "|skip=", tls.insecure_skip_verify ? 1 : 0);
  }
  return key;
}

}  // namespace

PooledClientFactory::PooledClientFactory(PoolOptions options)
    : options_(std::move(options)), last_sweep_(absl::Now()) {
  if (options_.start_janitor) janitor_ = std::thread([this] { JanitorLoop(); });
}

PooledClientFactory::~PooledClientFactory() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (janitor_.joinable()) janitor_.join();
}

absl::StatusOr<std::shared_ptr<Client>> PooledClientFactory::GetClient(const ClusterTarget& target,
                                                                       const TokenSource& token) {
  return GetClient(target, token, options_.client.connection.tls);
}

absl::StatusOr<std::shared_ptr<Client>> PooledClientFactory::GetClient(const ClusterTarget& target,
                                                                       const TokenSource& token,
                                                                       const TlsOptions& tls) {
  bool sweep_due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sweep_due = absl::Now() - last_sweep_ >= options_.idle_timeout / 2;
  }
  if (sweep_due) SweepIdle();

  std::shared_ptr<TokenProvider> provider;
  std::shared_ptr<Connection> connection;
  const std::string key = PoolKey(target, tls);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (token.inline_token.empty() && !token.token_file.empty()) {
      auto& slot = token_files_[token.token_file];
      if (!slot) {
        ASSIGN_OR_RETURN(slot, TokenProvider::Create(token));
      }
      provider = slot;
    }
    if (!connections_.contains(key) && connections_.size() >= options_.max_connections) {
      for (auto it = connections_.begin(); it != connections_.end();) {
        it = it->second.use_count() == 1 ? connections_.erase(it) : std::next(it);
      }
      if (connections_.size() >= options_.max_connections) {
        return absl::UnavailableError(
            Cat("all ", options_.max_connections, " LightOS connections are in use; retry later"));
      }
    }
    auto& entry = connections_[key];
    if (!entry) {
      ConnectionOptions conn_options = options_.client.connection;
      conn_options.tls = tls;
      auto created = Connection::Create(target.endpoints, target.scheme, conn_options);
      if (!created.ok()) {
        connections_.erase(key);
        return created.status();
      }
      entry = *std::move(created);
    }
    connection = entry;
  }
  if (!provider) {
    ASSIGN_OR_RETURN(provider, TokenProvider::Create(token));
  }
  return std::shared_ptr<Client>(std::make_shared<GrpcClient>(
      std::move(connection), target.project, std::move(provider), options_.client));
}

void PooledClientFactory::SweepIdle() {
  std::lock_guard<std::mutex> lock(mu_);
  const absl::Time now = absl::Now();
  last_sweep_ = now;
  for (auto it = connections_.begin(); it != connections_.end();) {
    auto& connection = it->second;
    connection->CloseIfIdle(now, options_.idle_timeout);
    // Nobody outside holds it and it has been idle: drop the entry too.
    if (connection.use_count() == 1 && connection->OpenChannels() == 0) {
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

size_t PooledClientFactory::ConnectionCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_.size();
}

size_t PooledClientFactory::OpenChannelCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t count = 0;
  for (const auto& [key, connection] : connections_) count += connection->OpenChannels();
  return count;
}

void PooledClientFactory::JanitorLoop() {
  const absl::Duration period = std::min(options_.idle_timeout / 2, absl::Seconds(30));
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, absl::ToChronoNanoseconds(period));
    if (stopping_) break;
    lock.unlock();
    SweepIdle();
    lock.lock();
  }
}

}  // namespace lbcsi::lightos
