#pragma once
// Shared helpers for the LightOS client tests.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "lightos/grpc_client.h"

namespace lbcsi::lightos::testing {

inline HostPort Local(int port) {
  return HostPort{"127.0.0.1", static_cast<uint16_t>(port)};
}

inline ClusterTarget PlainTarget(std::vector<int> ports, std::string project = "default") {
  ClusterTarget target;
  for (int p : ports) target.endpoints.push_back(Local(p));
  target.scheme = MgmtScheme::kGrpc;
  target.project = std::move(project);
  return target;
}

// Waits are fast in tests; the shape (backoff, deadline) stays the same.
inline GrpcClientOptions FastOptions() {
  GrpcClientOptions o;
  o.poll_initial = absl::Milliseconds(5);
  o.poll_max = absl::Milliseconds(20);
  o.etag_retry_initial = absl::Milliseconds(1);
  o.connection.connect_timeout = absl::Seconds(2);
  return o;
}

// A port on 127.0.0.1 that nobody listens on (bound, then closed).
inline int RefusingPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline CallOptions Within(absl::Duration d) {
  return CallOptions{absl::Now() + d};
}

}  // namespace lbcsi::lightos::testing
