#include "scparams/storage_class.h"

#include <charconv>
#include "common/strings.h"

#include <cctype>

#include "common/status.h"

namespace lbcsi {
namespace {

// Errors carry the key as "parameters.<key>" so users find it in their StorageClass.
std::string Key(std::string_view key) {
  return Cat("parameters.", key);
}

absl::StatusOr<bool> ParseSwitch(const ParamMap& params, const char* key, bool also_true_false) {
  auto it = params.find(key);
  if (it == params.end() || it->second.empty() || it->second == "disabled") return false;
  if (it->second == "enabled") return true;
  if (also_true_false && it->second == "true") return true;
  if (also_true_false && it->second == "false") return false;
  return InvalidField(Key(key), "\"", Excerpt(it->second), "\" is not one of enabled, disabled",
                      also_true_false ? ", true, false" : "");
}

bool IsQosPolicyName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<StorageClassParams> ParseStorageClassParams(const ParamMap& params) {
  StorageClassParams out;
  // Unknown keys are ignored, so bound what a request may carry: no more than
  // a StorageClass can hold in Kubernetes.
  if (params.size() > kMaxParameters) {
    return absl::InvalidArgumentError(
        Cat("parameters: ", params.size(), " keys; at most ", kMaxParameters, " are accepted"));
  }
  size_t total = 0;
  for (const auto& [key, value] : params) total += key.size() + value.size();
  if (total > kMaxParameterBytes) {
    return absl::InvalidArgumentError(Cat("parameters: ", total,
                                          " bytes of keys and values; at most ", kMaxParameterBytes,
                                          " are accepted"));
  }

  auto ep = params.find(sc_keys::kMgmtEndpoint);
  if (ep == params.end() || ep->second.empty()) {
    return InvalidField(Key(sc_keys::kMgmtEndpoint), "required (host:port[,host:port...])");
  }
  absl::StatusOr<std::vector<HostPort>> eps = ParseEndpointList(ep->second);
  if (!eps.ok()) return InvalidField(Key(sc_keys::kMgmtEndpoint), StdView(eps.status().message()));
  out.mgmt_endpoints = *std::move(eps);

  auto rc = params.find(sc_keys::kReplicaCount);
  if (rc == params.end() || rc->second.empty()) {
    return InvalidField(Key(sc_keys::kReplicaCount), "required (1 to ", kMaxReplicaCount, ")");
  }
  uint32_t replicas = 0;
  const std::string& rtext = rc->second;
  auto [ptr, ec] = std::from_chars(rtext.data(), rtext.data() + rtext.size(), replicas);
  if (ec != std::errc() || ptr != rtext.data() + rtext.size() || replicas < 1 ||
      replicas > kMaxReplicaCount) {
    return InvalidField(Key(sc_keys::kReplicaCount), "\"", Excerpt(rtext),
                        "\" is not a number from 1 to ", kMaxReplicaCount);
  }
  out.replica_count = replicas;

  ASSIGN_OR_RETURN(out.compression, ParseSwitch(params, sc_keys::kCompression, false));
  ASSIGN_OR_RETURN(out.host_encryption, ParseSwitch(params, sc_keys::kHostEncryption, true));
  if (out.compression && out.host_encryption) {
    return InvalidField(Key(sc_keys::kHostEncryption),
                        "host encryption cannot be combined with compression (encrypted data does "
                        "not compress); disable one of them");
  }

  if (auto it = params.find(sc_keys::kProjectName); it != params.end() && !it->second.empty()) {
    if (!IsValidProjectName(it->second)) {
      return InvalidField(Key(sc_keys::kProjectName), "\"", Excerpt(it->second),
                          "\" is not a LightOS project name (lowercase letters, digits, '-' and "
                          "'.', 1 to 63 characters, starting and ending with a letter or digit)");
    }
    out.project_name = it->second;
  }

  if (auto it = params.find(sc_keys::kMgmtScheme); it != params.end() && !it->second.empty()) {
    absl::StatusOr<MgmtScheme> scheme = ParseMgmtScheme(it->second);
    if (!scheme.ok())
      return InvalidField(Key(sc_keys::kMgmtScheme), StdView(scheme.status().message()));
    out.scheme = *scheme;
  }

  if (auto it = params.find(sc_keys::kQosPolicyName); it != params.end() && !it->second.empty()) {
    if (!IsQosPolicyName(it->second)) {
      return InvalidField(Key(sc_keys::kQosPolicyName), "\"", Excerpt(it->second),
                          "\" is not a valid policy name");
    }
    out.qos_policy_name = it->second;
  }

  auto get = [&](const char* key) {
    auto it = params.find(key);
    return it == params.end() ? std::string() : it->second;
  };
  out.pvc_name = get(sc_keys::kPvcName);
  out.pvc_namespace = get(sc_keys::kPvcNamespace);
  out.pv_name = get(sc_keys::kPvName);

  // Which filesystem they are for is known only per capability (the controller
  // checks that) or at the node; here they must suit ext4 or xfs.
  absl::StatusOr<mkfsopts::MkfsOptions> mkfs = mkfsopts::ParseMap(params);
  if (!mkfs.ok()) return mkfsopts::Under("parameters", mkfs.status());
  RETURN_IF_ERROR(mkfsopts::Under("parameters", mkfsopts::Check(*mkfs, mkfsopts::Fs::kAny)));
  out.mkfs = *mkfs;
  return out;
}

absl::StatusOr<StorageClassParams> ParseStorageClassParams(
    const google::protobuf::Map<std::string, std::string>& params) {
  return ParseStorageClassParams(ParamMap(params.begin(), params.end()));
}

absl::StatusOr<MutableParams> ParseMutableParams(
    const google::protobuf::Map<std::string, std::string>& params) {
  MutableParams out;
  for (const auto& [key, value] : params) {
    if (key != sc_keys::kQosPolicyName) {
      return InvalidField(Cat("mutable_parameters.", Excerpt(key)),
                          "cannot be changed; only qos-policy-name is mutable");
    }
    if (!IsQosPolicyName(value)) {
      return InvalidField("mutable_parameters.qos-policy-name", "\"", Excerpt(value),
                          "\" is not a valid policy name");
    }
    out.qos_policy_name = value;
  }
  return out;
}

}  // namespace lbcsi
