#include "tests/lightos-sim/rules.h"

#include <string>

#include <gtest/gtest.h>

#include "tests/lightos-sim/faults.h"

namespace lbcsi::sim {
namespace {

TEST(RulesTest, SizeAcceptsTheShippedFormatsAndRoundsUpTo4KiB) {
  EXPECT_EQ(*ParseSize("10737418240b"), 10737418240ULL);  // create: "<bytes>b"
  EXPECT_EQ(*ParseSize("10737418240"), 10737418240ULL);   // update: plain bytes
  EXPECT_EQ(*ParseSize("1"), 4096u);
  EXPECT_EQ(*ParseSize("4097b"), 8192u);
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_EQ(*ParseSize("10GiB"), 10ULL << 30);
  EXPECT_EQ(*ParseSize("1MB"), 1003520u);  // 1,000,000 rounded up to 4 KiB
}

TEST(RulesTest, SizeRejectsGarbageZeroAndOverflow) {
  for (const char* bad : {"", "b", "-1", "0", "0b", "12xb", "1.5GiB", "99999999999999999999",
                          "18446744073709551615", "17179869184TiB"}) {
    auto s = ParseSize(bad);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(RulesTest, ObjectNames) {
  EXPECT_TRUE(ValidateObjectName("name", "pvc-1.a_B").ok());
  EXPECT_TRUE(ValidateObjectName("name", std::string(253, 'a')).ok());
  EXPECT_FALSE(ValidateObjectName("name", std::string(254, 'a')).ok());
  EXPECT_FALSE(ValidateObjectName("name", "").ok());
  EXPECT_FALSE(ValidateObjectName("name", "a b").ok());
  EXPECT_FALSE(ValidateObjectName("name", "a/b").ok());
}

TEST(RulesTest, ProjectNames) {
  EXPECT_TRUE(ValidateProjectName("").ok());
  EXPECT_EQ(ProjectOrDefault(""), "default");
  EXPECT_EQ(ProjectOrDefault("p1"), "p1");
  EXPECT_TRUE(ValidateProjectName("a").ok());
  EXPECT_TRUE(ValidateProjectName("team-a.prod").ok());
  EXPECT_TRUE(ValidateProjectName(std::string(63, 'a')).ok());
  EXPECT_FALSE(ValidateProjectName(std::string(64, 'a')).ok());
  EXPECT_FALSE(ValidateProjectName("Upper").ok());
  EXPECT_FALSE(ValidateProjectName("-a").ok());
  EXPECT_FALSE(ValidateProjectName("a-").ok());
  EXPECT_FALSE(ValidateProjectName("a_b").ok());
}

TEST(RulesTest, AclDefaultsToAllowNoneAndRejectsMixing) {
  EXPECT_EQ(*NormalizeAcl({}), std::vector<std::string>{"ALLOW_NONE"});
  EXPECT_EQ(*NormalizeAcl({"ALLOW_ANY"}), std::vector<std::string>{"ALLOW_ANY"});
  std::string nqn = "nqn.2019-09.com.lightbitslabs:host:node1.node";
  EXPECT_EQ(*NormalizeAcl({nqn, nqn, "nqn.x"}), (std::vector<std::string>{nqn, "nqn.x"}));
  EXPECT_FALSE(NormalizeAcl({"ALLOW_ANY", nqn}).ok());
  EXPECT_FALSE(NormalizeAcl({"ALLOW_NONE", "ALLOW_ANY"}).ok());
  EXPECT_FALSE(NormalizeAcl({""}).ok());
  EXPECT_FALSE(NormalizeAcl({"nqn with space"}).ok());
  EXPECT_TRUE(NormalizeAcl({std::string(223, 'n')}).ok());
  auto too_long = NormalizeAcl({std::string(224, 'n')});
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RulesTest, Compression) {
  EXPECT_EQ(*NormalizeCompression(""), "false");
  EXPECT_EQ(*NormalizeCompression("enable"), "true");
  EXPECT_EQ(*NormalizeCompression("Enabled"), "true");
  EXPECT_EQ(*NormalizeCompression("disable"), "false");
  EXPECT_EQ(*NormalizeCompression("true"), "true");
  EXPECT_FALSE(NormalizeCompression("yes").ok());
}

TEST(FaultsTest, ParsesPerRpcEntriesAndWildcard) {
  auto f = ParseFaultConfig(R"({"rpcs": {"CreateVolume": {"error": "UNAVAILABLE", "rate": 0.25,
      "endpoints": [1]}, "*": {"latency_ms": 5}}, "fail_volume_names": ["bad-*"]})");
  ASSERT_TRUE(f.ok()) << f.status();
  const RpcFault* cv = f->Find("CreateVolume", 1);
  ASSERT_NE(cv, nullptr);
  EXPECT_EQ(cv->error, absl::StatusCode::kUnavailable);
  EXPECT_DOUBLE_EQ(cv->rate, 0.25);
  EXPECT_EQ(f->Find("CreateVolume", 0), nullptr);  // scoped to endpoint 1
  ASSERT_NE(f->Find("GetVolume", 0), nullptr);
  EXPECT_EQ(f->Find("GetVolume", 0)->latency_ms, 5);
  EXPECT_TRUE(f->ShouldFail("bad-1"));
  EXPECT_FALSE(f->ShouldFail("good"));
  // Round trip through the control endpoint's format.
  auto again = ParseFaultConfig(FaultConfigToJson(*f));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->Find("CreateVolume", 1)->error, absl::StatusCode::kUnavailable);
}

TEST(FaultsTest, RejectsUnknownKeysAndBadValues) {
  EXPECT_FALSE(ParseFaultConfig("[]").ok());
  EXPECT_FALSE(ParseFaultConfig(R"({"rpc": {}})").ok());
  EXPECT_FALSE(ParseFaultConfig(R"({"rpcs": {"X": {"latncy_ms": 1}}})").ok());
  EXPECT_FALSE(ParseFaultConfig(R"({"rpcs": {"X": {"error": "NOPE"}}})").ok());
  EXPECT_FALSE(ParseFaultConfig(R"({"rpcs": {"X": {"rate": 2}}})").ok());
  EXPECT_EQ(*ParseStatusCode("14"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(*ParseStatusCode("deadline_exceeded"), absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace lbcsi::sim
