// Small pieces: sizes, capabilities, names, in-flight guard, list tokens,
// --cluster parsing, metrics registry/exporter, the timing decorator.
#include <gmock/gmock.h>
#include <httplib.h>

#include "controller/inflight.h"
#include "controller/list_token.h"
#include "controller/options.h"
#include "controller/timing_client.h"
#include "controller/validation.h"
#include "metrics/http_exporter.h"
#include "tests/controller/fake_lightos.h"

namespace lbcsi::controller {
namespace {

TEST(ValidationTest, ChooseSize) {
  EXPECT_EQ(*ChooseSize({0, 0}, "c"), kGiB);
  EXPECT_EQ(*ChooseSize({kGiB + 1, 0}, "c"), 2 * kGiB);
  EXPECT_EQ(*ChooseSize({0, 5 * kGiB}, "c"), kGiB);
  EXPECT_EQ(ChooseSize({0, kGiB - 1}, "c").status().code(), absl::StatusCode::kOutOfRange);
  uint64_t big = static_cast<uint64_t>(INT64_MAX);
  EXPECT_TRUE(ChooseSize({big / kGiB * kGiB, 0}, "c").ok());
  // Rounded up to whole GiB it would pass INT64_MAX, which CSI cannot report.
  EXPECT_EQ(ChooseSize({big, 0}, "c").status().code(), absl::StatusCode::kOutOfRange);
}

TEST(ValidationTest, MountFlagsAllowList) {
  for (const char* f :
       {"noatime", "nodiratime", "discard", "nouuid", "ro", "nosuid", "nodev", "noexec"}) {
    EXPECT_TRUE(IsAllowedMountFlag(f)) << f;
  }
  for (const char* f : {"exec", "suid", "dev", "context=x", "bind", "remount", ""}) {
    EXPECT_FALSE(IsAllowedMountFlag(f)) << f;
  }
}

TEST(ValidationTest, Names) {
  EXPECT_EQ(LightosNameFor("pvc-0a1b"), "pvc-0a1b");
  std::string mapped = LightosNameFor("a b");
  EXPECT_TRUE(IsValidLightosName(mapped));
  EXPECT_NE(mapped, LightosNameFor("a_b"));
  EXPECT_NE(LightosNameFor("a b"), LightosNameFor("a+b"));  // hashed, not only sanitized
  EXPECT_TRUE(IsValidLightosName(CloneSnapshotName(std::string(253, 'x'))));
  EXPECT_EQ(CloneSnapshotName("pvc-1"), "lbcsi-clone-pvc-1");
  EXPECT_FALSE(CheckCsiName(std::string(129, 'a'), "name").ok());
  EXPECT_FALSE(CheckCsiName("a\xc2\x85", "name").ok());
  EXPECT_TRUE(CheckCsiName("ünïcode ok", "name").ok());
}

TEST(InflightTest, SecondHolderIsAbortedUntilReleased) {
  Inflight in;
  {
    auto a = in.Acquire("k", "volume k");
    ASSERT_TRUE(a.ok());
    auto b = in.Acquire("k", "volume k");
    EXPECT_EQ(b.status().code(), absl::StatusCode::kAborted);
    EXPECT_TRUE(in.Acquire("other", "o").ok());
  }
  EXPECT_EQ(in.size(), 0u);
  EXPECT_TRUE(in.Acquire("k", "volume k").ok());
}

TEST(ListTokenTest, RoundTripAndRejects) {
  ListPosition p{1, "00000000-0000-4000-8000-000000000007"};
  auto back = DecodeListToken(EncodeListToken(p), 2);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->cluster, 1u);
  EXPECT_EQ(back->after_uuid, p.after_uuid);
  for (const char* bad : {"", "x", "lbcsi1.", "lbcsi1.9.", "lbcsi1.0.zz", "lbcsi1.-1."}) {
    EXPECT_EQ(DecodeListToken(bad, 2).status().code(), absl::StatusCode::kAborted) << bad;
  }
}

TEST(OptionsTest, ClusterSpec) {
  auto t = ParseClusterSpec("b:443,a:443|proj:team|scheme:grpc", MgmtScheme::kGrpcs);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(JoinEndpoints(t->endpoints), "a:443,b:443");
  EXPECT_EQ(t->project, "team");
  EXPECT_EQ(t->scheme, MgmtScheme::kGrpc);
  EXPECT_EQ(ParseClusterSpec("a:1", MgmtScheme::kGrpc)->scheme, MgmtScheme::kGrpc);
  EXPECT_FALSE(ParseClusterSpec("a:1|foo:bar", MgmtScheme::kGrpcs).ok());
  EXPECT_FALSE(ParseClusterSpec("", MgmtScheme::kGrpcs).ok());
  EXPECT_FALSE(ParseClusterSpec("a:1|proj:Bad_", MgmtScheme::kGrpcs).ok());
}

TEST(MetricsTest, RenderAndServe) {
  metrics::Registry reg;
  reg.DescribeCounter("t_total", "help text");
  reg.Increment("t_total", {{"m", "a\"b"}});
  reg.Observe("t_seconds", {{"m", "x"}}, 0.003);
  reg.Observe("t_seconds", {{"m", "x"}}, 1000);
  std::string text = reg.RenderText();
  EXPECT_THAT(text, ::testing::HasSubstr("# HELP t_total help text"));
  EXPECT_THAT(text, ::testing::HasSubstr("t_total{m=\"a\\\"b\"} 1"));
  EXPECT_THAT(text, ::testing::HasSubstr("t_seconds_bucket{m=\"x\",le=\"0.005\"} 1"));
  EXPECT_THAT(text, ::testing::HasSubstr("t_seconds_bucket{m=\"x\",le=\"+Inf\"} 2"));
  EXPECT_THAT(text, ::testing::HasSubstr("t_seconds_count{m=\"x\"} 2"));

  auto exporter = metrics::HttpExporter::Start(reg, "127.0.0.1:0");
  ASSERT_TRUE(exporter.ok()) << exporter.status();
  ASSERT_GT((*exporter)->port(), 0);
  httplib::Client cli("127.0.0.1", (*exporter)->port());
  auto res = cli.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->body, ::testing::HasSubstr("t_total"));
}

TEST(TimingClientTest, RecordsLatencyAndCodes) {
  metrics::Registry reg;
  auto cluster = std::make_shared<testing::FakeCluster>();
  auto fake = std::make_shared<testing::FakeFactory>();
  fake->AddCluster("10.0.0.1:443", cluster);
  TimingClientFactory factory(fake, reg);
  lightos::ClusterTarget t{{*ParseHostPort("10.0.0.1:443")}, MgmtScheme::kGrpcs, ""};
  auto client = factory.GetClient(t, {.inline_token = "good-token"});
  ASSERT_TRUE(client.ok());
  EXPECT_EQ((*client)->GetVolume("00000000-0000-4000-8000-000000000001", {}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE((*client)->GetClusterInfo({}).ok());
  EXPECT_EQ(
      reg.CounterValue("lbcsi_lightos_calls_total", {{"op", "GetVolume"}, {"code", "NOT_FOUND"}}),
      1);
  EXPECT_EQ(reg.HistogramCount("lbcsi_lightos_call_seconds", {{"op", "GetClusterInfo"}}), 1u);
}

}  // namespace
}  // namespace lbcsi::controller
