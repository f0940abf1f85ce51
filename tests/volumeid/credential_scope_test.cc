// Where tokens may go: the operator's token only to listed clusters, any token
// in plaintext only to clusters listed with scheme:grpc, endpoints compared
// after canonicalisation.
#include "volumeid/credential_scope.h"

#include <gtest/gtest.h>

namespace lbcsi {
namespace {

ClusterTarget Spec(std::string_view spec, MgmtScheme scheme = MgmtScheme::kGrpcs) {
  absl::StatusOr<ClusterTarget> t = ParseClusterSpec(spec, scheme);
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

TEST(CredentialScope, OperatorTokenGoesOnlyToListedEndpoints) {
  CredentialScope scope({Spec("10.0.0.1:443,10.0.0.2:443"), Spec("lightos.example:443")});
  EXPECT_TRUE(scope.CheckOperatorToken(Spec("10.0.0.1:443")).ok());
  EXPECT_TRUE(scope.CheckOperatorToken(Spec("10.0.0.2:443,10.0.0.1:443")).ok());
  EXPECT_TRUE(scope.CheckOperatorToken(Spec("LightOS.Example.:443")).ok()) << "case, trailing dot";
  for (std::string_view other : {"10.0.0.3:443", "10.0.0.1:444", "10.0.0.1:443,10.0.0.9:443",
                                 "lightos.example.evil:443", "127.1:443", "[::1]:443"}) {
    absl::Status st = scope.CheckOperatorToken(Spec(other));
    EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied) << other;
  }
  EXPECT_EQ(CredentialScope().CheckOperatorToken(Spec("10.0.0.1:443")).code(),
            absl::StatusCode::kPermissionDenied)
      << "an empty scope trusts nothing";
}

TEST(CredentialScope, IPv6SpellingsMatch) {
  CredentialScope scope({Spec("[fd00:0:0:0::1]:443")});
  EXPECT_TRUE(scope.CheckOperatorToken(Spec("[FD00::1]:443")).ok());
  EXPECT_FALSE(scope.CheckOperatorToken(Spec("[fd00::2]:443")).ok());
}

TEST(CredentialScope, PlaintextOnlyToClustersListedWithGrpc) {
  CredentialScope scope({Spec("10.0.0.1:80|scheme:grpc"), Spec("10.0.0.2:443")});
  EXPECT_TRUE(scope.CheckOperatorToken(Spec("10.0.0.1:80|scheme:grpc")).ok());
  EXPECT_TRUE(scope.CheckRequestToken(Spec("10.0.0.1:80|scheme:grpc")).ok());
  // Listed, but for TLS only.
  EXPECT_EQ(scope.CheckOperatorToken(Spec("10.0.0.2:443|scheme:grpc")).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(scope.CheckRequestToken(Spec("10.0.0.2:443|scheme:grpc")).code(),
            absl::StatusCode::kPermissionDenied);
  // A request's own token may go anywhere over TLS, never in plaintext to an unlisted host.
  EXPECT_TRUE(scope.CheckRequestToken(Spec("203.0.113.7:443")).ok());
  EXPECT_EQ(scope.CheckRequestToken(Spec("203.0.113.7:80|scheme:grpc")).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(scope.CheckRequestToken(Spec("10.0.0.1:80,203.0.113.7:80|scheme:grpc")).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(CredentialScope, ErrorsNameTheEndpointAndTheFix) {
  CredentialScope scope({Spec("10.0.0.1:443")});
  absl::Status st = scope.CheckOperatorToken(Spec("10.0.0.3:443"));
  EXPECT_NE(st.message().find("10.0.0.3:443"), absl::string_view::npos);
  EXPECT_NE(st.message().find("--trusted-cluster"), absl::string_view::npos);
}

TEST(EndpointList, IsBounded) {
  std::string many;
  for (int i = 0; i <= static_cast<int>(kMaxEndpoints); ++i) {
    many += (i ? "," : "") + std::string("10.0.0.") + std::to_string(i + 1) + ":443";
  }
  EXPECT_EQ(ParseEndpointList(many).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lbcsi
