#pragma once
// CSI endpoints are unix sockets: "unix:///csi/csi.sock" or "unix:/csi/csi.sock".

#include <string>
#include <string_view>

#include <absl/status/statusor.h>

namespace lbcsi {

// Returns the absolute socket path. INVALID_ARGUMENT for other schemes,
// relative paths, or paths longer than sun_path allows.
absl::StatusOr<std::string> ParseUnixEndpoint(std::string_view endpoint);

// The form gRPC's client and server accept: "unix:" + absolute path.
std::string GrpcUnixTarget(std::string_view socket_path);

}  // namespace lbcsi
