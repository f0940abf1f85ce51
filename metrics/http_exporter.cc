#include "metrics/http_exporter.h"

#include <charconv>

#include <httplib.h>

#include "common/strings.h"
#include "volumeid/endpoints.h"

namespace lbcsi::metrics {

absl::StatusOr<std::unique_ptr<HttpExporter>> HttpExporter::Start(Registry& registry,
                                                                  const std::string& address) {
  absl::StatusOr<HostPort> hp = [&]() -> absl::StatusOr<HostPort> {
    // ParseHostPort refuses port 0, which we allow here ("pick one").
    if (address.ends_with(":0")) {
      HostPort out;
      out.host = address.substr(0, address.size() - 2);
      if (out.host.size() > 2 && out.host.front() == '[')
        out.host = out.host.substr(1, out.host.size() - 2);
      if (out.host.empty()) return absl::InvalidArgumentError("metrics address has no host");
      return out;
    }
    return ParseHostPort(address);
  }();
  if (!hp.ok()) {
    return absl::InvalidArgumentError(
        Cat("metrics address \"", address, "\": ", hp.status().message()));
  }
  std::unique_ptr<HttpExporter> exporter(new HttpExporter());
  exporter->server_ = std::make_unique<httplib::Server>();
  exporter->server_->Get("/metrics", [&registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry.RenderText(), "text/plain; version=0.0.4; charset=utf-8");
  });
  int port = hp->port;
  if (port == 0) {
    port = exporter->server_->bind_to_any_port(hp->host);
    if (port <= 0) return absl::UnavailableError(Cat("cannot bind metrics on ", address));
  } else if (!exporter->server_->bind_to_port(hp->host, port)) {
    return absl::UnavailableError(Cat("cannot bind metrics on ", address));
  }
  exporter->port_ = port;
  httplib::Server* server = exporter->server_.get();
  exporter->thread_ = std::thread([server] { server->listen_after_bind(); });
  return exporter;
}

HttpExporter::~HttpExporter() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace lbcsi::metrics
