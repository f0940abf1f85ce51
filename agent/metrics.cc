#include "agent/metrics.h"

#include <string>

namespace lbcsi::agent {

void DescribeAgentMetrics(metrics::Registry& registry) {
  registry.DescribeCounter(kRpcTotal, "CSI calls served, by method and gRPC code");
  registry.DescribeHistogram(kRpcSeconds, "CSI call latency in seconds, by method");
  registry.DescribeCounter(kHelperTotal, "calls to the root helper, by method and gRPC code");
  registry.DescribeHistogram(kHelperSeconds, "root helper call latency in seconds, by method");
  registry.DescribeCounter(kQuarantinedTotal,
                           "state records the reconcile could not use or undo and moved aside "
                           "(<state-dir>/quarantine), by reason");
}

namespace {
void Record(metrics::Registry* registry, const char* total, const char* seconds,
            std::string_view method, const absl::Status& status, double secs) {
  if (registry == nullptr) return;
  std::string m(method);
  registry->Increment(
      total, {{"method", m}, {"code", std::string(absl::StatusCodeToString(status.code()))}});
  registry->Observe(seconds, {{"method", m}}, secs);
}
}  // namespace

void RecordRpc(metrics::Registry* registry, std::string_view method, const absl::Status& status,
               double seconds) {
  Record(registry, kRpcTotal, kRpcSeconds, method, status, seconds);
}

void RecordHelperCall(metrics::Registry* registry, std::string_view method,
                      const absl::Status& status, double seconds) {
  Record(registry, kHelperTotal, kHelperSeconds, method, status, seconds);
}

}  // namespace lbcsi::agent
