#pragma once
// absl::Status is used everywhere inside; grpc::Status only at a service edge.
// The canonical codes are numerically identical, so conversion is lossless.

#include <string_view>

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <grpcpp/support/status.h>

#include "common/strings.h"

namespace lbcsi {

// Error messages longer than this are cut at the RPC edge.
inline constexpr size_t kMaxErrorMessageBytes = 1024;
// Converts at a service edge. The message is scrubbed of anything that looks
// like a secret (see common/redact.h) as a last line of defence.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Converts what a gRPC client call returned.
absl::Status FromGrpcStatus(const grpc::Status& status);

// Adds context in front of the message, keeping the code: "while X: <original>".
absl::Status Annotate(const absl::Status& status, std::string_view context);

// "field: what is wrong" with INVALID_ARGUMENT: errors name the request field.
template <typename... Args>
absl::Status InvalidField(std::string_view field, const Args&... what) {
  return absl::InvalidArgumentError(Cat(field, ": ", what...));
}

}  // namespace lbcsi

#define LBCSI_CONCAT_INNER_(a, b) a##b
#define LBCSI_CONCAT_(a, b) LBCSI_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status lbcsi_status_ = (expr);         \
    if (!lbcsi_status_.ok()) return lbcsi_status_; \
  } while (false)

#define LBCSI_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return std::move(tmp).status();     \
  lhs = std::move(tmp).value()

// `ASSIGN_OR_RETURN(auto x, FunctionReturningStatusOr());`
#define ASSIGN_OR_RETURN(lhs, expr) \
  LBCSI_ASSIGN_OR_RETURN_IMPL_(LBCSI_CONCAT_(lbcsi_statusor_, __LINE__), lhs, expr)
