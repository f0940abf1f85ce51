#include "lightos/connection.h"

#include <fstream>
#include <sstream>

#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "common/logging.h"
#include "common/status.h"
#include "common/strings.h"
#include "volumeid/resource_id.h"

namespace lbcsi::lightos {
namespace {

// Debian's bundle of the system's trusted roots.
constexpr char kSystemRoots[] = "/etc/ssl/certs/ca-certificates.crt";

std::string ToStd(grpc::string_ref s) {
  return std::string(s.data(), s.size());
}

// Accepts any server certificate, loudly: installed only when the operator set
// insecure_skip_verify (clusters with self-signed certificates).
class UnverifiedWarningVerifier : public grpc::experimental::ExternalCertificateVerifier {
 public:
  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/, grpc::Status* sync_status) override {
    LOG(kWarn, "LightOS server certificate NOT verified (insecure_skip_verify is set)",
        {"target", ToStd(request->target_name())}, {"subject_cn", ToStd(request->common_name())});
    *sync_status = grpc::Status::OK;
    return true;  // decided synchronously
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest* /*request*/) override {}
};

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::FailedPreconditionError(Cat("cannot read LightOS CA bundle ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Expired(absl::Time deadline) {
  return absl::Now() >= deadline;
}

}  // namespace

absl::StatusOr<std::shared_ptr<Connection>> Connection::Create(std::vector<HostPort> endpoints,
                                                               MgmtScheme scheme,
                                                               const ConnectionOptions& options) {
  if (endpoints.empty()) return absl::InvalidArgumentError("no LightOS management endpoints");
  std::string ca_pem;
  if (scheme == MgmtScheme::kGrpcs && !options.tls.insecure_skip_verify) {
    if (!options.tls.ca_bundle_file.empty()) {
      ASSIGN_OR_RETURN(ca_pem, ReadFile(options.tls.ca_bundle_file));
      if (!Contains(ca_pem, "-----BEGIN CERTIFICATE-----")) {
        return absl::FailedPreconditionError(
            Cat("LightOS CA bundle ", options.tls.ca_bundle_file, " holds no PEM certificate"));
      }
    } else if (auto roots = ReadFile(kSystemRoots); roots.ok()) {
      ca_pem = *std::move(roots);
    }  // else: gRPC's own default roots
  }
  return std::shared_ptr<Connection>(
      new Connection(std::move(endpoints), scheme, options, std::move(ca_pem)));
}

Connection::Connection(std::vector<HostPort> endpoints, MgmtScheme scheme,
                       ConnectionOptions options, std::string ca_pem)
    : endpoints_(std::move(endpoints)),
      scheme_(scheme),
      options_(std::move(options)),
      ca_pem_(std::move(ca_pem)),
      channels_(endpoints_.size()),
      last_used_(absl::Now()) {
  if (scheme_ == MgmtScheme::kGrpc) {
    credentials_ = grpc::InsecureChannelCredentials();
  } else if (options_.tls.insecure_skip_verify) {
    LOG(kWarn, "LightOS TLS server verification is disabled (insecure_skip_verify)",
        {"endpoints", EndpointList()});
    grpc::experimental::TlsChannelCredentialsOptions tls;
    tls.set_verify_server_certs(false);
    tls.set_check_call_host(false);
    tls.set_certificate_verifier(
        grpc::experimental::ExternalCertificateVerifier::Create<UnverifiedWarningVerifier>());
    credentials_ = grpc::experimental::TlsCredentials(tls);
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ca_pem_;
    credentials_ = grpc::SslCredentials(ssl);
  }
}

Connection::~Connection() = default;

std::string Connection::EndpointList() const {
  return JoinEndpoints(endpoints_);
}

std::string Connection::LastGoodEndpoint() const {
  return endpoints_[last_good_.load() % endpoints_.size()].ToString();
}

std::shared_ptr<Connection::Endpoint> Connection::GetEndpoint(size_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = channels_[index];
  if (slot) return slot;
  grpc::ChannelArguments args;
  // Own sockets per channel, so that closing an idle pool entry really closes them.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  // Despite its name this is gRPC's per-attempt connect timeout; too small and
  // a slow first TLS handshake (loading root certificates) is cut off.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  if (scheme_ == MgmtScheme::kGrpcs && !options_.tls.server_name_override.empty()) {
    args.SetSslTargetNameOverride(options_.tls.server_name_override);
  }
  auto endpoint = std::make_shared<Endpoint>();
  endpoint->channel = grpc::CreateCustomChannel(endpoints_[index].ToString(), credentials_, args);
  endpoint->stub = ::lightbits::api::duros::v2::DurosAPI::NewStub(endpoint->channel);
  slot = endpoint;
  return slot;
}

bool Connection::WaitConnected(grpc::Channel& channel, absl::Time until) {
  grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
  if (state == GRPC_CHANNEL_READY) return true;
  if (state == GRPC_CHANNEL_TRANSIENT_FAILURE) {
    // The last attempt failed; retry now rather than after the backoff, but
    // give the endpoint only a short grace before moving on.
    grpc::experimental::ChannelResetConnectionBackoff(&channel);
    until = std::min(until, absl::Now() + options_.failed_endpoint_grace);
  }
  while (true) {
    if (!channel.WaitForStateChange(state, absl::ToChronoTime(until))) return false;
    state = channel.GetState(/*try_to_connect=*/true);
    if (state == GRPC_CHANNEL_READY) return true;
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) return false;
  }
}

Connection::Outcome Connection::Call(
    absl::Time deadline, const std::vector<std::pair<std::string, std::string>>& metadata,
    const Attempt& attempt) {
  in_flight_.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_used_ = absl::Now();
  }
  struct Done {
    Connection* self;
    ~Done() {
      {
        std::lock_guard<std::mutex> lock(self->mu_);
        self->last_used_ = absl::Now();
      }
      self->in_flight_.fetch_sub(1);
    }
  } done{this};

  const size_t n = endpoints_.size();
  const size_t start = last_good_.load() % n;
  std::vector<std::string> failures;
  grpc::StatusCode final_code = grpc::StatusCode::UNAVAILABLE;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (start + k) % n;
    const std::string name = endpoints_[i].ToString();
    if (Expired(deadline)) {
      final_code = grpc::StatusCode::DEADLINE_EXCEEDED;
      failures.push_back(Cat(name, ": not tried, deadline reached"));
      break;
    }
    auto endpoint = GetEndpoint(i);
    absl::Time connect_until = std::min(deadline, absl::Now() + options_.connect_timeout);
    if (!WaitConnected(*endpoint->channel, connect_until)) {
      if (Expired(deadline)) final_code = grpc::StatusCode::DEADLINE_EXCEEDED;
      failures.push_back(Cat(name, ": cannot connect"));
      continue;
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(deadline));
    for (const auto& [key, value] : metadata) ctx.AddMetadata(key, value);
    grpc::Status status = attempt(*endpoint->stub, ctx);
    // CANCELLED too: we never cancel our own calls, so a server going away did.
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        status.error_code() == grpc::StatusCode::CANCELLED) {
      final_code = grpc::StatusCode::UNAVAILABLE;
      failures.push_back(Cat(name, ": ", status.error_message()));
      continue;
    }
    if (status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) last_good_.store(i);
    return {status, name};
  }
  std::string message;
  for (const auto& f : failures) message += (message.empty() ? "" : "; ") + f;
  if (final_code == grpc::StatusCode::UNAVAILABLE) {
    message = Cat("no management endpoint answered (", message, ")");
  } else {
    message = Cat("deadline exceeded (", message, ")");
  }
  return {grpc::Status(final_code, message), EndpointList()};
}

bool Connection::CloseIfIdle(absl::Time now, absl::Duration idle) {
  std::lock_guard<std::mutex> lock(mu_);
  if (in_flight_.load() != 0 || now - last_used_ < idle) return false;
  bool closed = false;
  for (auto& slot : channels_) {
    if (slot) closed = true;
    slot.reset();  // a call still holding the Endpoint keeps it alive until it returns
  }
  return closed;
}

size_t Connection::OpenChannels() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t count = 0;
  for (const auto& slot : channels_) count += slot ? 1 : 0;
  return count;
}

absl::Time Connection::LastUsed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_used_;
}

}  // namespace lbcsi::lightos
