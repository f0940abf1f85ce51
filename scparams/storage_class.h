#pragma once
// StorageClass parameters (CreateVolumeRequest.parameters), with the shipped
// plugin's keys and values so existing StorageClasses keep working.
// Unknown keys are ignored (as the shipped plugin does) within Kubernetes' own
// bounds on count and size; errors name the key and never echo more than an
// excerpt of a value.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <absl/status/statusor.h>
#include <google/protobuf/map.h>

#include "mkfsopts/mkfs_options.h"
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
// Kubernetes' own limits for StorageClass parameters (count, total bytes).
inline constexpr size_t kMaxParameters = 512;
inline constexpr size_t kMaxParameterBytes = 256 * 1024;

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
  // mkfs-* keys (mkfsopts): applied by the node when it formats the volume.
  mkfsopts::MkfsOptions mkfs;
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
