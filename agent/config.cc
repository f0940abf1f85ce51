#include "agent/config.h"

#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "common/strings.h"
#include "common/unix_endpoint.h"
#include "csicontext/keys.h"
#include "kubeletpaths/kubelet_paths.h"

namespace lbcsi::agent {

absl::StatusOr<std::string> HostNqnForNode(std::string_view node_id) {
  // The controller accepts only ids of this shape (csicontext/keys.h), so refusing any other
  // at start-up beats a node whose every ControllerPublishVolume fails with NOT_FOUND.
  if (!csictx::IsValidNodeId(node_id)) {
    return absl::InvalidArgumentError(
        Cat("node id must be \"<node name>.node\" (letters, digits, '.', '-', '_', ':'; host NQN ",
            "at most ", csictx::kMaxNqnBytes, " bytes); got ", node_id.size(), " bytes"));
  }
  return csictx::HostNqnForNode(node_id);
}

std::string DefaultNodeId(std::string_view kube_node_name) {
  if (kube_node_name.empty()) return "";
  return Cat(kube_node_name, ".node");
}

absl::StatusOr<uint64_t> ParseByteSize(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("empty size");
  size_t i = 0;
  uint64_t value = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      return absl::InvalidArgumentError(Cat("size \"", text, "\" overflows"));
    }
    value = value * 10 + digit;
    ++i;
  }
  if (i == 0) return absl::InvalidArgumentError(Cat("size \"", text, "\" is not a number"));
  std::string_view suffix = text.substr(i);
  uint64_t mult = 1;
  if (suffix.empty() || suffix == "b" || suffix == "B") {
    mult = 1;
  } else if (suffix == "Ki") {
    mult = 1ull << 10;
  } else if (suffix == "Mi") {
    mult = 1ull << 20;
  } else if (suffix == "Gi") {
    mult = 1ull << 30;
  } else if (suffix == "Ti") {
    mult = 1ull << 40;
  } else if (suffix == "k" || suffix == "K") {
    mult = 1000;
  } else if (suffix == "M") {
    mult = 1000 * 1000;
  } else if (suffix == "G") {
    mult = 1000ull * 1000 * 1000;
  } else if (suffix == "T") {
    mult = 1000ull * 1000 * 1000 * 1000;
  } else {
    return absl::InvalidArgumentError(Cat("size \"", text, "\" has an unknown unit"));
  }
  if (value > std::numeric_limits<uint64_t>::max() / mult) {
    return absl::InvalidArgumentError(Cat("size \"", text, "\" overflows"));
  }
  return value * mult;
}

absl::StatusOr<EphemeralConfig> ParseEphemeralConfig(std::string_view json_text) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("ephemeral config: not a JSON object");
  }
  EphemeralConfig c;
  static const char* kKnown[] = {"mgmt_endpoints",
                                 "scheme",
                                 "project",
                                 "ca_bundle_file",
                                 "token_file",
                                 "insecure_skip_verify",
                                 "max_size",
                                 "default_size",
                                 "default_replica_count",
                                 "max_replica_count",
                                 "default_compression",
                                 "default_fs_type"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* k : kKnown) known = known || it.key() == k;
    if (!known) return absl::InvalidArgumentError(Cat("ephemeral config: unknown key ", it.key()));
  }
  auto str = [&](const char* key, std::string* out) -> absl::Status {
    if (!j.contains(key)) return absl::OkStatus();
    if (!j[key].is_string())
      return absl::InvalidArgumentError(Cat("ephemeral config: ", key, " must be a string"));
    *out = j[key].get<std::string>();
    return absl::OkStatus();
  };
  std::string endpoints, scheme, max_size, default_size;
  RETURN_IF_ERROR(str("mgmt_endpoints", &endpoints));
  RETURN_IF_ERROR(str("scheme", &scheme));
  RETURN_IF_ERROR(str("project", &c.project));
  RETURN_IF_ERROR(str("ca_bundle_file", &c.ca_bundle_file));
  RETURN_IF_ERROR(str("token_file", &c.token_file));
  RETURN_IF_ERROR(str("max_size", &max_size));
  RETURN_IF_ERROR(str("default_size", &default_size));
  RETURN_IF_ERROR(str("default_fs_type", &c.default_fs_type));
  if (endpoints.empty())
    return absl::InvalidArgumentError("ephemeral config: mgmt_endpoints is required");
  ASSIGN_OR_RETURN(c.mgmt_endpoints, ParseEndpointList(endpoints));
  if (!scheme.empty()) {
    ASSIGN_OR_RETURN(c.scheme, ParseMgmtScheme(scheme));
  }
  if (!c.project.empty() && !IsValidProjectName(c.project)) {
    return absl::InvalidArgumentError("ephemeral config: invalid project name");
  }
  if (c.token_file.empty())
    return absl::InvalidArgumentError("ephemeral config: token_file is required");
  if (max_size.empty()) return absl::InvalidArgumentError("ephemeral config: max_size is required");
  ASSIGN_OR_RETURN(c.max_size_bytes, ParseByteSize(max_size));
  if (!default_size.empty()) {
    ASSIGN_OR_RETURN(c.default_size_bytes, ParseByteSize(default_size));
  }
  if (c.default_size_bytes > c.max_size_bytes) {
    return absl::InvalidArgumentError("ephemeral config: default_size exceeds max_size");
  }
  auto uint_field = [&](const char* key, uint32_t* out) -> absl::Status {
    if (!j.contains(key)) return absl::OkStatus();
    if (!j[key].is_number_unsigned())
      return absl::InvalidArgumentError(
          Cat("ephemeral config: ", key, " must be a positive integer"));
    *out = j[key].get<uint32_t>();
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(uint_field("default_replica_count", &c.default_replica_count));
  RETURN_IF_ERROR(uint_field("max_replica_count", &c.max_replica_count));
  if (c.default_replica_count < 1 || c.default_replica_count > c.max_replica_count) {
    return absl::InvalidArgumentError("ephemeral config: default_replica_count out of range");
  }
  for (const char* key : {"default_compression", "insecure_skip_verify"}) {
    if (j.contains(key) && !j[key].is_boolean()) {
      return absl::InvalidArgumentError(Cat("ephemeral config: ", key, " must be a boolean"));
    }
  }
  c.default_compression = j.value("default_compression", false);
  c.insecure_skip_verify = j.value("insecure_skip_verify", false);
  if (c.default_fs_type != "ext4" && c.default_fs_type != "xfs") {
    return absl::InvalidArgumentError("ephemeral config: default_fs_type must be ext4 or xfs");
  }
  return c;
}

absl::StatusOr<EphemeralConfig> LoadEphemeralConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(Cat("cannot read ephemeral config ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<EphemeralConfig> parsed = ParseEphemeralConfig(ss.str());
  if (!parsed.ok()) return Annotate(parsed.status(), Cat("reading ", path));
  return parsed;
}

absl::Status FinalizeConfig(AgentConfig& c) {
  if (c.node_id.empty()) {
    return absl::InvalidArgumentError("--node-id is empty and KUBE_NODE_NAME is not set");
  }
  if (c.node_id.size() > 256) return absl::InvalidArgumentError("--node-id exceeds 256 bytes");
  ASSIGN_OR_RETURN(c.host_nqn, HostNqnForNode(c.node_id));
  RETURN_IF_ERROR(ParseUnixEndpoint(c.endpoint).status());
  if (c.driver_name.empty() || c.driver_name.size() > 63) {
    return absl::InvalidArgumentError("--driver-name must be 1..63 characters");
  }
  for (const std::string* p : {&c.kubelet_root, &c.state_dir, &c.helper_socket}) {
    if (p->empty() || p->front() != '/') {
      return absl::InvalidArgumentError(Cat("path \"", *p, "\" must be absolute"));
    }
  }
  if (c.max_volumes < 0) return absl::InvalidArgumentError("--max-volumes must not be negative");
  // Every request path is checked against kubelet's layouts for these two.
  RETURN_IF_ERROR(kubeletpaths::KubeletLayouts::Create(c.kubelet_root, c.driver_name).status());
  if (!c.ephemeral_config_file.empty()) {
    ASSIGN_OR_RETURN(c.ephemeral, LoadEphemeralConfig(c.ephemeral_config_file));
  }
  c.trusted_clusters.clear();
  for (const std::string& spec : c.trusted_cluster_specs) {
    ASSIGN_OR_RETURN(ClusterTarget t, ParseClusterSpec(spec, MgmtScheme::kGrpcs));
    c.trusted_clusters.push_back(std::move(t));
  }
  if (c.ephemeral) {
    c.trusted_clusters.push_back({c.ephemeral->mgmt_endpoints, c.ephemeral->scheme, ""});
  }
  return absl::OkStatus();
}

}  // namespace lbcsi::agent
