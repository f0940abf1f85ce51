#pragma once

// What the agent and the helper agree on inside kubelet's plugins/<driver> directory.
namespace lbcsi {

// Mount points of inline ephemeral volumes live in plugins/<driver>/<this>/<40 hex>. The helper
// makes it root-owned when it prepares the plugin directory: it creates the mount points there,
// and the agent, which owns the parent, has no business inside.
inline constexpr char kEphemeralDirName[] = "ephemeral";

}  // namespace lbcsi
