#pragma once
// The edge of every CSI call: log the request (secrets redacted), run the
// handler, count it and time it, and convert absl::Status to grpc::Status.
//   lbcsi_csi_requests_total{method,code}  counter
//   lbcsi_csi_request_seconds{method}      histogram

#include <chrono>
#include <string_view>

#include <absl/status/status.h>
#include <google/protobuf/message.h>
#include <grpcpp/support/status.h>

#include "common/logging.h"
#include "common/status.h"
#include "metrics/registry.h"

namespace lbcsi::controller {

inline constexpr char kRpcTotal[] = "lbcsi_csi_requests_total";
inline constexpr char kRpcSeconds[] = "lbcsi_csi_request_seconds";

inline void DescribeRpcMetrics(metrics::Registry& registry) {
  registry.DescribeCounter(kRpcTotal, "CSI calls served, by method and gRPC code");
  registry.DescribeHistogram(kRpcSeconds, "CSI call latency in seconds, by method");
}

template <typename Handler>
grpc::Status RunRpc(metrics::Registry& registry, std::string_view method,
                    const google::protobuf::Message& request, Handler&& handler) {
  LOG(kDebug, "request", {"method", method}, log::Field::Proto("request", request));
  auto start = std::chrono::steady_clock::now();
  absl::Status status = handler();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string code(absl::StatusCodeToString(status.code()));
  registry.Increment(kRpcTotal, {{"method", std::string(method)}, {"code", code}});
  registry.Observe(kRpcSeconds, {{"method", std::string(method)}}, secs);
  if (status.ok()) {
    LOG(kDebug, "done", {"method", method}, {"ms", static_cast<int64_t>(secs * 1000)});
  } else {
    LOG(kWarn, "failed", {"method", method}, {"code", code}, {"error", StdView(status.message())},
        {"ms", static_cast<int64_t>(secs * 1000)});
  }
  return ToGrpcStatus(status);
}

}  // namespace lbcsi::controller
