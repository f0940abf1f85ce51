// TLS modes of the LightOS client against an in-process TLS server whose
// certificate is made on the fly by a throwaway CA.

#include <filesystem>
#include <fstream>
#include <mutex>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/logging.h"
#include "common/strings.h"
#include "lightos/grpc_client.h"
#include "tests/lightos/client_test_util.h"
#include "tests/lightos/fake_duros.h"
#include "tests/lightos/test_certs.h"

namespace lbcsi::lightos {
namespace {

using testing::FakeServer;
using ::testing::HasSubstr;
using testing::KeyCert;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/lbcsi-tls-" + std::to_string(::getpid());
    std::filesystem::create_directories(dir_);
    ca_ = testing::MakeCa("lbcsi test CA");
    other_ca_ = testing::MakeCa("some other CA");
    // The certificate names a DNS name only: connecting by IP needs the override.
    KeyCert server_cert = testing::MakeServerCert(ca_, {"lightos.test"}, {});
    grpc::SslServerCredentialsOptions opts;
    opts.pem_key_cert_pairs.push_back({server_cert.key_pem, server_cert.cert_pem});
    server_ = std::make_unique<FakeServer>(grpc::SslServerCredentials(opts));
    ca_file_ = Write("ca.pem", ca_.cert_pem);
    other_ca_file_ = Write("other-ca.pem", other_ca_.cert_pem);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string Write(const std::string& name, const std::string& content) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    return path;
  }

  absl::Status Probe(const TlsOptions& tls) {
    ClusterTarget target;
    target.endpoints = {testing::Local(server_->port())};
    target.scheme = MgmtScheme::kGrpcs;
    GrpcClientOptions options = testing::FastOptions();
    options.connection.tls = tls;
    auto client = GrpcClient::Create(target, {.inline_token = "tls-test-token"}, options);
    if (!client.ok()) return client.status();
    return (*client)->CheckVersion(testing::Within(absl::Seconds(10)));
  }

  std::string dir_;
  KeyCert ca_, other_ca_;
  std::string ca_file_, other_ca_file_;
  std::unique_ptr<FakeServer> server_;
};

TEST_F(TlsTest, VerifiesAgainstTheConfiguredCaWithServerNameOverride) {
  absl::Status st = Probe({.ca_bundle_file = ca_file_, .server_name_override = "lightos.test"});
  EXPECT_TRUE(st.ok()) << st;
  std::lock_guard<std::mutex> lock(server_->fake().mu);
  EXPECT_EQ(server_->fake().last_auth["GetVersion"], "Bearer tls-test-token");
}

TEST_F(TlsTest, NameMismatchWithoutOverrideIsRefused) {
  absl::Status st = Probe({.ca_bundle_file = ca_file_});
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_EQ(server_->fake().Calls("GetVersion"), 0);
}

TEST_F(TlsTest, WrongCaIsRefused) {
  absl::Status st =
      Probe({.ca_bundle_file = other_ca_file_, .server_name_override = "lightos.test"});
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_THAT(std::string(StdView(st.message())), HasSubstr(server_->address()));
  EXPECT_EQ(server_->fake().Calls("GetVersion"), 0);
}

TEST_F(TlsTest, UnreadableOrNonPemCaBundleIsAClearError) {
  EXPECT_EQ(Probe({.ca_bundle_file = dir_ + "/missing.pem"}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Probe({.ca_bundle_file = Write("junk.pem", "not a cert")}).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(TlsTest, SkipVerifyConnectsAndWarnsOnEveryConnection) {
  std::mutex mu;
  std::vector<std::string> lines;
  log::SetSinkForTesting([&](std::string_view line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(line);
  });
  // Wrong CA and no override: only skip-verify makes this work.
  absl::Status second = Probe({.insecure_skip_verify = true});
  absl::Status first = Probe({.ca_bundle_file = other_ca_file_, .insecure_skip_verify = true});
  log::SetSinkForTesting(nullptr);
  EXPECT_TRUE(first.ok()) << first;
  EXPECT_TRUE(second.ok()) << second;
  int per_connection = 0;
  for (const auto& line : lines) {
    if (Contains(line, "NOT verified")) ++per_connection;
    EXPECT_THAT(line, ::testing::Not(HasSubstr("tls-test-token")));
  }
  EXPECT_GE(per_connection, 2) << ::testing::PrintToString(lines);
}

TEST_F(TlsTest, PlaintextClientCannotTalkToTlsServer) {
  ClusterTarget target;
  target.endpoints = {testing::Local(server_->port())};
  target.scheme = MgmtScheme::kGrpc;
  auto client = GrpcClient::Create(target, {}, testing::FastOptions());
  ASSERT_TRUE(client.ok());
  EXPECT_EQ((*client)->CheckVersion(testing::Within(absl::Seconds(5))).code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace lbcsi::lightos
