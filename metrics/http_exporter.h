#pragma once
// Serves a Registry at GET /metrics over plain HTTP (cpp-httplib), on its own thread.

#include <memory>
#include <string>
#include <thread>

#include <absl/status/statusor.h>

#include "metrics/registry.h"

namespace httplib {
class Server;
}

namespace lbcsi::metrics {

class HttpExporter {
 public:
  // `address` is "host:port"; port 0 picks a free port (see port()).
  static absl::StatusOr<std::unique_ptr<HttpExporter>> Start(Registry& registry,
                                                             const std::string& address);
  ~HttpExporter();
  int port() const { return port_; }

 private:
  HttpExporter() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace lbcsi::metrics
