// The agent's start-up step that gets kubelet's socket directories handed to it by the helper.

#include "agent/socket_dirs.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "common/grpc_server.h"
#include "tests/agent/fake_helper.h"

namespace lbcsi::agent::testing {
namespace {

class SocketDirs : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lbcsi-sockdirs-XXXXXX";
    dir_ = mkdtemp(tmpl);
    UnixServerOptions opts;
    opts.endpoint = "unix://" + dir_ + "/helper.sock";
    auto server = UnixGrpcServer::Start(std::move(opts), {&fake_});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client_ = HelperClient::ForSocket(dir_ + "/helper.sock");
  }
  void TearDown() override {
    server_->Shutdown(absl::Seconds(1));
    server_->Wait();
    std::filesystem::remove_all(dir_);
  }
  absl::Status Prepare(absl::Duration budget = absl::Seconds(10)) {
    return PrepareSocketDirs(*client_, "/k/plugins/drv", absl::Now() + budget);
  }

  FakeHelper fake_{"nqn.2019-09.com.lightbitslabs:host:n.node"};
  std::string dir_;
  std::unique_ptr<UnixGrpcServer> server_;
  std::unique_ptr<HelperClient> client_;
};

TEST_F(SocketDirs, AsksForBothDirectories) {
  fake_.SetPreparedDir(hv1::SOCKET_DIR_PLUGIN, "/k/plugins/drv");
  fake_.SetPreparedDir(hv1::SOCKET_DIR_REGISTRATION, "/k/plugins_registry/drv");
  ASSERT_TRUE(Prepare().ok());
  EXPECT_EQ(fake_.Calls(), (std::vector<std::string>{"PrepareSocketDir SOCKET_DIR_PLUGIN",
                                                     "PrepareSocketDir SOCKET_DIR_REGISTRATION"}));
}

TEST_F(SocketDirs, DirectoriesTheHelperDoesNotManageAreSkipped) {
  fake_.SetPreparedDir(hv1::SOCKET_DIR_PLUGIN, "/k/plugins/drv");  // registration: not configured
  EXPECT_TRUE(Prepare().ok());
  EXPECT_EQ(fake_.CountCalls("PrepareSocketDir"), 2);
}

TEST_F(SocketDirs, WaitsForAHelperThatStartsLater) {
  fake_.SetPreparedDir(hv1::SOCKET_DIR_PLUGIN, "/k/plugins/drv");
  fake_.SetDown(true);
  std::thread up([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    fake_.SetDown(false);
  });
  absl::Status st = Prepare();
  up.join();
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(fake_.CountCalls("PrepareSocketDir"), 2) << "calls made while down are not logged";
}

TEST_F(SocketDirs, GivesUpAtTheDeadlineWithTheHelpersError) {
  fake_.SetDown(true);
  absl::Status st = Prepare(absl::Milliseconds(600));
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_NE(st.message().find("plugin socket directory"), std::string::npos) << st;
}

TEST_F(SocketDirs, AStopRequestEndsTheWait) {
  fake_.SetDown(true);
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
  });
  const absl::Time start = absl::Now();
  absl::Status st = PrepareSocketDirs(*client_, "/k/plugins/drv", start + absl::Seconds(60),
                                      [&] { return stop.load(); });
  stopper.join();
  EXPECT_EQ(st.code(), absl::StatusCode::kCancelled) << st;
  EXPECT_LT(absl::Now() - start, absl::Seconds(30)) << "the 60 s wait was cut short";
}

TEST_F(SocketDirs, AHelperFailureIsNotRetried) {
  fake_.SetPreparedDir(hv1::SOCKET_DIR_PLUGIN, "/k/plugins/drv");
  fake_.FailNext("PrepareSocketDir", grpc::Status(grpc::StatusCode::INTERNAL, "chown: EPERM"));
  absl::Status st = Prepare();
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal) << st;
  EXPECT_NE(st.message().find("chown: EPERM"), std::string::npos) << st;
  EXPECT_EQ(fake_.CountCalls("PrepareSocketDir"), 1);
}

}  // namespace
}  // namespace lbcsi::agent::testing
