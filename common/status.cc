#include "common/status.h"

#include <string>
#include "common/strings.h"

#include "common/redact.h"

namespace lbcsi {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  std::string message = ScrubSecrets(StdView(status.message()));
  if (message.size() > kMaxErrorMessageBytes) {
    // A message that names a huge request value would otherwise exceed the
    // peer's metadata limit and arrive as RESOURCE_EXHAUSTED instead of its code.
    const size_t dropped = message.size() - kMaxErrorMessageBytes;
    message.resize(kMaxErrorMessageBytes);
    message += Cat("... (", dropped, " more bytes)");
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), message);
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::Status Annotate(const absl::Status& status, std::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), Cat(context, ": ", status.message()));
}

}  // namespace lbcsi
