#include "helper/paths/path_guard.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "helper/paths/mounter.h"
#include "helper/paths/mountinfo.h"

namespace lbcsi::helper {
namespace {

class PathGuardTest : public ::testing::TestWithParam<bool> {  // param: force O_PATH walk
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lbcsi-paths-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    root_ = dir_ + "/root";
    std::filesystem::create_directories(root_ + "/a/b/c");
    std::filesystem::create_directories(dir_ + "/outside/b/c");
    auto g = PathGuard::Create({root_});
    ASSERT_TRUE(g.ok()) << g.status();
    guard_.emplace(std::move(*g));
    guard_->ForceWalkForTesting(GetParam());
  }
  void TearDown() override {
    umount2((root_ + "/a").c_str(), MNT_DETACH);
    std::filesystem::remove_all(dir_);
  }
  absl::StatusCode Code(const std::string& p) { return guard_->OpenParent("f", p).status().code(); }

  std::string dir_, root_;
  std::optional<PathGuard> guard_;
};

TEST_P(PathGuardTest, AcceptsCleanPathsBelowTheRoot) {
  auto p = guard_->OpenParent("f", root_ + "/a/b/c");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->leaf, "c");
  EXPECT_TRUE(PathGuard::OpenLeaf(*p).ok());
  EXPECT_TRUE(guard_->OpenParent("f", root_ + "/new").ok());  // the leaf may be missing
}

TEST_P(PathGuardTest, RefusesLexicalTricks) {
  using C = absl::StatusCode;
  EXPECT_EQ(Code("relative/a"), C::kInvalidArgument);
  EXPECT_EQ(Code(""), C::kInvalidArgument);
  EXPECT_EQ(Code(root_), C::kInvalidArgument);  // the root itself is not a target
  EXPECT_EQ(Code(root_ + "/a/../../outside/b"), C::kInvalidArgument);
  EXPECT_EQ(Code(root_ + "/./a"), C::kInvalidArgument);
  EXPECT_EQ(Code(root_ + "//a"), C::kInvalidArgument);
  EXPECT_EQ(Code(root_ + "/a/"), C::kInvalidArgument);
  EXPECT_EQ(Code(root_ + "x/a"), C::kInvalidArgument);  // prefix but not a component
  EXPECT_EQ(Code(dir_ + "/outside/b"), C::kInvalidArgument);
  EXPECT_EQ(Code("/etc/passwd"), C::kInvalidArgument);
  EXPECT_EQ(Code(root_ + "/" + std::string(300, 'x')), C::kInvalidArgument);
  EXPECT_EQ(Code(root_ + std::string(5000, '/')), C::kInvalidArgument);
  EXPECT_EQ(Code(root_ + std::string("/a\0b", 4)), C::kInvalidArgument);
}

TEST_P(PathGuardTest, RefusesASymlinkAtEveryComponent) {
  // Replace each of a, b, c in turn by a symlink into ../outside.
  const std::vector<std::string> comps = {"a", "a/b", "a/b/c"};
  for (const std::string& c : comps) {
    std::string real = root_ + "/" + c;
    std::string saved = real + ".saved";
    std::filesystem::rename(real, saved);
    std::filesystem::create_directory_symlink(dir_ + "/outside", real);
    std::string target = root_ + "/a/b/c/leaf";
    auto p = guard_->OpenParent("f", target);
    if (c == "a/b/c" && p.ok()) {
      ADD_FAILURE() << "parent through symlink accepted";
    }
    EXPECT_FALSE(p.ok()) << c;
    // The symlink as the leaf itself: the parent opens, the leaf does not.
    auto leafp = guard_->OpenParent("f", real);
    ASSERT_TRUE(leafp.ok()) << leafp.status();
    EXPECT_EQ(PathGuard::OpenLeaf(*leafp).status().code(), absl::StatusCode::kFailedPrecondition);
    std::filesystem::remove(real);
    std::filesystem::rename(saved, real);
  }
}

TEST_P(PathGuardTest, RefusesABindMountOverAComponent) {
  if (geteuid() != 0) {
    if (const char* ci = std::getenv("CI"); ci && std::string(ci) == "true") FAIL() << "needs root";
    GTEST_SKIP() << "needs root to bind-mount";
  }
  ASSERT_EQ(mount((dir_ + "/outside").c_str(), (root_ + "/a").c_str(), nullptr, MS_BIND, nullptr),
            0);
  auto p = guard_->OpenParent("f", root_ + "/a/b/c");
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition) << p.status();
  // The mount point itself may be the leaf (that is how targets look).
  auto leaf = guard_->OpenParent("f", root_ + "/a");
  ASSERT_TRUE(leaf.ok());
  auto m = MountAt(*leaf);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(m->has_value());
  // A mount the caller does not own stays.
  auto refused = UnmountAll(*leaf, [](const MountEntry&) { return false; });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  ASSERT_TRUE(MountAt(*leaf).ok() && MountAt(*leaf)->has_value()) << "a refused mount was removed";
  auto ours = [](const MountEntry&) { return true; };
  auto n = UnmountAll(*leaf, ours);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 1);
  auto again = UnmountAll(*leaf, ours);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);
}

INSTANTIATE_TEST_SUITE_P(Resolve, PathGuardTest, ::testing::Values(false, true),
                         [](const auto& i) { return std::string(i.param ? "Walk" : "Openat2"); });

TEST(PathGuardCreate, RefusesSlashAndMissingRoots) {
  EXPECT_FALSE(PathGuard::Create({"/"}).ok());
  EXPECT_FALSE(PathGuard::Create({"/nonexistent/lbcsi"}).ok());
  EXPECT_FALSE(PathGuard::Create({}).ok());
}

TEST(MountInfo, ParsesEscapesAndOptionalFields) {
  auto e = ParseMountInfo(
      "36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - ext4 /dev/loop3 ro,errors=continue\n"
      "37 35 0:5 /loop7 /var/lib/kubelet/x rw - devtmpfs udev rw\n");
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[0].mount_point, "/mnt/with space");
  EXPECT_EQ((*e)[0].fs_type, "ext4");
  EXPECT_EQ((*e)[0].source, "/dev/loop3");
  EXPECT_FALSE((*e)[0].read_only());
  EXPECT_TRUE((*e)[0].super_read_only());
  EXPECT_EQ((*e)[1].root, "/loop7");
  EXPECT_FALSE(ParseMountInfo("garbage line\n").ok());
}

}  // namespace
}  // namespace lbcsi::helper
