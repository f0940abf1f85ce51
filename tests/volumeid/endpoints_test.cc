#include "volumeid/endpoints.h"

#include <gtest/gtest.h>

namespace lbcsi {
namespace {

TEST(EndpointsTest, ParsesHostnamesIpv4AndBracketedIpv6) {
  EXPECT_EQ(ParseHostPort("lb01.net:80")->ToString(), "lb01.net:80");
  EXPECT_EQ(ParseHostPort("10.0.0.1:443")->port, 443);
  auto v6 = ParseHostPort("[fd00::1]:443");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "fd00::1");
  EXPECT_EQ(v6->ToString(), "[fd00::1]:443");
  EXPECT_EQ(ParseHostPort("LB01.Example.NET:80")->host, "lb01.example.net");
}

TEST(EndpointsTest, RejectsMalformed) {
  for (const char* bad :
       {"", "host", "host:", ":80", "host:0", "host:65536", "host:-1", "host:8a", "ho st:80",
        "fd00::1:443", "[fd00::1:443", "[fd00::1]", "host:080000", "a|b:80", "h/x:80"}) {
    EXPECT_FALSE(ParseHostPort(bad).ok()) << bad;
  }
}

TEST(EndpointsTest, ListIsDeduplicatedAndSortedBytewise) {
  auto eps = ParseEndpointList("10.0.0.2:80,10.0.0.10:80,10.0.0.2:80,10.0.0.1:443");
  ASSERT_TRUE(eps.ok());
  // Byte order of the "host:port" strings, as the shipped plugin sorts them:
  // '0' (0x30) sorts before ':' (0x3a), so "10.0.0.10:80" < "10.0.0.1:443".
  EXPECT_EQ(JoinEndpoints(*eps), "10.0.0.10:80,10.0.0.1:443,10.0.0.2:80");
}

TEST(EndpointsTest, ListRejectsEmptyItemsAndSpaces) {
  EXPECT_FALSE(ParseEndpointList("").ok());
  EXPECT_FALSE(ParseEndpointList("a:1,,b:2").ok());
  EXPECT_FALSE(ParseEndpointList("a:1,").ok());
  EXPECT_FALSE(ParseEndpointList("a:1, b:2").ok());
}

}  // namespace
}  // namespace lbcsi
