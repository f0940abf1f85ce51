#include "volumeid/resource_id.h"

#include <gtest/gtest.h>

#include "common/status.h"

namespace lbcsi {
namespace {

constexpr char kUuid[] = "6bb32fb5-99aa-4a4c-a4e7-30b7787bbd66";

// Every form the shipped plugin has produced over its versions.
const char* const kShippedForms[] = {
    "mgmt:10.0.0.1:80,10.0.0.2:80|nguid:6bb32fb5-99aa-4a4c-a4e7-30b7787bbd66",
    "mgmt:lb01.net:80|nguid:6bb32fb5-99aa-4a4c-a4e7-30b7787bbd66",
    "mgmt:lb01.net:80|nguid:6bb32fb5-99aa-4a4c-a4e7-30b7787bbd66|proj:p1",
    "mgmt:lb01.net:80|nguid:6bb32fb5-99aa-4a4c-a4e7-30b7787bbd66|proj:project-4",
    "mgmt:lb01.net:80|nguid:6bb32fb5-99aa-4a4c-a4e7-30b7787bbd66|proj:project-4|scheme:grpc",
    "mgmt:lb01.net:80|nguid:6bb32fb5-99aa-4a4c-a4e7-30b7787bbd66|scheme:grpcs",
    "mgmt:10.0.0.1:443,10.0.0.2:443,10.0.0.3:443|nguid:6bb32fb5-99aa-4a4c-a4e7-30b7787bbd66|proj:"
    "default|scheme:grpcs",
    "mgmt:10.0.0.1:443|nguid:6bb32fb5-99aa-4a4c-a4e7-30b7787bbd66|proj:default|scheme:grpcs|"
    "hostcrypto:luks2",
    "mgmt:10.0.0.1:443|nguid:6bb32fb5-99aa-4a4c-a4e7-30b7787bbd66|scheme:grpcs|hostcrypto:luks2",
};

TEST(ResourceIdTest, RoundTripsEveryShippedForm) {
  for (const char* form : kShippedForms) {
    auto id = ParseResourceId(form);
    ASSERT_TRUE(id.ok()) << form << ": " << id.status();
    EXPECT_EQ(id->uuid, kUuid);
    auto again = FormatResourceId(*id);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(*again, form);
  }
}

TEST(ResourceIdTest, ParsesFields) {
  auto id = ParseResourceId(
      "mgmt:10.0.0.2:443,10.0.0.1:443|nguid:6BB32FB5-99AA-4A4C-A4E7-30B7787BBD66|proj:team-a|"
      "scheme:grpc|hostcrypto:luks2");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_EQ(id->mgmt_endpoints.size(), 2u);
  EXPECT_EQ(id->mgmt_endpoints[0].host, "10.0.0.1");  // canonical order after parsing
  EXPECT_EQ(id->uuid, kUuid);                         // lowercased
  EXPECT_EQ(id->project, "team-a");
  EXPECT_EQ(id->EffectiveScheme(), MgmtScheme::kGrpc);
  EXPECT_TRUE(id->host_encryption);
}

TEST(ResourceIdTest, OldIdsWithoutSchemeMeanGrpcs) {
  auto id = ParseResourceId("mgmt:lb01.net:80|nguid:6bb32fb5-99aa-4a4c-a4e7-30b7787bbd66");
  ASSERT_TRUE(id.ok());
  EXPECT_FALSE(id->scheme.has_value());
  EXPECT_EQ(id->EffectiveScheme(), MgmtScheme::kGrpcs);
  EXPECT_TRUE(id->project.empty());
  EXPECT_FALSE(id->host_encryption);
}

TEST(ResourceIdTest, GeneratesCanonicalForm) {
  ResourceId id;
  id.mgmt_endpoints = {{"10.0.0.2", 443}, {"10.0.0.1", 443}, {"10.0.0.2", 443}};
  id.uuid = "6BB32FB5-99AA-4A4C-A4E7-30B7787BBD66";
  id.project = "default";
  id.scheme = MgmtScheme::kGrpcs;
  EXPECT_EQ(FormatResourceId(id).value(),
            "mgmt:10.0.0.1:443,10.0.0.2:443|nguid:6bb32fb5-99aa-4a4c-a4e7-30b7787bbd66|proj:"
            "default|scheme:grpcs");
}

TEST(ResourceIdTest, LongShippedIdsParseButAreNotGenerated) {
  // Four IPv4 endpoints and a 63-character project: over 128 bytes.
  std::string long_id =
      "mgmt:192.168.100.101:443,192.168.100.102:443,192.168.100.103:443,192.168.100.104:443"
      "|nguid:6bb32fb5-99aa-4a4c-a4e7-30b7787bbd66|proj:" +
      std::string(63, 'p') + "|scheme:grpcs";
  ASSERT_GT(long_id.size(), kCsiMaxIdBytes);
  auto id = ParseResourceId(long_id);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->mgmt_endpoints.size(), 4u);
  auto formatted = FormatResourceId(*id);
  EXPECT_EQ(formatted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(formatted.status().message().find("128"), std::string::npos);
}

TEST(ResourceIdTest, RejectsMalformedWithInvalidArgument) {
  const std::string u = kUuid;
  for (const std::string& bad : std::vector<std::string>{
           std::string(""),
           std::string("garbage"),
           "nguid:" + u,
           "mgmt:|nguid:" + u,
           "mgmt:10.0.0.1|nguid:" + u,
           "mgmt:10.0.0.1:99999|nguid:" + u,
           "mgmt:10.0.0.1:80|uuid:" + u,
           "mgmt:10.0.0.1:80|nguid:" + u.substr(1),
           std::string("mgmt:10.0.0.1:80|nguid:00000000-0000-0000-0000-000000000000"),
           std::string("mgmt:10.0.0.1:80|nguid:6bb32fb5x99aa-4a4c-a4e7-30b7787bbd66"),
           "mgmt:10.0.0.1:80|nguid:" + u + "|proj:UPPER",
           "mgmt:10.0.0.1:80|nguid:" + u + "|proj:",
           "mgmt:10.0.0.1:80|nguid:" + u + "|scheme:http",
           "mgmt:10.0.0.1:80|nguid:" + u + "|hostcrypto:luks1",
           "mgmt:10.0.0.1:80|nguid:" + u + "|proj:a|proj:b",
           "mgmt:10.0.0.1:80|nguid:" + u + "|color:blue",
           "mgmt:10.0.0.1:80|nguid:" + u + "|",
           "mgmt:10.0.0.1:80,|nguid:" + u,
       }) {
    auto id = ParseResourceId(bad);
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << "accepted: " << bad;
    EXPECT_EQ(ToGrpcStatus(id.status()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST(ResourceIdTest, FormatRejectsMissingParts) {
  ResourceId id;
  id.uuid = kUuid;
  EXPECT_FALSE(FormatResourceId(id).ok());  // no endpoints
  id.mgmt_endpoints = {{"a", 1}};
  id.uuid = "nope";
  EXPECT_FALSE(FormatResourceId(id).ok());
  id.uuid = kUuid;
  id.project = "-bad";
  EXPECT_FALSE(FormatResourceId(id).ok());
}

TEST(ResourceIdTest, ProjectNameRules) {
  EXPECT_TRUE(IsValidProjectName("default"));
  EXPECT_TRUE(IsValidProjectName("a"));
  EXPECT_TRUE(IsValidProjectName("team.a-1"));
  EXPECT_FALSE(IsValidProjectName(""));
  EXPECT_FALSE(IsValidProjectName("-a"));
  EXPECT_FALSE(IsValidProjectName("a-"));
  EXPECT_FALSE(IsValidProjectName("A"));
  EXPECT_FALSE(IsValidProjectName(std::string(64, 'a')));
  EXPECT_TRUE(IsValidProjectName(std::string(63, 'a')));
}

}  // namespace
}  // namespace lbcsi
