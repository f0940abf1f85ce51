#pragma once
// Fault injection for lightos-sim, configured per RPC from JSON:
//
// {
//   "rpcs": {
//     "CreateVolume": {"latency_ms": 200, "error": "UNAVAILABLE", "rate": 0.5,
//                      "message": "injected", "endpoints": [0]},
//     "GetVolume":    {"stall": true, "stall_ms": 0},
//     "*":            {"latency_ms": 10}
//   },
//   "fail_volume_names": ["broken-*"]
// }
//
// "*" applies to every RPC without its own entry. "rate" defaults to 1 when "error"
// is set. "stall" hangs the call until the client cancels or its deadline passes
// (or for stall_ms when > 0). "endpoints" restricts an entry to listener indexes.
// Volumes and snapshots whose name matches a fail_volume_names glob end in Failed.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

namespace lbcsi::sim {

struct RpcFault {
  int64_t latency_ms = 0;
  absl::StatusCode error = absl::StatusCode::kOk;
  double rate = 1.0;
  std::string message;
  bool stall = false;
  int64_t stall_ms = 0;
  std::vector<int> endpoints;  // empty: all endpoints

  bool AppliesTo(int endpoint) const;
};

struct FaultConfig {
  std::map<std::string, RpcFault> rpcs;
  std::vector<std::string> fail_volume_names;

  // The entry for `rpc` on `endpoint`: its own, else "*", else none.
  const RpcFault* Find(const std::string& rpc, int endpoint) const;
  bool ShouldFail(std::string_view name) const;
};

absl::StatusOr<FaultConfig> ParseFaultConfig(const std::string& json);
std::string FaultConfigToJson(const FaultConfig& config);

// "UNAVAILABLE", "unavailable" or a number.
absl::StatusOr<absl::StatusCode> ParseStatusCode(const std::string& name);

}  // namespace lbcsi::sim
