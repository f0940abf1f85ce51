#pragma once
// The agent's configuration: command-line flags (CLI11, LBCSI_<NAME> env) and
// the node-wide ephemeral-volume configuration file.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <absl/status/statusor.h>

#include "volumeid/cluster_target.h"
#include "volumeid/endpoints.h"
#include "volumeid/resource_id.h"

namespace lbcsi::agent {

// What an ephemeral volume may be and where it lives. Cluster, credentials and
// limits come only from here, never from the pod spec.
struct EphemeralConfig {
  std::vector<HostPort> mgmt_endpoints;
  MgmtScheme scheme = MgmtScheme::kGrpcs;
  std::string project;
  std::string ca_bundle_file;
  std::string token_file;
  bool insecure_skip_verify = false;
  uint64_t max_size_bytes = 0;
  uint64_t default_size_bytes = 1ull << 30;
  uint32_t default_replica_count = 1;
  uint32_t max_replica_count = 3;
  bool default_compression = false;
  std::string default_fs_type = "ext4";
};

struct AgentConfig {
  std::string endpoint = "unix:///var/lib/kubelet/plugins/csi.lightbitslabs.com/csi.sock";
  std::string driver_name = "csi.lightbitslabs.com";
  std::string node_id;
  std::string host_nqn;
  std::string helper_socket = "/run/lbcsi/helper.sock";
  std::string kubelet_root = "/var/lib/kubelet";
  std::string state_dir = "/var/lib/lbcsi-agent";
  std::string log_level = "info";
  std::string log_format = "text";
  std::string metrics_address;
  int64_t max_volumes = 256;
  std::string ephemeral_config_file;
  std::optional<EphemeralConfig> ephemeral;  // absent: inline volumes are refused
  // --trusted-cluster specs (volumeid/cluster_target.h) and, after
  // FinalizeConfig, the parsed list plus the ephemeral cluster: where the
  // node-stage fallback may send a token in plaintext (volumeid/credential_scope.h).
  std::vector<std::string> trusted_cluster_specs;
  std::vector<ClusterTarget> trusted_clusters;
  std::string version = "0.1.0";
};

// "nqn.2019-09.com.lightbitslabs:host:<node-id>"; INVALID_ARGUMENT over 223 bytes.
absl::StatusOr<std::string> HostNqnForNode(std::string_view node_id);

// The shipped plugin's default: "<node name>.node".
std::string DefaultNodeId(std::string_view kube_node_name);

// Parses the JSON ephemeral configuration (see agent/README.md for its keys).
absl::StatusOr<EphemeralConfig> ParseEphemeralConfig(std::string_view json_text);
absl::StatusOr<EphemeralConfig> LoadEphemeralConfig(const std::string& path);

// "10Gi", "512Mi", "1073741824", "1G": a byte count. INVALID_ARGUMENT otherwise.
absl::StatusOr<uint64_t> ParseByteSize(std::string_view text);

// Fills defaults and checks the whole config. Sets host_nqn from node_id.
absl::Status FinalizeConfig(AgentConfig& config);

}  // namespace lbcsi::agent
