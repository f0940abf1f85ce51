#pragma once
// Start-up step of the agent: before it can bind its CSI socket in kubelet's plugin
// directory (root-owned when kubelet creates it), it asks the helper to hand that
// directory, and the registrar's, to the agent's uid.

#include <functional>
#include <string_view>

#include <absl/status/status.h>
#include <absl/time/time.h>

#include "agent/helper_client.h"

namespace lbcsi::agent {

// Prepares SOCKET_DIR_PLUGIN and SOCKET_DIR_REGISTRATION. Waits for the helper (it may start
// after the agent) until `deadline`, retrying UNAVAILABLE with backoff. A directory the helper
// is not configured for (FAILED_PRECONDITION) or a helper without the call (UNIMPLEMENTED) is
// skipped with a log line: the operator then owns that directory's permissions. A prepared
// plugin directory that is not where `endpoint_dir` says the socket goes is logged as a warning.
// `stop_requested` is polled between attempts: true ends the wait with CANCELLED.
absl::Status PrepareSocketDirs(HelperClient& helper, std::string_view endpoint_dir,
                               absl::Time deadline,
                               const std::function<bool()>& stop_requested = {});

}  // namespace lbcsi::agent
