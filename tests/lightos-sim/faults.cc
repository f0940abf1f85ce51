#include "tests/lightos-sim/faults.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "tests/lightos-sim/rules.h"

namespace lbcsi::sim {
namespace {

constexpr std::pair<std::string_view, absl::StatusCode> kCodes[] = {
    {"OK", absl::StatusCode::kOk},
    {"CANCELLED", absl::StatusCode::kCancelled},
    {"UNKNOWN", absl::StatusCode::kUnknown},
    {"INVALID_ARGUMENT", absl::StatusCode::kInvalidArgument},
    {"DEADLINE_EXCEEDED", absl::StatusCode::kDeadlineExceeded},
    {"NOT_FOUND", absl::StatusCode::kNotFound},
    {"ALREADY_EXISTS", absl::StatusCode::kAlreadyExists},
    {"PERMISSION_DENIED", absl::StatusCode::kPermissionDenied},
    {"RESOURCE_EXHAUSTED", absl::StatusCode::kResourceExhausted},
    {"FAILED_PRECONDITION", absl::StatusCode::kFailedPrecondition},
    {"ABORTED", absl::StatusCode::kAborted},
    {"OUT_OF_RANGE", absl::StatusCode::kOutOfRange},
    {"UNIMPLEMENTED", absl::StatusCode::kUnimplemented},
    {"INTERNAL", absl::StatusCode::kInternal},
    {"UNAVAILABLE", absl::StatusCode::kUnavailable},
    {"DATA_LOSS", absl::StatusCode::kDataLoss},
    {"UNAUTHENTICATED", absl::StatusCode::kUnauthenticated},
};

std::string CodeName(absl::StatusCode code) {
  for (const auto& [name, c] : kCodes) {
    if (c == code) return std::string(name);
  }
  return Cat(static_cast<int>(code));
}

}  // namespace

bool RpcFault::AppliesTo(int endpoint) const {
  return endpoints.empty() ||
         std::find(endpoints.begin(), endpoints.end(), endpoint) != endpoints.end();
}

const RpcFault* FaultConfig::Find(const std::string& rpc, int endpoint) const {
  if (auto it = rpcs.find(rpc); it != rpcs.end()) {
    return it->second.AppliesTo(endpoint) ? &it->second : nullptr;
  }
  if (auto it = rpcs.find("*"); it != rpcs.end() && it->second.AppliesTo(endpoint)) {
    return &it->second;
  }
  return nullptr;
}

bool FaultConfig::ShouldFail(std::string_view name) const {
  return std::any_of(fail_volume_names.begin(), fail_volume_names.end(),
                     [&](const std::string& p) { return GlobMatch(p, name); });
}

absl::StatusOr<absl::StatusCode> ParseStatusCode(const std::string& name) {
  std::string upper = name;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  for (const auto& [n, c] : kCodes) {
    if (upper == n) return c;
  }
  if (!name.empty() && std::all_of(name.begin(), name.end(), ::isdigit)) {
    int v = std::stoi(name);
    if (v >= 0 && v <= 16) return static_cast<absl::StatusCode>(v);
  }
  return absl::InvalidArgumentError(Cat("unknown status code '", name, "'"));
}

absl::StatusOr<FaultConfig> ParseFaultConfig(const std::string& json) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("faults: not a JSON object");
  }
  FaultConfig config;
  try {
    if (doc.contains("rpcs")) {
      for (const auto& [rpc, spec] : doc.at("rpcs").items()) {
        if (!spec.is_object())
          return absl::InvalidArgumentError(Cat("faults: ", rpc, " not an object"));
        RpcFault f;
        for (const auto& [key, value] : spec.items()) {
          if (key == "latency_ms") {
            f.latency_ms = value.get<int64_t>();
          } else if (key == "error") {
            auto code = value.is_number() ? ParseStatusCode(Cat(value.get<int>()))
                                          : ParseStatusCode(value.get<std::string>());
            if (!code.ok()) return code.status();
            f.error = *code;
          } else if (key == "rate") {
            f.rate = value.get<double>();
          } else if (key == "message") {
            f.message = value.get<std::string>();
          } else if (key == "stall") {
            f.stall = value.get<bool>();
          } else if (key == "stall_ms") {
            f.stall_ms = value.get<int64_t>();
          } else if (key == "endpoints") {
            f.endpoints = value.get<std::vector<int>>();
          } else {
            return absl::InvalidArgumentError(Cat("faults: unknown key '", key, "' for ", rpc));
          }
        }
        if (f.rate < 0 || f.rate > 1 || f.latency_ms < 0 || f.stall_ms < 0) {
          return absl::InvalidArgumentError(Cat("faults: ", rpc, ": value out of range"));
        }
        config.rpcs[rpc] = f;
      }
    }
    if (doc.contains("fail_volume_names")) {
      config.fail_volume_names = doc.at("fail_volume_names").get<std::vector<std::string>>();
    }
    for (const auto& [key, value] : doc.items()) {
      if (key != "rpcs" && key != "fail_volume_names") {
        return absl::InvalidArgumentError(Cat("faults: unknown key '", key, "'"));
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(Cat("faults: ", e.what()));
  }
  return config;
}

std::string FaultConfigToJson(const FaultConfig& config) {
  nlohmann::json doc = nlohmann::json::object();
  doc["rpcs"] = nlohmann::json::object();
  for (const auto& [rpc, f] : config.rpcs) {
    nlohmann::json j;
    j["latency_ms"] = f.latency_ms;
    j["error"] = CodeName(f.error);
    j["rate"] = f.rate;
    j["message"] = f.message;
    j["stall"] = f.stall;
    j["stall_ms"] = f.stall_ms;
    j["endpoints"] = f.endpoints;
    doc["rpcs"][rpc] = j;
  }
  doc["fail_volume_names"] = config.fail_volume_names;
  return doc.dump();
}

}  // namespace lbcsi::sim
