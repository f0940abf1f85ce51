#include "common/grpc_server.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include "common/unix_endpoint.h"
#include "csi/v1/csi.grpc.pb.h"

namespace lbcsi {
namespace {

class FakeIdentity final : public csi::v1::Identity::Service {
  grpc::Status GetPluginInfo(grpc::ServerContext*, const csi::v1::GetPluginInfoRequest*,
                             csi::v1::GetPluginInfoResponse* resp) override {
    resp->set_name("test.driver");
    return grpc::Status::OK;
  }
};

class GrpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lbcsi-srv-XXXXXX";
    dir_ = mkdtemp(tmpl);
    sock_ = dir_ + "/csi.sock";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
  std::string sock_;
};

TEST_F(GrpcServerTest, ServesSetsModeAndRemovesSocketOnShutdown) {
  FakeIdentity identity;
  UnixServerOptions opts;
  opts.endpoint = "unix://" + sock_;
  opts.socket_mode = 0600;
  auto server = UnixGrpcServer::Start(std::move(opts), {&identity});
  ASSERT_TRUE(server.ok()) << server.status();

  struct stat st {};
  ASSERT_EQ(stat(sock_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto stub = csi::v1::Identity::NewStub(
      grpc::CreateChannel(GrpcUnixTarget(sock_), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  csi::v1::GetPluginInfoResponse resp;
  ASSERT_TRUE(stub->GetPluginInfo(&ctx, {}, &resp).ok());
  EXPECT_EQ(resp.name(), "test.driver");

  (*server)->Shutdown(absl::Seconds(1));
  (*server)->Wait();
  EXPECT_FALSE(std::filesystem::exists(sock_));
}

TEST_F(GrpcServerTest, RemovesAStaleSocket) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock_.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);  // bound but never listening: stale
  ASSERT_TRUE(std::filesystem::exists(sock_));
  EXPECT_TRUE(RemoveStaleSocket(sock_).ok());
  EXPECT_FALSE(std::filesystem::exists(sock_));
}

TEST_F(GrpcServerTest, RefusesToTakeOverALiveSocket) {
  FakeIdentity identity;
  UnixServerOptions opts;
  opts.endpoint = "unix://" + sock_;
  auto first = UnixGrpcServer::Start(std::move(opts), {&identity});
  ASSERT_TRUE(first.ok());
  UnixServerOptions opts2;
  opts2.endpoint = "unix://" + sock_;
  FakeIdentity identity2;
  auto second = UnixGrpcServer::Start(std::move(opts2), {&identity2});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(std::filesystem::exists(sock_));
}

TEST_F(GrpcServerTest, RefusesToRemoveARegularFile) {
  std::ofstream(sock_) << "data";
  EXPECT_EQ(RemoveStaleSocket(sock_).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(std::filesystem::exists(sock_));
}

TEST(TerminationSignalsTest, WaitReturnsTheBlockedSignal) {
  BlockTerminationSignals();
  ASSERT_EQ(pthread_kill(pthread_self(), SIGTERM), 0);  // stays pending: blocked
  EXPECT_EQ(WaitForTerminationSignal(), SIGTERM);
}

}  // namespace
}  // namespace lbcsi
