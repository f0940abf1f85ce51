// PooledClientFactory: connection sharing by key, idle close, token-file sharing.

#include "lightos/client_pool.h"

#include <thread>

#include <gtest/gtest.h>

#include "tests/lightos/client_test_util.h"
#include "tests/lightos/fake_duros.h"

namespace lbcsi::lightos {
namespace {

using testing::FakeServer;
using testing::PlainTarget;
using testing::Within;

std::shared_ptr<Connection> ConnectionOf(const std::shared_ptr<Client>& client) {
  auto grpc_client = std::dynamic_pointer_cast<GrpcClient>(client);
  return grpc_client ? grpc_client->connection() : nullptr;
}

PoolOptions FastPool(absl::Duration idle, bool janitor) {
  PoolOptions options;
  options.client = testing::FastOptions();
  options.idle_timeout = idle;
  options.start_janitor = janitor;
  return options;
}

TEST(ClientPoolTest, SameClusterSharesOneConnection) {
  FakeServer a, b;
  PooledClientFactory factory(FastPool(absl::Minutes(5), false));
  auto c1 = factory.GetClient(PlainTarget({a.port(), b.port()}, "p1"), {.inline_token = "t-one"});
  auto c2 = factory.GetClient(PlainTarget({a.port(), b.port()}, "p2"), {.inline_token = "t-two"});
  auto c3 = factory.GetClient(PlainTarget({a.port()}), {});
  ClusterTarget tls_target = PlainTarget({a.port(), b.port()});
  tls_target.scheme = MgmtScheme::kGrpcs;
  auto c4 = factory.GetClient(tls_target, {}, TlsOptions{.insecure_skip_verify = true});
  ASSERT_TRUE(c1.ok() && c2.ok() && c3.ok() && c4.ok());
  EXPECT_EQ(ConnectionOf(*c1), ConnectionOf(*c2));
  EXPECT_NE(ConnectionOf(*c1), ConnectionOf(*c3));
  EXPECT_NE(ConnectionOf(*c1), ConnectionOf(*c4));
  EXPECT_EQ(factory.ConnectionCount(), 3u);

  // Each client still sends its own token over the shared channel.
  ASSERT_TRUE((*c1)->CheckVersion(Within(absl::Seconds(10))).ok());
  {
    std::lock_guard<std::mutex> lock(a.fake().mu);
    EXPECT_EQ(a.fake().last_auth["GetVersion"], "Bearer t-one");
  }
  ASSERT_TRUE((*c2)->CheckVersion(Within(absl::Seconds(10))).ok());
  std::lock_guard<std::mutex> lock(a.fake().mu);
  EXPECT_EQ(a.fake().last_auth["GetVersion"], "Bearer t-two");
}

TEST(ClientPoolTest, IdleChannelsAreClosedAndReopenedOnDemand) {
  FakeServer server;
  PooledClientFactory factory(FastPool(absl::Milliseconds(100), false));
  auto client = factory.GetClient(PlainTarget({server.port()}), {});
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->CheckVersion(Within(absl::Seconds(10))).ok());
  EXPECT_EQ(factory.OpenChannelCount(), 1u);

  factory.SweepIdle();  // used just now: stays open
  EXPECT_EQ(factory.OpenChannelCount(), 1u);

  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  factory.SweepIdle();
  EXPECT_EQ(factory.OpenChannelCount(), 0u);
  EXPECT_EQ(factory.ConnectionCount(), 1u);  // still referenced by `client`

  ASSERT_TRUE((*client)->CheckVersion(Within(absl::Seconds(10))).ok());  // reconnects
  EXPECT_EQ(factory.OpenChannelCount(), 1u);

  client = absl::StatusOr<std::shared_ptr<Client>>(absl::CancelledError("dropped"));
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  factory.SweepIdle();
  EXPECT_EQ(factory.ConnectionCount(), 0u);
}

TEST(ClientPoolTest, JanitorClosesIdleChannelsByItself) {
  FakeServer server;
  PooledClientFactory factory(FastPool(absl::Milliseconds(60), true));
  auto client = factory.GetClient(PlainTarget({server.port()}), {});
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->CheckVersion(Within(absl::Seconds(10))).ok());
  bool closed = false;
  for (int i = 0; i < 500 && !closed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    closed = factory.OpenChannelCount() == 0;
  }
  EXPECT_TRUE(closed);
}

TEST(ClientPoolTest, ChannelsAreNotClosedUnderACallInFlight) {
  FakeServer server;
  PooledClientFactory factory(FastPool(absl::Milliseconds(20), false));
  auto client = factory.GetClient(PlainTarget({server.port()}), {});
  ASSERT_TRUE(client.ok());
  server.fake().stall = true;
  absl::Status result;
  std::thread caller([&] { result = (*client)->CheckVersion(Within(absl::Seconds(10))); });
  for (int i = 0; i < 1000 && server.fake().stalled_now.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  factory.SweepIdle();
  EXPECT_EQ(factory.OpenChannelCount(), 1u);
  server.fake().stall = false;
  caller.join();
  EXPECT_TRUE(result.ok()) << result;
}

}  // namespace
}  // namespace lbcsi::lightos
