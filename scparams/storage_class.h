#pragma once
// StorageClass parameters (CreateVolumeRequest.parameters), with the shipped
// plugin's keys and values so existing StorageClasses keep working.
// Unknown keys are ignored (as the shipped plugin does); errors name the key.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <absl/status/statusor.h>
#include <google/protobuf/map.h>

#include "volumeid/endpoints.h"
#include "volumeid/resource_id.h"

namespace lbcsi {

namespace sc_keys {
inline constexpr char kMgmtEndpoint[] = "mgmt-endpoint";
inline constexpr char kReplicaCount[] = "replica-count";
inline constexpr char kCompression[] = "compression";
inline constexpr char kProjectName[] = "project-name";
inline constexpr char kMgmtScheme[] = "mgmt-scheme";
inline constexpr char kQosPolicyName[] = "qos-policy-name";
inline constexpr char kHostEncryption[] = "host-encryption";
// Added by external-provisioner --extra-create-metadata.
inline constexpr char kPvcName[] = "csi.storage.k8s.io/pvc/name";
inline constexpr char kPvcNamespace[] = "csi.storage.k8s.io/pvc/namespace";
inline constexpr char kPvName[] = "csi.storage.k8s.io/pv/name";
}  // namespace sc_keys

inline constexpr uint32_t kMaxReplicaCount = 3;

struct StorageClassParams {
  std::vector<HostPort> mgmt_endpoints;  // canonical order
  uint32_t replica_count = 0;
  bool compression = false;
  std::string project_name;  // empty: the cluster's default project
  MgmtScheme scheme = MgmtScheme::kGrpcs;
  std::string qos_policy_name;  // empty: the cluster default
  bool host_encryption = false;
  // Metadata from --extra-create-metadata (empty when absent); used for LightOS labels.
  std::string pvc_name;
  std::string pvc_namespace;
  std::string pv_name;
};

using ParamMap = std::map<std::string, std::string>;

absl::StatusOr<StorageClassParams> ParseStorageClassParams(const ParamMap& params);
absl::StatusOr<StorageClassParams> ParseStorageClassParams(
    const google::protobuf::Map<std::string, std::string>& params);

// Mutable parameters (CSI ControllerModifyVolume / mutable_parameters): only
// qos-policy-name may change; any other key is INVALID_ARGUMENT.
struct MutableParams {
  std::string qos_policy_name;
};
absl::StatusOr<MutableParams> ParseMutableParams(
    const google::protobuf::Map<std::string, std::string>& params);

}  // namespace lbcsi
