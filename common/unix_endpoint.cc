#include "common/unix_endpoint.h"

#include <sys/un.h>
#include "common/strings.h"

namespace lbcsi {

absl::StatusOr<std::string> ParseUnixEndpoint(std::string_view endpoint) {
  std::string_view path;
  if (endpoint.starts_with("unix://")) {
    path = endpoint.substr(7);
  } else if (endpoint.starts_with("unix:")) {
    path = endpoint.substr(5);
  } else if (endpoint.starts_with("/")) {
    path = endpoint;  // a bare absolute path is accepted as a convenience
  } else {
    return absl::InvalidArgumentError(
        Cat("endpoint \"", endpoint, "\" is not a unix socket (want unix:///path)"));
  }
  if (path.empty() || path.front() != '/') {
    return absl::InvalidArgumentError(
        Cat("endpoint \"", endpoint, "\" must name an absolute socket path"));
  }
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::InvalidArgumentError(Cat("socket path \"", path, "\" is longer than ",
                                          sizeof(sockaddr_un{}.sun_path) - 1, " bytes"));
  }
  if (path.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("socket path contains a NUL byte");
  }
  return std::string(path);
}

std::string GrpcUnixTarget(std::string_view socket_path) {
  return Cat("unix:", socket_path);
}

}  // namespace lbcsi
