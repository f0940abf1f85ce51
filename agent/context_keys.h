#pragma once
// Keys the controller puts in publish_context / volume_context, and the keys
// kubelet uses. The controller owns these names (csicontext/keys.h); until that
// shared header exists the agent spells the same strings here.

namespace lbcsi::agent::keys {

inline constexpr char kSubsysNqn[] = "lightbits.com/subsys-nqn";
inline constexpr char kNvmeEndpoints[] = "lightbits.com/nvme-endpoints";
inline constexpr char kDiscoveryEndpoints[] = "lightbits.com/discovery-endpoints";
inline constexpr char kNeverWritten[] = "lightbits.com/never-written";
inline constexpr char kReadOnly[] = "lightbits.com/readonly";
inline constexpr char kCreatedEmpty[] = "lightbits.com/created-empty";

// Set by kubelet on inline (ephemeral) volumes.
inline constexpr char kEphemeral[] = "csi.storage.k8s.io/ephemeral";
// Pod-info keys kubelet may add when podInfoOnMount is on; harmless, ignored.
inline constexpr char kPodInfoPrefix[] = "csi.storage.k8s.io/";

}  // namespace lbcsi::agent::keys
