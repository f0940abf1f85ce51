#include "common/unix_endpoint.h"

#include <gtest/gtest.h>

namespace lbcsi {
namespace {

TEST(UnixEndpointTest, AcceptsBothUnixForms) {
  EXPECT_EQ(ParseUnixEndpoint("unix:///csi/csi.sock").value(), "/csi/csi.sock");
  EXPECT_EQ(ParseUnixEndpoint("unix:/csi/csi.sock").value(), "/csi/csi.sock");
  EXPECT_EQ(ParseUnixEndpoint("/run/lbcsi/helper.sock").value(), "/run/lbcsi/helper.sock");
}

TEST(UnixEndpointTest, RejectsOtherSchemesAndRelativePaths) {
  for (const char* bad : {"tcp://127.0.0.1:10000", "unix://relative.sock", "unix:", "unix://",
                          "csi.sock", "", "dns:///x"}) {
    auto r = ParseUnixEndpoint(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(UnixEndpointTest, RejectsPathsTooLongForSunPath) {
  std::string path = "/" + std::string(120, 'a');
  EXPECT_EQ(ParseUnixEndpoint("unix://" + path).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string ok = "/" + std::string(100, 'a');
  EXPECT_TRUE(ParseUnixEndpoint("unix://" + ok).ok());
}

TEST(UnixEndpointTest, GrpcTargetForm) {
  EXPECT_EQ(GrpcUnixTarget("/a/b.sock"), "unix:/a/b.sock");
}

}  // namespace
}  // namespace lbcsi
