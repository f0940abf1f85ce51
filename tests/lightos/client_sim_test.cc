// Integration: the LightOS client against the real lightos-sim binary over real
// sockets (plaintext and TLS, tokens, failover with calls in flight, ETag
// conflicts, stalls, state transitions).

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include "common/strings.h"
#include "lightos/client_pool.h"
#include "lightos/grpc_client.h"
#include "tests/lightos/client_test_util.h"
#include "tests/lightos/sim_process.h"

namespace lbcsi::lightos {
namespace {

using ::testing::HasSubstr;
using testing::SimProcess;
using testing::Within;

constexpr char kToken[] = "sim-integration-token";

std::string Msg(const absl::Status& s) {
  return std::string(StdView(s.message()));
}

class SimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/lbcsi-client-sim-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    sim_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  // Starts the emulator with `listeners` plaintext endpoints (or TLS with certs in dir_/certs).
  void Start(std::vector<std::string> extra, int listeners = 1) {
    std::vector<std::string> args = {"--data-dir=" + dir_ + "/data", Cat("--jwt=", kToken),
                                     "--control-listen=127.0.0.1:0"};
    for (int i = 0; i < listeners; ++i) args.push_back("--listen=127.0.0.1:0");
    args.insert(args.end(), extra.begin(), extra.end());
    sim_ = std::make_unique<SimProcess>(LBCSI_SIM_BINARY, dir_ + "/sim", args);
    ASSERT_TRUE(sim_->WaitReady()) << sim_->Log();
  }

  ClusterTarget Target(MgmtScheme scheme = MgmtScheme::kGrpc) {
    ClusterTarget target = testing::PlainTarget(sim_->Ports(), "default");
    target.scheme = scheme;
    return target;
  }

  std::shared_ptr<GrpcClient> Client(TokenSource token = {.inline_token = kToken},
                                     GrpcClientOptions options = testing::FastOptions(),
                                     MgmtScheme scheme = MgmtScheme::kGrpc) {
    auto client = GrpcClient::Create(Target(scheme), token, options);
    EXPECT_TRUE(client.ok()) << client.status();
    return *client;
  }

  // POSTs/PUTs to the emulator's control endpoint.
  bool Control(const std::string& method, const std::string& path, const std::string& body = "") {
    std::string control = sim_->Control();
    httplib::Client http(control.substr(0, control.rfind(':')),
                         std::stoi(control.substr(control.rfind(':') + 1)));
    httplib::Headers headers = {{"Authorization", Cat("Bearer ", kToken)}};
    httplib::Result res = method == "PUT" ? http.Put(path, headers, body, "application/json")
                                          : http.Post(path, headers, body, "application/json");
    return res && res->status == 200;
  }

  std::string dir_;
  std::unique_ptr<SimProcess> sim_;
};

TEST_F(SimTest, VolumeLifecycleThroughEveryState) {
  Start({"--create-delay-ms=150", "--delete-delay-ms=150"});
  auto client = Client();
  ASSERT_TRUE(client->CheckVersion(Within(absl::Seconds(10))).ok());
  auto before = client->GetClusterInfo(Within(absl::Seconds(10)));
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_FALSE(before->subsystem_nqn.empty());

  CreateVolumeSpec spec{.name = "pvc-life", .size_bytes = (1ull << 30) + 1, .replica_count = 1};
  auto created = client->CreateVolume(spec, Within(absl::Seconds(20)));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->state, VolumeState::kAvailable);
  EXPECT_TRUE(created->Usable());
  EXPECT_EQ(created->size_bytes % 4096, 0u);  // rounded up to 4 KiB
  EXPECT_GE(created->size_bytes, spec.size_bytes);
  EXPECT_EQ(created->written_bytes, 0u);

  auto after = client->GetClusterInfo(Within(absl::Seconds(10)));
  ASSERT_TRUE(after.ok());
  EXPECT_LT(after->free_logical_bytes, before->free_logical_bytes);

  EXPECT_EQ(client->CreateVolume(spec, Within(absl::Seconds(10))).status().code(),
            absl::StatusCode::kAlreadyExists);
  auto by_name = client->GetVolumeByName("pvc-life", Within(absl::Seconds(10)));
  ASSERT_TRUE(by_name.ok()) << by_name.status();
  EXPECT_EQ(by_name->uuid, created->uuid);

  auto published = client->UpdateVolumeAcl(
      created->uuid,
      [](auto& acl) {
        acl.push_back("nqn.2019-09.com.lightbitslabs:host:n1.node");
        return true;
      },
      Within(absl::Seconds(10)));
  ASSERT_TRUE(published.ok()) << published.status();
  EXPECT_THAT(published->acl, ::testing::ElementsAre("nqn.2019-09.com.lightbitslabs:host:n1.node"));

  auto grown = client->ResizeVolume(created->uuid, 2ull << 30, Within(absl::Seconds(20)));
  ASSERT_TRUE(grown.ok()) << grown.status();
  EXPECT_GE(grown->size_bytes, 2ull << 30);

  auto snap = client->CreateSnapshot("snap-life", created->uuid, Within(absl::Seconds(20)));
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_EQ(snap->state, SnapshotState::kAvailable);
  auto restored = client->CreateVolume(
      {.name = "pvc-restored", .size_bytes = snap->size_bytes, .source_snapshot_uuid = snap->uuid},
      Within(absl::Seconds(20)));
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->source_snapshot_uuid, snap->uuid);

  ASSERT_TRUE(client->DeleteVolume(restored->uuid, Within(absl::Seconds(20))).ok());
  absl::Status del_snap = client->DeleteSnapshot(snap->uuid, Within(absl::Seconds(20)));
  ASSERT_TRUE(del_snap.ok()) << del_snap;
  absl::Status del = client->DeleteVolume(created->uuid, Within(absl::Seconds(20)));
  ASSERT_TRUE(del.ok()) << del;
  auto gone = client->GetVolume(created->uuid, Within(absl::Seconds(10)));
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(gone.status()), HasSubstr(Cat("GetVolume ", created->uuid)));
  EXPECT_EQ(client->DeleteVolume(created->uuid, Within(absl::Seconds(10))).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SimTest, TokensGoodBadAndFromARotatedFile) {
  Start({});
  EXPECT_EQ(
      Client({.inline_token = "not-the-token"})->CheckVersion(Within(absl::Seconds(10))).code(),
      absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Client({})->CheckVersion(Within(absl::Seconds(10))).code(),
            absl::StatusCode::kUnauthenticated);
  std::string file = dir_ + "/jwt";
  { std::ofstream(file) << "stale-token\n"; }
  auto client = Client({.token_file = file});
  EXPECT_EQ(client->CheckVersion(Within(absl::Seconds(10))).code(),
            absl::StatusCode::kUnauthenticated);
  { std::ofstream(file + ".new") << kToken << "\n"; }
  std::filesystem::rename(file + ".new", file);
  EXPECT_TRUE(client->CheckVersion(Within(absl::Seconds(10))).ok());
}

TEST_F(SimTest, TlsVerifiedWrongCaAndSkipVerify) {
  std::string certs = dir_ + "/certs";
  ASSERT_EQ(testing::RunToCompletion(LBCSI_SIM_BINARY, {"gen-certs", "--dir=" + certs}), 0);
  std::string other = dir_ + "/other";
  ASSERT_EQ(testing::RunToCompletion(LBCSI_SIM_BINARY, {"gen-certs", "--dir=" + other}), 0);
  Start({"--tls-cert=" + certs + "/server.crt", "--tls-key=" + certs + "/server.key"});

  GrpcClientOptions good = testing::FastOptions();
  good.connection.tls.ca_bundle_file = certs + "/ca.crt";
  EXPECT_TRUE(Client({.inline_token = kToken}, good, MgmtScheme::kGrpcs)
                  ->CheckVersion(Within(absl::Seconds(10)))
                  .ok());

  GrpcClientOptions named = good;  // the certificate also names "localhost"
  named.connection.tls.server_name_override = "localhost";
  EXPECT_TRUE(Client({.inline_token = kToken}, named, MgmtScheme::kGrpcs)
                  ->CheckVersion(Within(absl::Seconds(10)))
                  .ok());

  GrpcClientOptions wrong = testing::FastOptions();
  wrong.connection.tls.ca_bundle_file = other + "/ca.crt";
  EXPECT_EQ(Client({.inline_token = kToken}, wrong, MgmtScheme::kGrpcs)
                ->CheckVersion(Within(absl::Seconds(10)))
                .code(),
            absl::StatusCode::kUnavailable);

  GrpcClientOptions skip = wrong;
  skip.connection.tls.insecure_skip_verify = true;
  EXPECT_TRUE(Client({.inline_token = kToken}, skip, MgmtScheme::kGrpcs)
                  ->CheckVersion(Within(absl::Seconds(10)))
                  .ok());

  // Plaintext against the TLS port fails cleanly.
  EXPECT_EQ(Client()->CheckVersion(Within(absl::Seconds(5))).code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(SimTest, FailoverWhileCallsAreInFlight) {
  Start({}, /*listeners=*/2);
  auto client = Client();
  auto volume =
      client->CreateVolume({.name = "fo", .size_bytes = 1 << 30}, Within(absl::Seconds(10)));
  ASSERT_TRUE(volume.ok()) << volume.status();
  // Slow reads on endpoint 0 so that calls are in flight there when it stops.
  ASSERT_TRUE(Control("PUT", "/v1/faults",
                      R"({"rpcs": {"GetVolume": {"latency_ms": 300, "endpoints": [0]}}})"));
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::string first_error;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        absl::Status st = client->GetVolume(volume->uuid, Within(absl::Seconds(10))).status();
        if (st.ok()) {
          ++ok;
        } else {
          ++failed;
          std::lock_guard<std::mutex> lock(mu);
          if (first_error.empty()) first_error = st.ToString();
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  ASSERT_TRUE(Control("POST", "/v1/endpoints/0/stop"));
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_GT(ok.load(), 4);
  EXPECT_EQ(client->connection()->LastGoodEndpoint(), Cat("127.0.0.1:", sim_->Ports()[1]));
}

TEST_F(SimTest, TwoWritersConflictOnEtagsAndLoseNothing) {
  Start({});
  auto a = Client();
  auto b = Client();  // separate connections: two independent writers
  auto volume = a->CreateVolume({.name = "etag", .size_bytes = 1 << 30}, Within(absl::Seconds(10)));
  ASSERT_TRUE(volume.ok()) << volume.status();
  auto writer = [&](std::shared_ptr<GrpcClient> client, std::string prefix) {
    for (int i = 0; i < 8; ++i) {
      std::string nqn = Cat(prefix, i);
      auto st = client->UpdateVolumeAcl(
          volume->uuid,
          [&](auto& acl) {
            acl.push_back(nqn);
            return true;
          },
          Within(absl::Seconds(20)));
      EXPECT_TRUE(st.ok()) << st.status();
    }
  };
  std::thread t1(writer, a, "nqn.a-");
  std::thread t2(writer, b, "nqn.b-");
  t1.join();
  t2.join();
  auto final_volume = a->GetVolume(volume->uuid, Within(absl::Seconds(10)));
  ASSERT_TRUE(final_volume.ok());
  EXPECT_EQ(final_volume->acl.size(), 16u) << ::testing::PrintToString(final_volume->acl);
}

TEST_F(SimTest, StalledServerDoesNotOutliveTheDeadline) {
  Start({}, /*listeners=*/2);
  auto client = Client();
  ASSERT_TRUE(Control("PUT", "/v1/faults", R"({"rpcs": {"GetVersion": {"stall": true}}})"));
  absl::Time start = absl::Now();
  absl::Status st = client->CheckVersion(Within(absl::Milliseconds(500)));
  EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded) << st;
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
}

TEST_F(SimTest, VolumeEndingInFailedIsInternalNamingIt) {
  std::string faults = dir_ + "/faults.json";
  { std::ofstream(faults) << R"({"fail_volume_names": ["broken-*"]})"; }
  Start({"--faults=" + faults, "--create-delay-ms=50"});
  auto client = Client();
  auto v =
      client->CreateVolume({.name = "broken-1", .size_bytes = 1 << 30}, Within(absl::Seconds(10)));
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInternal) << v.status();
  EXPECT_THAT(Msg(v.status()), HasSubstr("broken-1"));
}

TEST_F(SimTest, PoolSharesConnectionsAgainstTheEmulator) {
  Start({});
  PoolOptions options;
  options.client = testing::FastOptions();
  options.start_janitor = false;
  PooledClientFactory factory(options);
  auto c1 = factory.GetClient(Target(), {.inline_token = kToken});
  auto c2 = factory.GetClient(Target(), {.inline_token = kToken});
  ASSERT_TRUE(c1.ok() && c2.ok());
  EXPECT_TRUE((*c1)->CheckVersion(Within(absl::Seconds(10))).ok());
  EXPECT_TRUE((*c2)->CheckVersion(Within(absl::Seconds(10))).ok());
  EXPECT_EQ(factory.ConnectionCount(), 1u);
  EXPECT_EQ(factory.OpenChannelCount(), 1u);
}

}  // namespace
}  // namespace lbcsi::lightos
