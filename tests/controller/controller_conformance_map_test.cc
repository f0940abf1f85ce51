// Every conformance id in conformance_ids.txt must be named by a "covers:"
// comment of a test in tests/controller, and every covered id must be listed
// (so a typo cannot hide a gap).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r' || s.back() == '\t')) s.pop_back();
  size_t b = s.find_first_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b);
}

TEST(ConformanceMapTest, EveryIdHasATest) {
  const char* src = std::getenv("LBCSI_SOURCE_DIR");
  ASSERT_NE(src, nullptr) << "LBCSI_SOURCE_DIR is not set (run through ctest)";
  std::filesystem::path dir = std::filesystem::path(src) / "tests" / "controller";

  std::set<std::string> ids;
  std::ifstream list(dir / "conformance_ids.txt");
  ASSERT_TRUE(list) << "cannot read conformance_ids.txt";
  for (std::string line; std::getline(list, line);) {
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    EXPECT_TRUE(ids.insert(line).second) << "duplicate " << line;
  }
  ASSERT_GT(ids.size(), 50u);

  std::set<std::string> covered;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.path().extension() != ".cc" ||
        entry.path().filename() == "controller_conformance_map_test.cc") {
      continue;
    }
    std::ifstream in(entry.path());
    for (std::string line; std::getline(in, line);) {
      size_t pos = line.find("// covers:");
      if (pos == std::string::npos) continue;
      std::stringstream rest(line.substr(pos + 10));
      for (std::string id; std::getline(rest, id, ',');) covered.insert(Trim(id));
    }
  }
  for (const std::string& id : ids) EXPECT_TRUE(covered.count(id)) << "no test covers " << id;
  for (const std::string& id : covered)
    EXPECT_TRUE(ids.count(id)) << "unknown id in covers: " << id;
}

}  // namespace
