#pragma once
// The contract between the controller and the node agent: keys of
// CreateVolumeResponse.volume.volume_context and of
// ControllerPublishVolumeResponse.publish_context, and the node id <-> host NQN
// rule. Header-only so that both binaries share one spelling.

#include <cstddef>
#include <string>
#include <string_view>

namespace lbcsi::csictx {

// --- volume_context (static, cached by the CO, passed to the node) ---
// "true" when this driver created the volume empty (no content source): one of
// the proofs the node's format rule accepts. "false" for restores and clones.
inline constexpr char kCreatedEmpty[] = "lightbits.com/created-empty";

// --- publish_context (returned by ControllerPublishVolume) ---
// The cluster's NVMe subsystem NQN (every volume is a namespace of it).
inline constexpr char kSubsysNqn[] = "lightbits.com/subsys-nqn";
// Comma-separated "ip:port" of the NVMe/TCP targets.
inline constexpr char kNvmeEndpoints[] = "lightbits.com/nvme-endpoints";
// Comma-separated "ip:port" of the NVMe discovery controllers.
inline constexpr char kDiscoveryEndpoints[] = "lightbits.com/discovery-endpoints";
// "true" only when LightOS reported zero bytes written by users and the volume
// has no source snapshot, at publish time; "false" otherwise.
inline constexpr char kNeverWritten[] = "lightbits.com/never-written";
// "true" when the publication is read-only (readonly flag or a reader-only
// access mode); LightOS ACLs cannot express it, so the node enforces it.
inline constexpr char kReadonly[] = "lightbits.com/readonly";

// --- volume_context keys kubelet sets (not the controller) ---
// "true" on inline (CSI ephemeral) volumes at NodePublishVolume.
inline constexpr char kEphemeral[] = "csi.storage.k8s.io/ephemeral";

inline constexpr char kTrue[] = "true";
inline constexpr char kFalse[] = "false";

// --- node ids and host NQNs ---
inline constexpr std::string_view kHostNqnPrefix = "nqn.2019-09.com.lightbitslabs:host:";
inline constexpr size_t kMaxNqnBytes = 223;

// Node ids have the shipped plugin's shape, "<node name>.node", so that an id no node agent of
// this driver could have produced is recognisably foreign (ControllerPublishVolume answers
// NOT_FOUND for it). The name part uses the characters Kubernetes node names use (and '_', ':'),
// and the host NQN built from the id is at most 223 bytes.
inline constexpr std::string_view kNodeIdSuffix = ".node";

inline bool IsValidNodeId(std::string_view node_id) {
  if (node_id.size() <= kNodeIdSuffix.size() ||
      node_id.substr(node_id.size() - kNodeIdSuffix.size()) != kNodeIdSuffix ||
      kHostNqnPrefix.size() + node_id.size() > kMaxNqnBytes) {
    return false;
  }
  for (char c : node_id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == ':';
    if (!ok) return false;
  }
  return true;
}

inline std::string HostNqnForNode(std::string_view node_id) {
  return std::string(kHostNqnPrefix) + std::string(node_id);
}

// The node id inside one of our host NQNs; empty when `nqn` is not one.
inline std::string_view NodeIdFromHostNqn(std::string_view nqn) {
  if (nqn.size() <= kHostNqnPrefix.size() ||
      nqn.substr(0, kHostNqnPrefix.size()) != kHostNqnPrefix) {
    return {};
  }
  return nqn.substr(kHostNqnPrefix.size());
}

}  // namespace lbcsi::csictx
