// ext4 is checked before a read-write stage (docs/design.md "Filesystem check
// before mount"): the real helper runs e2fsck -p through its spawner, mounts
// what it found clean or repaired (and says so in Stats), and refuses to mount
// a filesystem with damage that preen mode leaves for a person.

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "tests/helper/helper_fixture.h"

namespace lbcsi::helper::testing {
namespace {

using Stub = v1::NodeHelper::Stub;

constexpr uint64_t kSize = 64ull << 20;

class FsckBeforeMount : public HelperProcess {
 protected:
  // A fresh ext4 image for `uuid`, edited with debugfs `requests` before it is attached.
  void MakeExt4(const std::string& uuid, const std::vector<std::string>& requests) {
    const std::string img = MakeVolume(uuid, kSize);
    Run("/usr/sbin/mkfs.ext4 -q -F " + img);
    for (const std::string& r : requests) Run("/usr/sbin/debugfs -w -R '" + r + "' " + img);
  }

  static void Run(const std::string& cmd) {
    ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0) << cmd;
  }

  grpc::Status Mount(const std::string& uuid, const std::string& staging, bool read_only = false) {
    v1::MountRequest req;
    req.set_volume_uuid(uuid);
    req.set_staging_path(staging);
    req.set_fs_type(v1::FS_TYPE_EXT4);
    req.set_read_only(read_only);
    v1::MountResponse resp;
    return Call(&Stub::Mount, req, &resp);
  }

  void Unmount(const std::string& staging) {
    v1::UnmountRequest req;
    req.set_staging_path(staging);
    v1::UnmountResponse resp;
    grpc::Status st = Call(&Stub::Unmount, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
  }

  v1::VolumeCondition Condition(const std::string& uuid, const std::string& staging) {
    v1::StatsRequest req;
    req.set_volume_uuid(uuid);
    req.set_path(staging);
    v1::StatsResponse resp;
    grpc::Status st = Call(&Stub::Stats, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.condition();
  }

  // The superblock's state as dumpe2fs reads it: "clean" or "not clean with errors".
  std::string StateOnDisk(const std::string& uuid) {
    const std::string img = Cat(dir_, "/sim/volumes/", uuid, ".img");
    FILE* p = popen(("/usr/sbin/dumpe2fs -h " + img + " 2>/dev/null").c_str(), "r");
    if (p == nullptr) return "popen failed";
    std::string state = "no state line";
    char line[512];
    while (fgets(line, sizeof(line), p) != nullptr) {
      std::string_view l(line);
      if (!l.starts_with("Filesystem state:")) continue;
      l.remove_prefix(l.find(':') + 1);
      while (!l.empty() && (l.front() == ' ' || l.back() == '\n')) {
        l.front() == ' ' ? l.remove_prefix(1) : l.remove_suffix(1);
      }
      state = std::string(l);
    }
    pclose(p);
    return state;
  }

  // Whether e2fsck, not allowed to change anything, finds no damage.
  bool NoDamageFound(const std::string& uuid) {
    const std::string img = Cat(dir_, "/sim/volumes/", uuid, ".img");
    return std::system(("/usr/sbin/e2fsck -fn " + img + " >/dev/null 2>&1").c_str()) == 0;
  }
};

TEST_F(FsckBeforeMount, AFilesystemMarkedWithErrorsIsRepairedThenMounted) {
  if (dir_.empty()) return;
  const std::string uuid = "5f000000-0000-4000-8000-000000000001";
  // What the kernel leaves after errors on a path that went away: the error
  // flag, and counts that no longer add up.
  MakeExt4(uuid, {"ssv state 2", "ssv free_blocks_count 1234"});
  ASSERT_EQ(StateOnDisk(uuid), "not clean with errors");
  Attach(uuid);
  const std::string staging = StagingPath("repaired");
  grpc::Status st = Mount(uuid, staging);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const v1::VolumeCondition c = Condition(uuid, staging);
  EXPECT_FALSE(c.abnormal());
  EXPECT_NE(c.message().find("e2fsck -p repaired"), std::string::npos) << c.message();
  Unmount(staging);
  EXPECT_EQ(StateOnDisk(uuid), "clean") << "the repair did not reach the disk";
  EXPECT_TRUE(NoDamageFound(uuid));

  // The next stage finds it clean, and Stats stops mentioning the repair.
  ASSERT_TRUE(Mount(uuid, staging).ok());
  EXPECT_EQ(Condition(uuid, staging).message(), "ok");
  Unmount(staging);
}

TEST_F(FsckBeforeMount, DamagePreenWillNotRepairKeepsTheVolumeUnmounted) {
  if (dir_.empty()) return;
  const std::string uuid = "5f000000-0000-4000-8000-000000000002";
  MakeExt4(uuid, {"clri <2>", "ssv state 2"});  // no root directory
  Attach(uuid);
  const std::string staging = StagingPath("damaged");
  grpc::Status st = Mount(uuid, staging);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_NE(st.error_message().find("e2fsck -p found damage"), std::string::npos)
      << st.error_message();
  EXPECT_NE(st.error_message().find(uuid), std::string::npos) << st.error_message();
  EXPECT_TRUE(MountsUnder(staging).empty());
  EXPECT_FALSE(NoDamageFound(uuid)) << "preen mode changed what it should leave to a person";
  EXPECT_EQ(StateOnDisk(uuid), "not clean with errors");
  // Asking again does not wear the refusal down.
  EXPECT_EQ(Mount(uuid, staging).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

// What an agent cannot do with the check: a read-only stage never runs it, so
// asking for one does not make the helper write to a volume (docs/design.md
// rule 7).
TEST_F(FsckBeforeMount, AReadOnlyStageNeverWritesTheVolume) {
  if (dir_.empty()) return;
  const std::string uuid = "5f000000-0000-4000-8000-000000000003";
  MakeExt4(uuid, {"ssv state 2"});
  const std::string img = Cat(dir_, "/sim/volumes/", uuid, ".img");
  const std::string before = Sha256File(img);
  Attach(uuid);
  const std::string staging = StagingPath("read-only");
  grpc::Status st = Mount(uuid, staging, /*read_only=*/true);
  ASSERT_TRUE(st.ok()) << st.error_message();
  Unmount(staging);
  EXPECT_EQ(StateOnDisk(uuid), "not clean with errors");
  EXPECT_EQ(Sha256File(img), before) << "a read-only stage changed the volume";
}

}  // namespace
}  // namespace lbcsi::helper::testing
