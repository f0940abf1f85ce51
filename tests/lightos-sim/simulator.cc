#include "tests/lightos-sim/simulator.h"

#include <unistd.h>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::sim {
namespace {

// Splits "host:port" (host may be "[v6]").
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& hp) {
  size_t colon = hp.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(Cat("'", hp, "' is not host:port"));
  }
  std::string port = hp.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return absl::InvalidArgumentError(Cat("'", hp, "' has a bad port"));
  }
  int p = std::stoi(port);
  if (p > 65535) return absl::InvalidArgumentError(Cat("'", hp, "' has a bad port"));
  return std::make_pair(hp.substr(0, colon), p);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Simulator>> Simulator::Start(SimulatorOptions options) {
  if (options.tokens.empty()) return absl::InvalidArgumentError("at least one JWT is required");
  if (options.listen.empty())
    return absl::InvalidArgumentError("at least one --listen is required");
  if (options.tls_cert_pem.empty() != options.tls_key_pem.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate and a key");
  }
  std::unique_ptr<Simulator> sim(new Simulator());
  sim->opts_ = std::move(options);
  ASSIGN_OR_RETURN(sim->cluster_, Cluster::Open(sim->opts_.cluster));
  sim->shared_ = std::make_unique<SharedState>(sim->cluster_.get(), sim->opts_.tokens);
  sim->shared_->SetFaults(sim->opts_.faults);
  {
    std::lock_guard lock(sim->mu_);
    for (const auto& l : sim->opts_.listen) {
      RETURN_IF_ERROR(SplitHostPort(l).status());
      sim->endpoints_.push_back(Endpoint{l, l, nullptr, nullptr});
    }
    for (size_t i = 0; i < sim->endpoints_.size(); ++i) {
      RETURN_IF_ERROR(sim->StartEndpointLocked(i));
    }
  }
  sim->cluster_->SetApiEndpoints(sim->endpoints());
  if (!sim->opts_.control_listen.empty())
    RETURN_IF_ERROR(sim->StartControl(sim->opts_.control_listen));
  Simulator* raw = sim.get();
  sim->ticker_ = std::thread([raw] {
    std::unique_lock lock(raw->tick_mu_);
    while (!raw->tick_cv_.wait_for(lock, std::chrono::milliseconds(50),
                                   [raw] { return raw->done_; })) {
      raw->cluster_->Tick();
    }
  });
  return sim;
}

Simulator::~Simulator() {
  Shutdown();
}

absl::Status Simulator::StartEndpointLocked(size_t index) {
  Endpoint& ep = endpoints_[index];
  if (ep.server) return absl::OkStatus();
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (opts_.tls_cert_pem.empty()) {
    creds = grpc::InsecureServerCredentials();
  } else {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({opts_.tls_key_pem, opts_.tls_cert_pem});
    creds = grpc::SslServerCredentials(ssl);
  }
  auto service = std::make_unique<DurosService>(shared_.get(), static_cast<int>(index));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(ep.address, creds, &port);
  builder.RegisterService(service.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    return absl::UnavailableError(Cat("cannot listen on ", ep.address));
  }
  ASSIGN_OR_RETURN(auto hp, SplitHostPort(ep.address));
  ep.address = Cat(hp.first, ":", port);  // later restarts rebind this same port
  ep.service = std::move(service);
  ep.server = std::move(server);
  LOG(kInfo, "endpoint serving", {"index", index}, {"address", ep.address},
      {"tls", !opts_.tls_cert_pem.empty()});
  return absl::OkStatus();
}

std::vector<std::string> Simulator::endpoints() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& ep : endpoints_) out.push_back(ep.address);
  return out;
}

bool Simulator::serving(size_t index) const {
  std::lock_guard lock(mu_);
  return index < endpoints_.size() && endpoints_[index].server != nullptr;
}

absl::Status Simulator::StartEndpoint(size_t index) {
  std::lock_guard lock(mu_);
  if (index >= endpoints_.size()) return absl::NotFoundError(Cat("no endpoint ", index));
  return StartEndpointLocked(index);
}

absl::Status Simulator::StopEndpoint(size_t index) {
  std::unique_ptr<grpc::Server> server;
  {
    std::lock_guard lock(mu_);
    if (index >= endpoints_.size()) return absl::NotFoundError(Cat("no endpoint ", index));
    server = std::move(endpoints_[index].server);
  }
  if (server) {
    // A short grace, then calls in flight (stalled ones too) are cancelled.
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    server->Wait();
    LOG(kInfo, "endpoint stopped", {"index", index});
  }
  return absl::OkStatus();
}

void Simulator::SetFaults(FaultConfig faults) {
  shared_->SetFaults(std::move(faults));
}

std::string Simulator::ReadyJson() const {
  nlohmann::json doc;
  doc["endpoints"] = endpoints();
  doc["pid"] = static_cast<int>(getpid());
  doc["control"] = control_address_;
  doc["tls"] = !opts_.tls_cert_pem.empty();
  return doc.dump();
}

absl::Status Simulator::StartControl(const std::string& listen) {
  ASSIGN_OR_RETURN(auto hp, SplitHostPort(listen));
  control_ = std::make_unique<httplib::Server>();
  httplib::Server& srv = *control_;
  // The control endpoint wants the same bearer token as the gRPC API.
  srv.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (shared_->Authorized(req.get_header_value("Authorization"))) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    res.status = 401;
    res.set_content("{\"error\":\"unauthenticated\"}", "application/json");
    return httplib::Server::HandlerResponse::Handled;
  });
  auto reply = [](httplib::Response& res, const absl::Status& st, const std::string& body) {
    if (st.ok()) {
      res.set_content(body, "application/json");
    } else {
      res.status = st.code() == absl::StatusCode::kNotFound ? 404 : 400;
      res.set_content(nlohmann::json{{"error", std::string(StdView(st.message()))}}.dump(),
                      "application/json");
    }
  };
  auto list = [this]() {
    nlohmann::json doc = nlohmann::json::array();
    auto eps = endpoints();
    for (size_t i = 0; i < eps.size(); ++i) {
      doc.push_back({{"index", i}, {"address", eps[i]}, {"serving", serving(i)}});
    }
    return nlohmann::json{{"endpoints", doc}}.dump();
  };
  srv.Get("/v1/endpoints", [list, reply](const httplib::Request&, httplib::Response& res) {
    reply(res, absl::OkStatus(), list());
  });
  srv.Post(R"(/v1/endpoints/(\d+)/(stop|start))", [this, list, reply](const httplib::Request& req,
                                                                      httplib::Response& res) {
    size_t index = std::stoul(req.matches[1]);
    absl::Status st = req.matches[2] == "stop" ? StopEndpoint(index) : StartEndpoint(index);
    reply(res, st, list());
  });
  srv.Get("/v1/faults", [this, reply](const httplib::Request&, httplib::Response& res) {
    reply(res, absl::OkStatus(), FaultConfigToJson(*faults()));
  });
  srv.Put("/v1/faults", [this, reply](const httplib::Request& req, httplib::Response& res) {
    auto parsed = ParseFaultConfig(req.body);
    if (parsed.ok()) {
      SetFaults(*parsed);
      LOG(kInfo, "faults replaced via control endpoint");
    }
    reply(res, parsed.status(), parsed.ok() ? FaultConfigToJson(*parsed) : "");
  });
  srv.Post(R"(/v1/volumes/([0-9a-fA-F-]+)/fail)",
           [this, reply](const httplib::Request& req, httplib::Response& res) {
             reply(res, cluster_->FailVolume(req.matches[1]), "{}");
           });
  int port = hp.second;
  if (port == 0) {
    port = srv.bind_to_any_port(hp.first);
    if (port < 0) port = 0;
  } else if (!srv.bind_to_port(hp.first, port)) {
    port = 0;
  }
  if (port == 0) return absl::UnavailableError(Cat("control endpoint cannot listen on ", listen));
  control_address_ = Cat(hp.first, ":", port);
  control_thread_ = std::thread([this] { control_->listen_after_bind(); });
  LOG(kInfo, "control endpoint serving", {"address", control_address_});
  return absl::OkStatus();
}

void Simulator::Shutdown() {
  {
    std::lock_guard lock(tick_mu_);
    if (done_) return;
    done_ = true;
  }
  tick_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  if (shared_) shared_->stopping = true;
  if (control_) {
    control_->stop();
    if (control_thread_.joinable()) control_thread_.join();
  }
  for (size_t i = 0; i < endpoints_.size(); ++i) (void)StopEndpoint(i);
}

}  // namespace lbcsi::sim
