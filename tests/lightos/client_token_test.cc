#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "common/redact.h"
#include "common/strings.h"
#include "lightos/token.h"

namespace lbcsi::lightos {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "lbcsi-token-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void WriteFile(const fs::path& p, const std::string& content) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
}

// Lays out a directory the way a Kubernetes Secret volume does:
// jwt -> ..data/jwt, ..data -> ..<version>/.
void PublishSecretVersion(const fs::path& dir, const std::string& version,
                          const std::string& token) {
  fs::create_directory(dir / version);
  WriteFile(dir / version / "jwt", token);
  fs::create_symlink(version, dir / "..data_tmp");
  fs::rename(dir / "..data_tmp", dir / "..data");  // the atomic swap
  if (!fs::is_symlink(dir / "jwt")) fs::create_symlink("..data/jwt", dir / "jwt");
}

TEST(TokenTest, CleanTokenStripsSurroundingWhitespace) {
  EXPECT_EQ(*CleanToken("abc.def.ghi\n"), "abc.def.ghi");
  EXPECT_EQ(*CleanToken("abc.def.ghi\r\n\n "), "abc.def.ghi");
  EXPECT_EQ(*CleanToken("  abc\t\n"), "abc");
}

TEST(TokenTest, CleanTokenRejectsEmptyAndInnerWhitespace) {
  EXPECT_EQ(CleanToken("\n\n").status().code(), absl::StatusCode::kUnauthenticated);
  auto inner = CleanToken("abc def-secretpart");
  EXPECT_FALSE(inner.ok());
  EXPECT_EQ(StdView(inner.status().message()).find("secretpart"), std::string::npos)
      << "the error must not echo the token";
  EXPECT_FALSE(CleanToken("abc\ndef").ok());
}

TEST(TokenTest, InlineTokenWinsAndIsRegisteredAsSecret) {
  auto provider = TokenProvider::Create(
      {.inline_token = "inline-token-1234\n", .token_file = "/nonexistent/jwt"});
  ASSERT_TRUE(provider.ok()) << provider.status();
  EXPECT_EQ(*(*provider)->Token(), "inline-token-1234");
  EXPECT_EQ(ScrubSecrets("token=inline-token-1234"), "token=***");
}

TEST(TokenTest, NoSourceMeansNoToken) {
  auto provider = TokenProvider::Create({});
  ASSERT_TRUE(provider.ok());
  EXPECT_EQ(*(*provider)->Token(), "");
}

TEST(TokenTest, FileTokenFollowsSymlinkSwap) {
  TempDir dir;
  PublishSecretVersion(dir.path(), "..v1", "first-token-aaaa\n");
  auto provider = TokenProvider::Create({.token_file = (dir.path() / "jwt").string()});
  ASSERT_TRUE(provider.ok());
  EXPECT_EQ(*(*provider)->Token(), "first-token-aaaa");
  EXPECT_EQ(*(*provider)->Token(), "first-token-aaaa");

  PublishSecretVersion(dir.path(), "..v2", "second-token-bbbb\n");
  fs::remove_all(dir.path() / "..v1");
  EXPECT_EQ(*(*provider)->Token(), "second-token-bbbb");
  EXPECT_EQ(ScrubSecrets("x second-token-bbbb y"), "x *** y");
}

TEST(TokenTest, FileTokenRewrittenInPlaceIsReread) {
  TempDir dir;
  fs::path file = dir.path() / "jwt";
  WriteFile(file, "short-token-1\n");
  auto provider = TokenProvider::Create({.token_file = file.string()});
  ASSERT_TRUE(provider.ok());
  EXPECT_EQ(*(*provider)->Token(), "short-token-1");
  WriteFile(file, "a-longer-token-2\n");
  EXPECT_EQ(*(*provider)->Token(), "a-longer-token-2");
}

TEST(TokenTest, MissingOrEmptyFileIsAnErrorNamingTheFile) {
  TempDir dir;
  fs::path file = dir.path() / "jwt";
  auto provider = TokenProvider::Create({.token_file = file.string()});
  ASSERT_TRUE(provider.ok());
  auto missing = (*provider)->Token();
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(StdView(missing.status().message()).find(file.string()), std::string::npos);
  WriteFile(file, "\n");
  EXPECT_EQ((*provider)->Token().status().code(), absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace lbcsi::lightos
