// Per-RPC counts by code, latency histograms and helper call latency.
#include <gtest/gtest.h>

#include "agent/metrics.h"
#include "tests/agent/agent_env.h"

namespace lbcsi::agent::testing {
namespace {

TEST(Metrics, CsiCallsAreCountedByCodeAndTimed) {
  AgentEnv env;
  env.AddBlank(1);
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).ok());
  ASSERT_TRUE(env.Stage(env.StageReq(1, AgentEnv::MountCap("ext4"))).ok());
  auto bad = env.StageReq(2, AgentEnv::MountCap("ext4"));
  bad.clear_volume_id();
  EXPECT_EQ(env.Stage(bad).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  csi::v1::NodeGetVolumeStatsRequest sreq;
  sreq.set_volume_id(VolId(1));
  sreq.set_volume_path(env.StagingPath(1));
  csi::v1::NodeGetVolumeStatsResponse sresp;
  ASSERT_TRUE(env.Stats(sreq, &sresp).ok());

  const metrics::Registry& r = env.registry_;
  EXPECT_EQ(r.CounterValue(kRpcTotal, {{"method", "NodeStageVolume"}, {"code", "OK"}}), 2);
  EXPECT_EQ(
      r.CounterValue(kRpcTotal, {{"method", "NodeStageVolume"}, {"code", "INVALID_ARGUMENT"}}), 1);
  EXPECT_EQ(r.HistogramCount(kRpcSeconds, {{"method", "NodeStageVolume"}}), 3u);
  EXPECT_EQ(r.CounterValue(kRpcTotal, {{"method", "NodeGetVolumeStats"}, {"code", "OK"}}), 1);
  // Helper calls, each timed: two stages attach twice, format once, mount twice.
  EXPECT_EQ(r.CounterValue(kHelperTotal, {{"method", "Attach"}, {"code", "OK"}}), 2);
  EXPECT_EQ(r.CounterValue(kHelperTotal, {{"method", "Format"}, {"code", "OK"}}), 1);
  EXPECT_EQ(r.HistogramCount(kHelperSeconds, {{"method", "Mount"}}), 2u);
  EXPECT_EQ(r.HistogramCount(kHelperSeconds, {{"method", "Stats"}}), 1u);
}

TEST(Metrics, HelperErrorsAreCountedByCode) {
  AgentEnv env;
  env.AddBlank(3);
  env.helper_.FailNext("Attach", grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "acl"));
  EXPECT_EQ(env.Stage(env.StageReq(3, AgentEnv::MountCap("ext4"))).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  const metrics::Registry& r = env.registry_;
  EXPECT_EQ(r.CounterValue(kHelperTotal, {{"method", "Attach"}, {"code", "FAILED_PRECONDITION"}}),
            1);
  EXPECT_EQ(
      r.CounterValue(kRpcTotal, {{"method", "NodeStageVolume"}, {"code", "FAILED_PRECONDITION"}}),
      1);
  DescribeAgentMetrics(env.registry_);
  std::string text = r.RenderText();
  EXPECT_NE(text.find("# TYPE lbcsi_helper_call_seconds histogram"), std::string::npos) << text;
  EXPECT_NE(text.find("lbcsi_csi_requests_total{"), std::string::npos) << text;
}

}  // namespace
}  // namespace lbcsi::agent::testing
