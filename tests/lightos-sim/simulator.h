#pragma once
// A running lightos-sim: one cluster served on N gRPC endpoints, each of which can be
// stopped and restarted at runtime (for failover tests), plus an optional HTTP control
// endpoint (see README.md). Used by the lightos-sim binary and, in-process, by tests.

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <grpcpp/server.h>

#include "tests/lightos-sim/cluster.h"
#include "tests/lightos-sim/faults.h"
#include "tests/lightos-sim/service.h"

namespace httplib {
class Server;
}

namespace lbcsi::sim {

struct SimulatorOptions {
  ClusterOptions cluster;
  std::vector<std::string> listen = {"127.0.0.1:0"};  // host:port; port 0 picks one
  std::vector<std::string> tokens;                    // accepted JWTs (at least one)
  std::string tls_cert_pem;                           // both empty: plaintext
  std::string tls_key_pem;
  FaultConfig faults;
  std::string control_listen;  // host:port of the HTTP control endpoint; empty: none
};

class Simulator {
 public:
  static absl::StatusOr<std::unique_ptr<Simulator>> Start(SimulatorOptions options);
  ~Simulator();

  // Bound "host:port" of every endpoint, in --listen order (stable across restarts).
  std::vector<std::string> endpoints() const;
  bool serving(size_t index) const;
  // Stop cancels calls in flight (clients see UNAVAILABLE/CANCELLED); start rebinds
  // the same address.
  absl::Status StopEndpoint(size_t index);
  absl::Status StartEndpoint(size_t index);

  void SetFaults(FaultConfig faults);
  std::shared_ptr<const FaultConfig> faults() const { return shared_->faults(); }
  Cluster* cluster() const { return cluster_.get(); }
  const std::string& control_address() const { return control_address_; }
  // {"endpoints": [...], "pid": N, "control": "host:port"}
  std::string ReadyJson() const;

  void Shutdown();

 private:
  struct Endpoint {
    std::string requested;
    std::string address;  // resolved after the first bind
    std::unique_ptr<DurosService> service;
    std::unique_ptr<grpc::Server> server;
  };
  Simulator() = default;
  absl::Status StartEndpointLocked(size_t index);
  absl::Status StartControl(const std::string& listen);

  SimulatorOptions opts_;
  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<SharedState> shared_;
  mutable std::mutex mu_;
  std::vector<Endpoint> endpoints_;
  std::string control_address_;
  std::unique_ptr<httplib::Server> control_;
  std::thread control_thread_;
  std::thread ticker_;
  std::mutex tick_mu_;
  std::condition_variable tick_cv_;
  bool done_ = false;
};

}  // namespace lbcsi::sim
