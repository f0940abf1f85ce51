#pragma once
// The agent's Prometheus series (served on --metrics-address by main.cc):
//   lbcsi_csi_requests_total{method,code}      CSI calls served, by gRPC code
//   lbcsi_csi_request_seconds{method}          CSI call latency
//   lbcsi_helper_calls_total{method,code}      calls to the root helper, by gRPC code
//   lbcsi_helper_call_seconds{method}          helper call latency
//   lbcsi_quarantined_records_total{reason}    state records reconcile moved aside
// The CSI names match the controller's, so one dashboard reads both.

#include <string_view>

#include <absl/status/status.h>

#include "metrics/registry.h"

namespace lbcsi::agent {

inline constexpr char kRpcTotal[] = "lbcsi_csi_requests_total";
inline constexpr char kRpcSeconds[] = "lbcsi_csi_request_seconds";
inline constexpr char kHelperTotal[] = "lbcsi_helper_calls_total";
inline constexpr char kHelperSeconds[] = "lbcsi_helper_call_seconds";
inline constexpr char kQuarantinedTotal[] = "lbcsi_quarantined_records_total";

void DescribeAgentMetrics(metrics::Registry& registry);

// Null registry: nothing is recorded.
void RecordRpc(metrics::Registry* registry, std::string_view method, const absl::Status& status,
               double seconds);
void RecordHelperCall(metrics::Registry* registry, std::string_view method,
                      const absl::Status& status, double seconds);

}  // namespace lbcsi::agent
