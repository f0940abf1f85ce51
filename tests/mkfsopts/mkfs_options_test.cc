#include "mkfsopts/mkfs_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

namespace lbcsi::mkfsopts {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Params = std::map<std::string, std::string>;

absl::Status Refusal(const Params& p, Fs fs = Fs::kAny) {
  absl::StatusOr<MkfsOptions> o = ParseMap(p);
  if (!o.ok()) return o.status();
  return Check(*o, fs);
}

TEST(MkfsOptions, NoKeysMeansMkfsDefaults) {
  absl::StatusOr<MkfsOptions> o = ParseMap(Params{{"replica-count", "3"}});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->empty());
  EXPECT_TRUE(Arguments(*o, Fs::kExt4).empty());
  EXPECT_TRUE(Arguments(*o, Fs::kXfs).empty());
  EXPECT_TRUE(ToKeys(*o).empty());
}

TEST(MkfsOptions, Ext4OptionsBecomeMke2fsArguments) {
  Params p = {
      {kBlockSize, "1024"}, {kInodeSize, "256"}, {kBytesPerInode, "8192"}, {kClusterSize, "16384"}};
  absl::StatusOr<MkfsOptions> o = ParseMap(p);
  ASSERT_TRUE(o.ok()) << o.status();
  ASSERT_TRUE(Check(*o, Fs::kExt4).ok()) << Check(*o, Fs::kExt4);
  EXPECT_THAT(Arguments(*o, Fs::kExt4), ElementsAre("-b", "1024", "-I", "256", "-i", "8192", "-O",
                                                    "bigalloc", "-C", "16384"));
  EXPECT_EQ(ToKeys(*o), p);  // canonical spelling round-trips
  // ext4-only options do not fit xfs.
  EXPECT_THAT(Check(*o, Fs::kXfs).message(), HasSubstr("applies to ext4 only"));
}

TEST(MkfsOptions, XfsOptionsBecomeMkfsXfsArguments) {
  Params p = {
      {kBlockSize, "4096"}, {kInodeSize, "1024"}, {kXfsReflink, "disabled"}, {kXfsCrc, "enabled"}};
  absl::StatusOr<MkfsOptions> o = ParseMap(p);
  ASSERT_TRUE(o.ok()) << o.status();
  ASSERT_TRUE(Check(*o, Fs::kXfs).ok()) << Check(*o, Fs::kXfs);
  EXPECT_THAT(Arguments(*o, Fs::kXfs),
              ElementsAre("-b", "size=4096", "-i", "size=1024", "-m", "crc=1,reflink=0"));
  EXPECT_EQ(ToKeys(*o), p);
  EXPECT_THAT(Check(*o, Fs::kExt4).message(), HasSubstr("applies to xfs only"));
}

TEST(MkfsOptions, HostileAndOutOfRangeValuesAreRefusedNamingTheKey) {
  struct Case {
    Params params;
    Fs fs;
    std::string key;
  };
  const std::string huge(100000, '9');
  const Case cases[] = {
      {{{kBlockSize, "4k"}}, Fs::kAny, kBlockSize},
      {{{kBlockSize, "-4096"}}, Fs::kAny, kBlockSize},
      {{{kBlockSize, "+4096"}}, Fs::kAny, kBlockSize},
      {{{kBlockSize, " 4096"}}, Fs::kAny, kBlockSize},
      {{{kBlockSize, "4096 -O ^has_journal"}}, Fs::kAny, kBlockSize},
      {{{kBlockSize, "0"}}, Fs::kAny, kBlockSize},
      {{{kBlockSize, ""}}, Fs::kAny, kBlockSize},
      {{{kBlockSize, "8192"}}, Fs::kAny, kBlockSize},  // beyond the page size
      {{{kBlockSize, "3000"}}, Fs::kAny, kBlockSize},
      {{{kBlockSize, huge}}, Fs::kAny, kBlockSize},
      {{{kBlockSize, "4294967296"}}, Fs::kAny, kBlockSize},  // overflows uint32
      {{{kInodeSize, "300"}}, Fs::kAny, kInodeSize},
      {{{kInodeSize, "64"}}, Fs::kAny, kInodeSize},
      {{{kInodeSize, "128"}}, Fs::kXfs, kInodeSize},
      {{{kInodeSize, "256"}}, Fs::kXfs, kInodeSize},  // crc (the default) needs 512
      {{{kInodeSize, "4096"}, {kBlockSize, "1024"}}, Fs::kExt4, kInodeSize},
      {{{kBytesPerInode, "512"}}, Fs::kExt4, kBytesPerInode},
      {{{kBytesPerInode, "134217728"}}, Fs::kExt4, kBytesPerInode},
      {{{kBytesPerInode, "8192"}}, Fs::kXfs, kBytesPerInode},
      {{{kClusterSize, "4096"}}, Fs::kExt4, kClusterSize},  // not above the block size
      {{{kClusterSize, "12288"}}, Fs::kExt4, kClusterSize},
      {{{kClusterSize, "536870912"}}, Fs::kExt4, kClusterSize},
      {{{kXfsReflink, "yes"}}, Fs::kAny, kXfsReflink},
      {{{kXfsReflink, "enabled"}}, Fs::kExt4, kXfsReflink},
      {{{kXfsCrc, "Enabled"}}, Fs::kAny, kXfsCrc},
      {{{kXfsReflink, "enabled"}, {kXfsCrc, "disabled"}}, Fs::kAny, kXfsReflink},
      {{{kBytesPerInode, "8192"}, {kXfsCrc, "enabled"}}, Fs::kAny, kBytesPerInode},
      {{{"mkfs-blocksize", "4096"}}, Fs::kAny, "mkfs-blocksize"},  // misspelt: never ignored
      {{{"mkfs-extra-args", "-O ^has_journal"}}, Fs::kAny, "mkfs-extra-args"},
  };
  for (const Case& c : cases) {
    absl::Status s = Refusal(c.params, c.fs);
    std::string shown = c.params.begin()->first + "=" + c.params.begin()->second.substr(0, 40);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << shown << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(c.key)) << shown;
    EXPECT_LT(s.message().size(), 400u) << shown;  // never echoes a whole value
  }
}

TEST(MkfsOptions, InodeSizeForAnUnknownFilesystemNeedsToFitOne) {
  EXPECT_TRUE(Refusal({{kInodeSize, "128"}}).ok());   // ext4 takes it
  EXPECT_TRUE(Refusal({{kInodeSize, "2048"}}).ok());  // xfs takes it
  // With an xfs-only option present the inode size is judged for xfs.
  EXPECT_FALSE(Refusal({{kInodeSize, "128"}, {kXfsReflink, "enabled"}}).ok());
  EXPECT_TRUE(Refusal({{kInodeSize, "256"}, {kXfsCrc, "disabled"}}, Fs::kXfs).ok());
}

TEST(MkfsOptions, UnderPlacesTheKeyBeneathItsSource) {
  absl::Status s = Under("parameters", Refusal({{kBlockSize, "3"}}));
  EXPECT_THAT(s.message(), HasSubstr("parameters.mkfs-block-size: "));
  EXPECT_TRUE(Under("parameters", absl::OkStatus()).ok());
}

}  // namespace
}  // namespace lbcsi::mkfsopts
