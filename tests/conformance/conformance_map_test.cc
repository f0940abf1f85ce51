// One id space for the whole project: every conformance id listed in
// tests/{controller,agent,conformance}/conformance_ids.txt must be claimed by
// a test somewhere under tests/ ("// covers: a, b" comments or
// CSI_CONFORMANCE("id") calls), and every claimed id must be listed, so a
// typo cannot hide a gap.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace {

namespace fs = std::filesystem;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r' || s.back() == '\t')) s.pop_back();
  size_t b = s.find_first_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b);
}

fs::path TestsDir() {
  const char* src = std::getenv("LBCSI_SOURCE_DIR");
  return src == nullptr ? fs::path() : fs::path(src) / "tests";
}

// id -> the list files naming it.
std::map<std::string, std::set<std::string>> ReadIdLists(const fs::path& tests) {
  std::map<std::string, std::set<std::string>> ids;
  for (const char* component : {"controller", "agent", "conformance"}) {
    std::ifstream list(tests / component / "conformance_ids.txt");
    EXPECT_TRUE(list.good()) << "cannot read tests/" << component << "/conformance_ids.txt";
    std::set<std::string> seen;
    for (std::string line; std::getline(list, line);) {
      line = Trim(line);
      if (line.empty() || line[0] == '#') continue;
      EXPECT_TRUE(seen.insert(line).second) << "duplicate " << line << " in " << component;
      ids[line].insert(component);
    }
  }
  return ids;
}

// Every tag in every C++ file under tests/, with the file that claims it.
std::map<std::string, std::set<std::string>> ReadTags(const fs::path& tests) {
  std::map<std::string, std::set<std::string>> tags;
  // Built from pieces so that this file's own source holds no tag.
  const std::string covers = std::string("// cov") + "ers:";
  const std::regex macro(std::string("CSI_CONFOR") + R"re(MANCE\("([^"]+)"\))re");
  for (const auto& entry : fs::recursive_directory_iterator(tests)) {
    const std::string ext = entry.path().extension();
    if (ext != ".cc" && ext != ".h") continue;
    const std::string name = entry.path().filename();
    // The per-component map checks search for the tag text themselves.
    if (name.find("conformance_map_test") != std::string::npos) continue;
    const std::string rel = fs::relative(entry.path(), tests).string();
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      size_t pos = line.find(covers);
      if (pos == std::string::npos) continue;
      std::stringstream rest(line.substr(pos + covers.size()));
      for (std::string id; std::getline(rest, id, ',');) {
        id = Trim(id);
        if (!id.empty()) tags[id].insert(rel);
      }
    }
    for (std::sregex_iterator it(text.begin(), text.end(), macro), end; it != end; ++it) {
      tags[(*it)[1].str()].insert(rel);
    }
  }
  return tags;
}

TEST(ConformanceMap, EveryIdInTheProjectHasATest) {
  const fs::path tests = TestsDir();
  ASSERT_FALSE(tests.empty()) << "LBCSI_SOURCE_DIR is not set (run through ctest)";
  auto ids = ReadIdLists(tests);
  ASSERT_GT(ids.size(), 150u) << "the id lists look truncated";
  auto tags = ReadTags(tests);
  int uncovered = 0;
  for (const auto& [id, lists] : ids) {
    if (!tags.count(id)) {
      ++uncovered;
      ADD_FAILURE() << "no test covers " << id << " (listed by " << *lists.begin() << ")";
    }
  }
  for (const auto& [id, files] : tags) {
    EXPECT_TRUE(ids.count(id)) << "unknown id " << id << " tagged in " << *files.begin();
  }
  std::cout << ids.size() << " ids, " << ids.size() - uncovered << " covered, " << tags.size()
            << " distinct tags\n";
}

// The end-to-end suite claims its own ids itself (not only through unit tests).
TEST(ConformanceMap, ProjectIdsAreCoveredByTheEndToEndSuite) {
  const fs::path tests = TestsDir();
  ASSERT_FALSE(tests.empty());
  auto ids = ReadIdLists(tests);
  auto tags = ReadTags(tests);
  for (const auto& [id, lists] : ids) {
    if (!lists.count("conformance")) continue;
    bool in_suite = false;
    for (const auto& file : tags[id]) in_suite |= file.rfind("conformance/", 0) == 0;
    EXPECT_TRUE(in_suite) << id << " is not covered by tests/conformance";
  }
}

}  // namespace
