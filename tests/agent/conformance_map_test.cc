// Every conformance id has a test, and every tag names a listed id.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

namespace {

std::string SourceDir() {
  const char* d = std::getenv("LBCSI_SOURCE_DIR");
  return d ? std::string(d) + "/tests/agent" : std::string();
}

TEST(ConformanceMap, EveryIdHasATestAndEveryTagIsListed) {
  const std::string dir = SourceDir();
  ASSERT_FALSE(dir.empty()) << "LBCSI_SOURCE_DIR not set";
  std::set<std::string> ids;
  std::ifstream list(dir + "/conformance_ids.txt");
  ASSERT_TRUE(list.good());
  for (std::string line; std::getline(list, line);) {
    if (line.empty() || line[0] == '#') continue;
    EXPECT_TRUE(ids.insert(line).second) << "duplicate id " << line;
  }
  ASSERT_GT(ids.size(), 40u);
  // Built in two pieces so this file's own text is not a tag.
  const std::regex tag(std::string("CSI_CONFORMANCE") + R"re(\("([^"]+)"\))re");
  std::set<std::string> tagged;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".cc") continue;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    for (std::sregex_iterator it(text.begin(), text.end(), tag), end; it != end; ++it) {
      tagged.insert((*it)[1].str());
    }
  }
  for (const auto& id : ids) EXPECT_TRUE(tagged.count(id)) << "no test for " << id;
  for (const auto& id : tagged) EXPECT_TRUE(ids.count(id)) << "tag not in the list: " << id;
}

}  // namespace
