#include "common/logging.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "csi/v1/csi.pb.h"

namespace lbcsi::log {
namespace {

class LoggingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetSinkForTesting([this](std::string_view line) { lines_.emplace_back(line); });
  }
  void TearDown() override {
    SetSinkForTesting(nullptr);
    Init({Level::kInfo, Format::kText, ""});
  }
  std::vector<std::string> lines_;
};

TEST_F(LoggingTest, LevelsFilter) {
  Init({Level::kWarn, Format::kText, "test"});
  LOG(kInfo, "hidden");
  LOG(kWarn, "shown");
  LOG(kError, "also shown");
  ASSERT_EQ(lines_.size(), 2u);
  EXPECT_NE(lines_[0].find("WARN test: shown"), std::string::npos) << lines_[0];
  EXPECT_NE(lines_[1].find("ERROR test: also shown"), std::string::npos);
}

TEST_F(LoggingTest, TextFieldsAreKeyValueAndQuotedWhenNeeded) {
  Init({Level::kTrace, Format::kText, "agent"});
  LOG(kInfo, "staged", {"volume", "abc"}, {"ms", 12}, {"path", "/a b"}, {"ro", true});
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_NE(lines_[0].find("INFO agent: staged volume=abc ms=12 path=\"/a b\" ro=true"),
            std::string::npos)
      << lines_[0];
}

TEST_F(LoggingTest, JsonLinesParseAndKeepTypes) {
  Init({Level::kTrace, Format::kJson, "controller"});
  csi::v1::GetPluginInfoResponse info;
  info.set_name("csi.lightbitslabs.com");
  LOG(kDebug, "hello \"world\"", {"count", 3}, {"name", "x y"}, {"ok", false},
      Field::Proto("resp", info));
  ASSERT_EQ(lines_.size(), 1u);
  auto j = nlohmann::json::parse(lines_[0]);
  EXPECT_EQ(j["level"], "debug");
  EXPECT_EQ(j["component"], "controller");
  EXPECT_EQ(j["msg"], "hello \"world\"");
  EXPECT_EQ(j["count"], 3);
  EXPECT_EQ(j["name"], "x y");
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["resp"]["name"], "csi.lightbitslabs.com");
  EXPECT_TRUE(j.contains("ts"));
}

TEST_F(LoggingTest, ParseLevelAndFormat) {
  EXPECT_EQ(ParseLevel("DEBUG").value(), Level::kDebug);
  EXPECT_EQ(ParseLevel("warning").value(), Level::kWarn);
  EXPECT_FALSE(ParseLevel("loud").ok());
  EXPECT_EQ(ParseFormat("json").value(), Format::kJson);
  EXPECT_FALSE(ParseFormat("xml").ok());
}

// Raw NUL and control bytes from a request never reach a text log line.
TEST_F(LoggingTest, TextLinesEscapeControlBytes) {
  Init({Level::kInfo, Format::kText, ""});
  const std::string hostile = std::string("id\0with\nnewline\x1b[2J", 19);
  LOG(kInfo, "message " + hostile, {"volume_id", hostile});
  ASSERT_EQ(lines_.size(), 1u);
  for (char c : lines_[0]) {
    auto u = static_cast<unsigned char>(c);
    EXPECT_FALSE(u < 0x20 || u == 0x7f) << "raw control byte " << int(u) << " in " << lines_[0];
  }
  EXPECT_NE(lines_[0].find("\\x00"), std::string::npos) << lines_[0];
}

}  // namespace
}  // namespace lbcsi::log
