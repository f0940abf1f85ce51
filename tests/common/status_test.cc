#include "common/status.h"

#include <gtest/gtest.h>

#include "common/redact.h"

namespace lbcsi {
namespace {

TEST(StatusTest, CodesSurviveTheRoundTripThroughGrpc) {
  for (int code = 0; code <= 16; ++code) {
    absl::Status in(static_cast<absl::StatusCode>(code), code == 0 ? "" : "message");
    grpc::Status out = ToGrpcStatus(in);
    EXPECT_EQ(static_cast<int>(out.error_code()), code);
    absl::Status back = FromGrpcStatus(out);
    EXPECT_EQ(back.code(), in.code());
    if (code != 0) {
      EXPECT_EQ(out.error_message(), "message");
      EXPECT_EQ(back.message(), "message");
    }
  }
}

TEST(StatusTest, ToGrpcScrubsRegisteredSecretsAndJwts) {
  RegisterSecret("hunter2-passphrase");
  const std::string jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
  grpc::Status s =
      ToGrpcStatus(absl::PermissionDeniedError("token " + jwt + " and hunter2-passphrase refused"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(s.error_message().find("hunter2-passphrase"), std::string::npos);
  EXPECT_EQ(s.error_message().find(jwt), std::string::npos);
  EXPECT_NE(s.error_message().find("refused"), std::string::npos);
  ForgetSecret("hunter2-passphrase");
}

absl::Status FailsWith(absl::StatusCode code) {
  return absl::Status(code, "inner");
}

absl::Status UsesReturnIfError(absl::StatusCode code, bool* reached_end) {
  RETURN_IF_ERROR(FailsWith(code));
  *reached_end = true;
  return absl::OkStatus();
}

absl::StatusOr<int> MaybeInt(bool ok) {
  if (!ok) return absl::NotFoundError("no int");
  return 42;
}

absl::StatusOr<int> UsesAssignOrReturn(bool ok) {
  ASSIGN_OR_RETURN(int value, MaybeInt(ok));
  return value + 1;
}

TEST(StatusTest, ReturnIfErrorStopsOnlyOnError) {
  bool reached = false;
  EXPECT_EQ(UsesReturnIfError(absl::StatusCode::kAborted, &reached).code(),
            absl::StatusCode::kAborted);
  EXPECT_FALSE(reached);
  EXPECT_TRUE(UsesReturnIfError(absl::StatusCode::kOk, &reached).ok());
  EXPECT_TRUE(reached);
}

TEST(StatusTest, AssignOrReturnPropagates) {
  EXPECT_EQ(UsesAssignOrReturn(true).value(), 43);
  EXPECT_EQ(UsesAssignOrReturn(false).status().code(), absl::StatusCode::kNotFound);
}

TEST(StatusTest, AnnotateKeepsCodeAndAddsContext) {
  absl::Status s =
      Annotate(absl::UnavailableError("connection refused"), "GetVolume on 10.0.0.1:443");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "GetVolume on 10.0.0.1:443: connection refused");
  EXPECT_TRUE(Annotate(absl::OkStatus(), "x").ok());
}

TEST(StatusTest, InvalidFieldNamesTheField) {
  absl::Status s = InvalidField("volume_capability.access_mode", "mode ", 7, " unsupported");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "volume_capability.access_mode: mode 7 unsupported");
}

}  // namespace
}  // namespace lbcsi
