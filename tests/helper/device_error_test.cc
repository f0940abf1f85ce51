// Unpublish and Unmount when the volume fails underneath: the filesystem shut
// down, every I/O of the device returning EIO (the filesystem holding the
// volume files shut down), or the device cleared while mounted. Each must
// finish within its deadline, leave nothing mounted and remove what the helper
// created; Detach must then work too. Stats must answer, not hang.

#include "tests/helper/backing_fs.h"

namespace lbcsi::helper::testing {
namespace {

using Stub = v1::NodeHelper::Stub;

std::string FsName(v1::FsType fs) {
  return fs == v1::FS_TYPE_XFS ? "xfs" : "ext4";
}

class DeviceErrors : public BackedHelper, public ::testing::WithParamInterface<v1::FsType> {
 protected:
  // Stage and publish a fresh volume; writes a file through the publish target.
  void StageAndPublish(const std::string& uuid) {
    const v1::FsType fs = GetParam();
    MakeVolume(uuid, fs == v1::FS_TYPE_XFS ? 320ull << 20 : 64ull << 20);
    Attach(uuid);
    v1::FormatResponse fr;
    grpc::Status st = Call(&Stub::Format, FormatReq(uuid, fs), &fr, 300);
    ASSERT_TRUE(st.ok()) << st.error_message();
    staging_ = StagingPath(uuid);
    target_ = PublishPath("p", uuid);
    v1::MountRequest m;
    m.set_volume_uuid(uuid);
    m.set_staging_path(staging_);
    m.set_fs_type(fs);
    v1::MountResponse mr;
    st = Call(&Stub::Mount, m, &mr);
    ASSERT_TRUE(st.ok()) << st.error_message();
    v1::PublishRequest p;
    p.set_volume_uuid(uuid);
    p.set_target_path(target_);
    p.set_staging_path(staging_);
    v1::PublishResponse pr;
    st = Call(&Stub::Publish, p, &pr);
    ASSERT_TRUE(st.ok()) << st.error_message();
    std::ofstream(target_ + "/before") << "written while healthy\n";
    sync();
  }

  // Stats answers (a condition or a clean error), within its deadline.
  v1::StatsResponse ExpectStatsAnswers(const std::string& uuid, const std::string& path) {
    v1::StatsRequest req;
    req.set_volume_uuid(uuid);
    req.set_path(path);
    v1::StatsResponse resp;
    grpc::Status st = Call(&Stub::Stats, req, &resp, 60);
    EXPECT_NE(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << path;
    EXPECT_NE(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    if (st.ok()) {
      std::printf("Stats %s: abnormal=%d \"%s\"\n", path.c_str(), resp.condition().abnormal(),
                  resp.condition().message().c_str());
    } else {
      std::printf("Stats %s: %d %s\n", path.c_str(), st.error_code(), st.error_message().c_str());
    }
    return resp;
  }

  // Unpublish, Unmount (removing the staging directory) and Detach all succeed
  // and leave nothing behind.
  void ExpectCleanTeardown(const std::string& uuid) {
    v1::UnpublishRequest up;
    up.set_target_path(target_);
    v1::UnpublishResponse upr;
    grpc::Status st = Call(&Stub::Unpublish, up, &upr, 60);
    ASSERT_TRUE(st.ok()) << "Unpublish: " << st.error_message();
    EXPECT_TRUE(upr.was_mounted());
    EXPECT_TRUE(upr.target_removed());
    EXPECT_TRUE(MountsUnder(target_).empty());
    EXPECT_FALSE(std::filesystem::exists(target_));

    v1::UnmountRequest um;
    um.set_staging_path(staging_);
    um.set_remove_staging_path(true);
    v1::UnmountResponse umr;
    st = Call(&Stub::Unmount, um, &umr, 60);
    ASSERT_TRUE(st.ok()) << "Unmount: " << st.error_message();
    EXPECT_TRUE(umr.was_mounted());
    EXPECT_TRUE(umr.staging_path_removed());
    EXPECT_TRUE(MountsUnder(staging_).empty());
    EXPECT_FALSE(std::filesystem::exists(staging_));

    // Repeats are no-ops.
    EXPECT_TRUE(Call(&Stub::Unpublish, up, &upr, 60).ok());
    EXPECT_TRUE(Call(&Stub::Unmount, um, &umr, 60).ok());
    EXPECT_TRUE(MountsUnder(root_).empty());

    v1::DetachResponse dr;
    st = Detach(uuid, &dr);
    ASSERT_TRUE(st.ok()) << "Detach: " << st.error_message();
    v1::InventoryResponse inv;
    ASSERT_TRUE(Call(&Stub::Inventory, v1::InventoryRequest(), &inv).ok());
    for (const auto& a : inv.attached()) EXPECT_NE(a.volume_uuid(), uuid);
    EXPECT_TRUE(inv.mounts().empty());
  }

  std::string staging_, target_;
};

// The filesystem itself shut down (what ext4 and xfs do on a fatal error).
TEST_P(DeviceErrors, ShutDownFilesystemUnmountsCleanly) {
  if (dir_.empty()) return;
  const std::string uuid = GetParam() == v1::FS_TYPE_XFS ? "6a000000-0000-4000-8000-000000000001"
                                                         : "6a000000-0000-4000-8000-000000000002";
  StageAndPublish(uuid);
  if (HasFatalFailure()) return;
  {
    constexpr unsigned long kGoingDown = _IOR('X', 125, __u32);  // ext4 and xfs alike
    int fd = open(staging_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    __u32 how = 2;  // no log flush
    ASSERT_EQ(ioctl(fd, kGoingDown, &how), 0) << std::strerror(errno);
    close(fd);
  }
  int after = open((target_ + "/after").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (after >= 0) close(after);
  EXPECT_LT(after, 0) << "the filesystem still takes new files after its shutdown";
  v1::StatsResponse staged = ExpectStatsAnswers(uuid, staging_);
  ExpectStatsAnswers(uuid, target_);
  if (GetParam() == v1::FS_TYPE_XFS) {
    // xfs refuses every stat once shut down: that is a condition, not "ok".
    // (ext4 shows nothing of its shutdown to stat or statfs.)
    EXPECT_TRUE(staged.condition().abnormal()) << staged.condition().message();
  }
  ExpectCleanTeardown(uuid);
}

// Every I/O of the device fails: the filesystem under the volume files is shut down.
TEST_P(DeviceErrors, DeviceReturningEioUnmountsCleanly) {
  if (dir_.empty()) return;
  const std::string uuid = GetParam() == v1::FS_TYPE_XFS ? "6b000000-0000-4000-8000-000000000001"
                                                         : "6b000000-0000-4000-8000-000000000002";
  StageAndPublish(uuid);
  if (HasFatalFailure()) return;
  ShutDownBacking();
  // Push I/O at the dead device so the filesystem has met the errors before the unmount.
  {
    std::ofstream(target_ + "/after") << std::string(1 << 20, 'x');
    int fd = open(target_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      syncfs(fd);
      close(fd);
    }
  }
  ExpectStatsAnswers(uuid, staging_);
  ExpectCleanTeardown(uuid);
}

// The loop device cleared under the mounts (the kernel defers it to the last
// close): the teardown must work and the device must then be gone.
TEST_P(DeviceErrors, DeviceClearedWhileMountedGoesAwayAfterUnmount) {
  if (dir_.empty()) return;
  const std::string uuid = GetParam() == v1::FS_TYPE_XFS ? "6c000000-0000-4000-8000-000000000001"
                                                         : "6c000000-0000-4000-8000-000000000002";
  StageAndPublish(uuid);
  if (HasFatalFailure()) return;
  std::vector<std::string> loops = VolumeLoops();
  ASSERT_EQ(loops.size(), 1u);
  {
    int fd = open(("/dev/" + loops[0]).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ioctl(fd, LOOP_CLR_FD, 0), 0) << std::strerror(errno);  // losetup -d
    close(fd);
  }
  ExpectStatsAnswers(uuid, target_);
  v1::UnpublishRequest up;
  up.set_target_path(target_);
  v1::UnpublishResponse upr;
  grpc::Status st = Call(&Stub::Unpublish, up, &upr, 60);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(MountsUnder(target_).empty());
  v1::UnmountRequest um;
  um.set_staging_path(staging_);
  um.set_remove_staging_path(true);
  v1::UnmountResponse umr;
  st = Call(&Stub::Unmount, um, &umr, 60);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(MountsUnder(root_).empty());
  EXPECT_FALSE(std::filesystem::exists(staging_));
  ASSERT_TRUE(WaitFor([&] { return VolumeLoops().empty(); }, 60)) << "the device never went";
  v1::DetachResponse dr;
  st = Detach(uuid, &dr);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(dr.was_attached());
  // Stats on the block path by UUID reports the device gone, as a condition.
  v1::StatsRequest sreq;
  sreq.set_volume_uuid(uuid);
  sreq.set_path(BlockStagingPath("pv-gone"));
  sreq.set_block(true);
  v1::StatsResponse sresp;
  st = Call(&Stub::Stats, sreq, &sresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(sresp.condition().abnormal());
  EXPECT_EQ(sresp.condition().message(), "device gone");
}

INSTANTIATE_TEST_SUITE_P(Fs, DeviceErrors, ::testing::Values(v1::FS_TYPE_EXT4, v1::FS_TYPE_XFS),
                         [](const auto& info) { return FsName(info.param); });

}  // namespace
}  // namespace lbcsi::helper::testing
