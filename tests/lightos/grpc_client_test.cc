// GrpcClient against an in-process fake DurosAPI server over real sockets.

#include "lightos/grpc_client.h"

#include <barrier>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/strings.h"
#include "tests/lightos/client_test_util.h"
#include "tests/lightos/fake_duros.h"

namespace lbcsi::lightos {
namespace {

using testing::FakeServer;
using testing::FastOptions;
using ::testing::HasSubstr;
using testing::PlainTarget;
using ::testing::UnorderedElementsAre;
using testing::Within;

std::string Msg(const absl::Status& s) {
  return std::string(StdView(s.message()));
}

std::shared_ptr<GrpcClient> MakeClient(const ClusterTarget& target, TokenSource token = {},
                                       GrpcClientOptions options = FastOptions()) {
  auto client = GrpcClient::Create(target, token, options);
  EXPECT_TRUE(client.ok()) << client.status();
  return *client;
}

TEST(GrpcClientTest, SendsBearerTokenAndChecksVersion) {
  FakeServer server;
  server.fake().required_token = "tok-abc.def";
  auto client = MakeClient(PlainTarget({server.port()}), {.inline_token = "tok-abc.def\n"});
  ASSERT_TRUE(client->CheckVersion(Within(absl::Seconds(10))).ok());
  std::lock_guard<std::mutex> lock(server.fake().mu);
  EXPECT_EQ(server.fake().last_auth["GetVersion"], "Bearer tok-abc.def");
}

TEST(GrpcClientTest, RefusesOtherApiVersions) {
  FakeServer server;
  server.fake().api_version = "v3.1";
  auto client = MakeClient(PlainTarget({server.port()}));
  absl::Status st = client->CheckVersion(Within(absl::Seconds(10)));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(st), HasSubstr("v3.1"));
  EXPECT_THAT(Msg(st), HasSubstr("v2.0"));
  EXPECT_THAT(Msg(st), HasSubstr(server.address()));
}

TEST(GrpcClientTest, BadTokenIsUnauthenticatedAndNeverEchoed) {
  FakeServer server;
  server.fake().required_token = "the-right-token";
  auto client = MakeClient(PlainTarget({server.port()}), {.inline_token = "wrong-token-secret"});
  absl::Status st = client->CheckVersion(Within(absl::Seconds(10)));
  EXPECT_EQ(st.code(), absl::StatusCode::kUnauthenticated);
  // The fake echoes the header it got, as a careless server might; we scrub it.
  EXPECT_THAT(Msg(st), ::testing::Not(HasSubstr("wrong-token-secret")));
}

TEST(GrpcClientTest, TokenFileRotationReachesTheWire) {
  FakeServer server;
  std::string dir = ::testing::TempDir() + "/lbcsi-client-token";
  std::filesystem::create_directories(dir);
  std::string file = dir + "/jwt";
  { std::ofstream(file) << "token-one-1111\n"; }
  auto client = MakeClient(PlainTarget({server.port()}), {.token_file = file});
  ASSERT_TRUE(client->CheckVersion(Within(absl::Seconds(10))).ok());
  {
    std::lock_guard<std::mutex> lock(server.fake().mu);
    EXPECT_EQ(server.fake().last_auth["GetVersion"], "Bearer token-one-1111");
  }
  { std::ofstream(file + ".new") << "token-two-22222\n"; }
  std::filesystem::rename(file + ".new", file);
  ASSERT_TRUE(client->CheckVersion(Within(absl::Seconds(10))).ok());
  std::lock_guard<std::mutex> lock(server.fake().mu);
  EXPECT_EQ(server.fake().last_auth["GetVersion"], "Bearer token-two-22222");
  std::filesystem::remove_all(dir);
}

TEST(GrpcClientTest, ClusterInfoMergesBothRpcs) {
  FakeServer server;
  server.fake().free_bytes = 123456789;
  auto client = MakeClient(PlainTarget({server.port()}));
  auto info = client->GetClusterInfo(Within(absl::Seconds(10)));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->subsystem_nqn, "nqn.2016-01.com.lightbitslabs:uuid:c0ffee");
  EXPECT_THAT(info->nvme_endpoints, ::testing::ElementsAre("10.0.0.1:4420"));
  EXPECT_THAT(info->discovery_endpoints, ::testing::ElementsAre("10.0.0.1:8009"));
  EXPECT_EQ(info->current_max_replicas, 3u);
  EXPECT_EQ(info->free_logical_bytes, 123456789u);
}

TEST(GrpcClientTest, CreateSendsWireEncodingsAndWaitsForAvailable) {
  FakeServer server;
  server.fake().creating_reads = 3;
  auto client = MakeClient(PlainTarget({server.port()}, "proj-a"));
  CreateVolumeSpec spec;
  spec.name = "pvc-1";
  spec.size_bytes = 10737418240ull;
  spec.replica_count = 2;
  spec.compression = true;
  spec.labels = {{"node", "n1"}};
  auto volume = client->CreateVolume(spec, Within(absl::Seconds(10)));
  ASSERT_TRUE(volume.ok()) << volume.status();
  EXPECT_EQ(volume->state, VolumeState::kAvailable);
  EXPECT_TRUE(volume->Usable());
  EXPECT_EQ(volume->name, "pvc-1");
  EXPECT_TRUE(volume->compression);
  EXPECT_THAT(volume->acl, ::testing::ElementsAre(kAclAllowNone));
  EXPECT_GE(server.fake().Calls("GetVolume"), 3);
  std::lock_guard<std::mutex> lock(server.fake().mu);
  const auto& req = server.fake().last_create;
  EXPECT_EQ(req.size(), "10737418240b");
  EXPECT_EQ(req.compression(), "true");
  EXPECT_EQ(req.projectname(), "proj-a");
  EXPECT_EQ(req.replicacount(), 2u);
  ASSERT_EQ(req.labels_size(), 1);
  EXPECT_EQ(req.labels(0).key(), "node");
}

TEST(GrpcClientTest, CreateOfTakenNameIsAlreadyExists) {
  FakeServer server;
  auto client = MakeClient(PlainTarget({server.port()}, "default"));
  CreateVolumeSpec spec{.name = "dup", .size_bytes = 1 << 30};
  ASSERT_TRUE(client->CreateVolume(spec, Within(absl::Seconds(10))).ok());
  auto again = client->CreateVolume(spec, Within(absl::Seconds(10)));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Msg(again.status()), HasSubstr("CreateVolume dup"));
  auto found = client->GetVolumeByName("dup", Within(absl::Seconds(10)));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->name, "dup");
  EXPECT_EQ(client->GetVolumeByName("nope", Within(absl::Seconds(10))).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(GrpcClientTest, CreateEndingInFailedIsInternalNamingTheVolume) {
  FakeServer server;
  server.fake().creating_reads = 1;
  server.fake().create_fails = true;
  auto client = MakeClient(PlainTarget({server.port()}));
  auto volume =
      client->CreateVolume({.name = "doomed", .size_bytes = 1 << 30}, Within(absl::Seconds(10)));
  EXPECT_EQ(volume.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Msg(volume.status()), HasSubstr("doomed"));
  EXPECT_THAT(Msg(volume.status()), HasSubstr("Failed"));
}

TEST(GrpcClientTest, CreateStuckInCreatingRespectsTheDeadline) {
  FakeServer server;
  server.fake().creating_reads = 1000000;
  auto client = MakeClient(PlainTarget({server.port()}));
  absl::Time start = absl::Now();
  auto volume = client->CreateVolume({.name = "slow", .size_bytes = 1 << 30},
                                     Within(absl::Milliseconds(300)));
  EXPECT_EQ(volume.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(Msg(volume.status()), HasSubstr("Creating"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));  // bounded, with generous slack
}

TEST(GrpcClientTest, DeleteWaitsUntilGone) {
  FakeServer server;
  server.fake().deleting_reads = 3;
  server.fake().AddVolume("6bb3a1f0-0000-4000-8000-00000000aaaa", "v");
  auto client = MakeClient(PlainTarget({server.port()}));
  ASSERT_TRUE(
      client->DeleteVolume("6bb3a1f0-0000-4000-8000-00000000aaaa", Within(absl::Seconds(10))).ok());
  EXPECT_GE(server.fake().Calls("GetVolume"), 4);
  std::lock_guard<std::mutex> lock(server.fake().mu);
  EXPECT_TRUE(server.fake().volumes.empty());
}

TEST(GrpcClientTest, DeleteOfMissingVolumeIsNotFoundNamingEndpointAndVolume) {
  FakeServer server;
  auto client = MakeClient(PlainTarget({server.port()}));
  absl::Status st =
      client->DeleteVolume("6bb3a1f0-0000-4000-8000-00000000bbbb", Within(absl::Seconds(10)));
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(st), HasSubstr(Cat("LightOS ", server.address(),
                                     ": DeleteVolume 6bb3a1f0-0000-4000-8000-00000000bbbb: ")));
}

TEST(GrpcClientTest, DeleteInternalErrorReadsTheVolumeToExplain) {
  FakeServer server;
  server.fake().AddVolume("6bb3a1f0-0000-4000-8000-00000000cccc", "v");
  server.fake().faults["DeleteVolume"] = {grpc::StatusCode::INTERNAL, "cannot delete", -1};
  auto client = MakeClient(PlainTarget({server.port()}));
  absl::Status st =
      client->DeleteVolume("6bb3a1f0-0000-4000-8000-00000000cccc", Within(absl::Seconds(10)));
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(Msg(st), HasSubstr("cannot delete"));
  EXPECT_THAT(Msg(st), HasSubstr("volume state Available"));
  EXPECT_GE(server.fake().Calls("GetVolume"), 1);
}

TEST(GrpcClientTest, ErrorCodesMapToCsiCodes) {
  struct Case {
    grpc::StatusCode server;
    absl::StatusCode want;
  };
  for (const Case& c :
       {Case{grpc::StatusCode::NOT_FOUND, absl::StatusCode::kNotFound},
        Case{grpc::StatusCode::PERMISSION_DENIED, absl::StatusCode::kPermissionDenied},
        Case{grpc::StatusCode::INVALID_ARGUMENT, absl::StatusCode::kInvalidArgument},
        Case{grpc::StatusCode::FAILED_PRECONDITION, absl::StatusCode::kFailedPrecondition},
        Case{grpc::StatusCode::RESOURCE_EXHAUSTED, absl::StatusCode::kResourceExhausted},
        Case{grpc::StatusCode::UNKNOWN, absl::StatusCode::kInternal},
        Case{grpc::StatusCode::UNIMPLEMENTED, absl::StatusCode::kInternal},
        Case{grpc::StatusCode::DATA_LOSS, absl::StatusCode::kInternal},
        Case{grpc::StatusCode::UNAVAILABLE, absl::StatusCode::kUnavailable}}) {
    FakeServer server;
    server.fake().faults["GetVolume"] = {c.server, "", -1};
    auto client = MakeClient(PlainTarget({server.port()}));
    auto v = client->GetVolume("6bb3a1f0-0000-4000-8000-00000000dddd", Within(absl::Seconds(10)));
    EXPECT_EQ(v.status().code(), c.want) << static_cast<int>(c.server);
    EXPECT_THAT(Msg(v.status()), HasSubstr("6bb3a1f0-0000-4000-8000-00000000dddd"));
    EXPECT_THAT(Msg(v.status()), HasSubstr(server.address()));
  }
}

TEST(GrpcClientTest, FailsOverFromRefusingEndpointAndRemembersTheGoodOne) {
  FakeServer good;
  int dead = testing::RefusingPort();
  auto client = MakeClient(PlainTarget({dead, good.port()}));
  ASSERT_TRUE(client->CheckVersion(Within(absl::Seconds(10))).ok());
  EXPECT_EQ(client->connection()->LastGoodEndpoint(), good.address());
  ASSERT_TRUE(client->CheckVersion(Within(absl::Seconds(10))).ok());
  EXPECT_EQ(good.fake().Calls("GetVersion"), 2);
}

TEST(GrpcClientTest, FailsOverOnUnavailableButNotOnOtherCodes) {
  FakeServer first, second;
  second.fake().AddVolume("6bb3a1f0-0000-4000-8000-00000000eeee", "v");
  first.fake().faults["GetVolume"] = {grpc::StatusCode::UNAVAILABLE, "busy", -1};
  auto client = MakeClient(PlainTarget({first.port(), second.port()}));
  auto v = client->GetVolume("6bb3a1f0-0000-4000-8000-00000000eeee", Within(absl::Seconds(10)));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(first.fake().Calls("GetVolume"), 1);

  // NOT_FOUND from the endpoint in use is an answer, not a reason to move on.
  auto missing =
      client->GetVolume("6bb3a1f0-0000-4000-8000-0000000000ff", Within(absl::Seconds(10)));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(first.fake().Calls("GetVolume"), 1);
}

TEST(GrpcClientTest, AllEndpointsDownIsUnavailableNamingThem) {
  int a = testing::RefusingPort(), b = testing::RefusingPort();
  auto client = MakeClient(PlainTarget({a, b}));
  absl::Status st = client->CheckVersion(Within(absl::Seconds(10)));
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Msg(st), HasSubstr(Cat("127.0.0.1:", a)));
  EXPECT_THAT(Msg(st), HasSubstr(Cat("127.0.0.1:", b)));
}

TEST(GrpcClientTest, CallsInFlightFailOverWhenTheirServerGoesAway) {
  auto first = std::make_unique<FakeServer>();
  FakeServer second;
  const std::string uuid = "6bb3a1f0-0000-4000-8000-000000000f0f";
  first->fake().AddVolume(uuid, "v");
  second.fake().AddVolume(uuid, "v");
  auto client = MakeClient(PlainTarget({first->port(), second.port()}));
  ASSERT_TRUE(client->CheckVersion(Within(absl::Seconds(10))).ok());  // first is now "last good"

  first->fake().stall = true;
  constexpr int kCalls = 4;
  std::vector<absl::Status> results(kCalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back(
        [&, i] { results[i] = client->GetVolume(uuid, Within(absl::Seconds(20))).status(); });
  }
  for (int i = 0; i < 2000 && first->fake().stalled_now.load() < kCalls; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(first->fake().stalled_now.load(), kCalls);
  first->Stop();  // in-flight calls are cut off
  for (auto& t : threads) t.join();
  for (const auto& st : results) EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(second.fake().Calls("GetVolume"), kCalls);
  EXPECT_EQ(client->connection()->LastGoodEndpoint(), second.address());
}

TEST(GrpcClientTest, StalledServerCannotOutliveTheDeadline) {
  FakeServer a, b;
  a.fake().stall = true;
  b.fake().stall = true;
  auto client = MakeClient(PlainTarget({a.port(), b.port()}));
  absl::Time start = absl::Now();
  auto v =
      client->GetVolume("6bb3a1f0-0000-4000-8000-000000001234", Within(absl::Milliseconds(400)));
  EXPECT_EQ(v.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));  // not 2 x deadline, not forever
  a.fake().stall = false;
  b.fake().stall = false;
}

TEST(GrpcClientTest, ExpiredDeadlineFailsWithoutCalling) {
  FakeServer server;
  auto client = MakeClient(PlainTarget({server.port()}));
  absl::Status st = client->CheckVersion(CallOptions{absl::Now() - absl::Seconds(1)});
  EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(server.fake().Calls("GetVersion"), 0);
}

TEST(GrpcClientTest, AclUpdateSendsIfMatchAndRetriesAStaleEtag) {
  FakeServer server;
  const std::string uuid = "6bb3a1f0-0000-4000-8000-000000000a01";
  server.fake().AddVolume(uuid, "v");
  auto client = MakeClient(PlainTarget({server.port()}));
  bool bumped = false;
  auto v = client->UpdateVolumeAcl(
      uuid,
      [&](std::vector<std::string>& acl) {
        if (!bumped) {  // simulate the concurrent writer between read and write
          bumped = true;
          std::lock_guard<std::mutex> lock(server.fake().mu);
          server.fake().volumes[uuid].set_etag("77");
        }
        acl.push_back("nqn.2019-09.com.lightbitslabs:host:n1.node");
        return true;
      },
      Within(absl::Seconds(10)));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(v->acl, ::testing::ElementsAre("nqn.2019-09.com.lightbitslabs:host:n1.node"));
  std::lock_guard<std::mutex> lock(server.fake().mu);
  EXPECT_EQ(server.fake().etag_conflicts, 1);
  EXPECT_THAT(server.fake().if_match_seen, ::testing::ElementsAre("1", "77"));
}

TEST(GrpcClientTest, TwoConcurrentWritersLoseNoUpdate) {
  FakeServer server;
  const std::string uuid = "6bb3a1f0-0000-4000-8000-000000000a02";
  server.fake().AddVolume(uuid, "v");
  // Hold the first two read replies until both reads are done, so both writers
  // start from the same ETag and one of them must conflict.
  std::barrier sync(2);
  std::atomic<int> reads{0};
  server.fake().after = [&](const std::string& rpc) {
    if (rpc == "GetVolume" && reads.fetch_add(1) < 2) sync.arrive_and_wait();
  };
  auto client = MakeClient(PlainTarget({server.port()}));
  auto add = [&](std::string nqn) {
    return client
        ->UpdateVolumeAcl(
            uuid,
            [nqn](std::vector<std::string>& acl) {
              acl.push_back(nqn);
              return true;
            },
            Within(absl::Seconds(10)))
        .status();
  };
  absl::Status s1, s2;
  std::thread t1([&] { s1 = add("nqn.host-1"); });
  std::thread t2([&] { s2 = add("nqn.host-2"); });
  t1.join();
  t2.join();
  ASSERT_TRUE(s1.ok()) << s1;
  ASSERT_TRUE(s2.ok()) << s2;
  std::lock_guard<std::mutex> lock(server.fake().mu);
  EXPECT_GE(server.fake().etag_conflicts, 1)
      << ::testing::PrintToString(server.fake().if_match_seen) << " reads " << reads.load();
  const auto& acl = server.fake().volumes[uuid].acl().values();
  EXPECT_THAT(std::vector<std::string>(acl.begin(), acl.end()),
              UnorderedElementsAre("nqn.host-1", "nqn.host-2"));  // ALLOW_NONE dropped
}

TEST(GrpcClientTest, AclBackToAllowNoneWhenEmptyAndNoWriteWhenUnchanged) {
  FakeServer server;
  const std::string uuid = "6bb3a1f0-0000-4000-8000-000000000a03";
  server.fake().AddVolume(uuid, "v");
  auto client = MakeClient(PlainTarget({server.port()}));
  auto add = client->UpdateVolumeAcl(
      uuid,
      [](auto& acl) {
        acl.push_back("nqn.h");
        return true;
      },
      Within(absl::Seconds(10)));
  ASSERT_TRUE(add.ok());
  auto remove = client->UpdateVolumeAcl(
      uuid,
      [](auto& acl) {
        std::erase(acl, "nqn.h");
        return true;
      },
      Within(absl::Seconds(10)));
  ASSERT_TRUE(remove.ok());
  EXPECT_THAT(remove->acl, ::testing::ElementsAre(kAclAllowNone));
  int updates = server.fake().Calls("UpdateVolume");
  auto same = client->UpdateVolumeAcl(
      uuid, [](auto&) { return true; }, Within(absl::Seconds(10)));
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(server.fake().Calls("UpdateVolume"), updates);
}

TEST(GrpcClientTest, PersistentPreconditionFailureStopsAtTheDeadline) {
  FakeServer server;
  const std::string uuid = "6bb3a1f0-0000-4000-8000-000000000a04";
  server.fake().AddVolume(uuid, "v");
  server.fake().faults["UpdateVolume"] = {grpc::StatusCode::FAILED_PRECONDITION, "bad state", -1};
  auto client = MakeClient(PlainTarget({server.port()}));
  absl::Time start = absl::Now();
  auto v = client->ResizeVolume(uuid, 2ull << 30, Within(absl::Milliseconds(300)));
  EXPECT_FALSE(v.ok());
  EXPECT_THAT(Msg(v.status()), HasSubstr("bad state"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_GE(server.fake().Calls("UpdateVolume"), 2);
}

TEST(GrpcClientTest, ResizeSendsPlainBytesAndNeverShrinks) {
  FakeServer server;
  const std::string uuid = "6bb3a1f0-0000-4000-8000-000000000a05";
  server.fake().AddVolume(uuid, "v");  // 1 GiB
  auto client = MakeClient(PlainTarget({server.port()}));
  auto grown = client->ResizeVolume(uuid, 2147483648ull, Within(absl::Seconds(10)));
  ASSERT_TRUE(grown.ok()) << grown.status();
  EXPECT_EQ(grown->size_bytes, 2147483648ull);
  {
    std::lock_guard<std::mutex> lock(server.fake().mu);
    EXPECT_EQ(server.fake().last_update.size(), "2147483648");
    EXPECT_FALSE(server.fake().last_update.has_acl());
  }
  int updates = server.fake().Calls("UpdateVolume");
  auto same = client->ResizeVolume(uuid, 1 << 30, Within(absl::Seconds(10)));
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->size_bytes, 2147483648ull);
  EXPECT_EQ(server.fake().Calls("UpdateVolume"), updates);
}

TEST(GrpcClientTest, QosPolicyUpdate) {
  FakeServer server;
  const std::string uuid = "6bb3a1f0-0000-4000-8000-000000000a06";
  server.fake().AddVolume(uuid, "v");
  auto client = MakeClient(PlainTarget({server.port()}));
  auto v = client->SetQosPolicy(uuid, "gold", Within(absl::Seconds(10)));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->qos_policy_name, "gold");
}

TEST(GrpcClientTest, SnapshotLifecycle) {
  FakeServer server;
  const std::string vol = "6bb3a1f0-0000-4000-8000-000000000b01";
  server.fake().AddVolume(vol, "v");
  auto client = MakeClient(PlainTarget({server.port()}));
  auto snap = client->CreateSnapshot("snap-1", vol, Within(absl::Seconds(10)));
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_EQ(snap->state, SnapshotState::kAvailable);
  EXPECT_EQ(snap->source_volume_uuid, vol);
  auto by_name = client->GetSnapshotByName("snap-1", Within(absl::Seconds(10)));
  ASSERT_TRUE(by_name.ok());
  EXPECT_EQ(by_name->uuid, snap->uuid);
  auto listed = client->ListSnapshots({}, vol, Within(absl::Seconds(10)));
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 1u);
  auto other =
      client->ListSnapshots({}, "6bb3a1f0-0000-4000-8000-000000000b02", Within(absl::Seconds(10)));
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->empty());
  ASSERT_TRUE(client->DeleteSnapshot(snap->uuid, Within(absl::Seconds(10))).ok());
  EXPECT_EQ(client->GetSnapshot(snap->uuid, Within(absl::Seconds(10))).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(GrpcClientTest, ListVolumesConverts) {
  FakeServer server;
  server.fake().AddVolume("6bb3a1f0-0000-4000-8000-000000000c01", "a");
  server.fake().AddVolume("6bb3a1f0-0000-4000-8000-000000000c02", "b");
  auto client = MakeClient(PlainTarget({server.port()}));
  auto all = client->ListVolumes({}, Within(absl::Seconds(10)));
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].protection, ProtectionState::kFullyProtected);
}

}  // namespace
}  // namespace lbcsi::lightos
