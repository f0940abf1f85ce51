// attach -> probe -> format -> mount -> publish (fs and block) -> expand ->
// stats -> unpublish -> unmount -> detach, for ext4 and xfs, every call twice,
// against the real binary over its socket.

#include <sys/statvfs.h>

#include "tests/helper/helper_fixture.h"

namespace lbcsi::helper::testing {
namespace {

using Stub = v1::NodeHelper::Stub;

class Lifecycle : public HelperProcess, public ::testing::WithParamInterface<v1::FsType> {};

TEST_P(Lifecycle, FullCycleEveryCallTwice) {
  if (dir_.empty()) return;
  const v1::FsType fs = GetParam();
  const bool xfs = fs == v1::FS_TYPE_XFS;
  const std::string uuid =
      xfs ? "0a000000-0000-4000-8000-000000000001" : "0e000000-0000-4000-8000-000000000001";
  const std::string buuid = "0b000000-0000-4000-8000-000000000002";
  const uint64_t size = xfs ? 512ull << 20 : 64ull << 20;
  std::string img = MakeVolume(uuid, size);
  MakeVolume(buuid, 16 << 20);

  v1::AttachResponse a1 = Attach(uuid), a2 = Attach(uuid);
  EXPECT_EQ(a1.device_name(), a2.device_name());
  EXPECT_EQ(a1.size_bytes(), size);
  Attach(buuid);

  v1::ProbeRequest preq;
  preq.set_volume_uuid(uuid);
  v1::ProbeResponse probe;
  ASSERT_TRUE(Call(&Stub::Probe, preq, &probe).ok());
  EXPECT_EQ(probe.kind(), v1::CONTENT_KIND_BLANK);

  v1::FormatRequest freq;
  freq.set_volume_uuid(uuid);
  freq.set_fs_type(fs);
  v1::FormatResponse fresp;
  grpc::Status st = Call(&Stub::Format, freq, &fresp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << "no proof must refuse";
  freq.set_proof(v1::NEVER_WRITTEN_PROOF_CREATED_EMPTY);
  st = Call(&Stub::Format, freq, &fresp, 120);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(fresp.formatted());
  st = Call(&Stub::Format, freq, &fresp, 120);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(fresp.formatted()) << "second format must be a no-op";
  ASSERT_TRUE(Call(&Stub::Probe, preq, &probe).ok());
  EXPECT_EQ(probe.kind(), v1::CONTENT_KIND_FILESYSTEM);
  EXPECT_EQ(probe.type(), xfs ? "xfs" : "ext4");
  EXPECT_FALSE(probe.format_in_progress());

  const std::string staging = StagingPath("h");
  v1::MountRequest mreq;
  mreq.set_volume_uuid(uuid);
  mreq.set_staging_path(staging);
  mreq.set_fs_type(fs);
  mreq.add_options(v1::MOUNT_OPTION_NOATIME);
  v1::MountResponse mresp;
  st = Call(&Stub::Mount, mreq, &mresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(mresp.already_mounted());
  st = Call(&Stub::Mount, mreq, &mresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(mresp.already_mounted());
  // Conflicting repeat: same path, read-only asked.
  v1::MountRequest conflict = mreq;
  conflict.set_read_only(true);
  EXPECT_EQ(Call(&Stub::Mount, conflict, &mresp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  std::ofstream(staging + "/hello") << "world";

  // Filesystem publish, twice; then a read-only one.
  const std::string target = PublishPath("p1", "pv");
  v1::PublishRequest pub;
  pub.set_volume_uuid(uuid);
  pub.set_target_path(target);
  pub.set_staging_path(staging);
  v1::PublishResponse presp;
  st = Call(&Stub::Publish, pub, &presp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(presp.already_published());
  st = Call(&Stub::Publish, pub, &presp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(presp.already_published());
  {
    std::ifstream hello(target + "/hello");
    std::string word;
    hello >> word;
    EXPECT_EQ(word, "world");
  }

  const std::string ro_target = PublishPath("p2", "pv");
  v1::PublishRequest ro_pub = pub;
  ro_pub.set_target_path(ro_target);
  ro_pub.set_read_only(true);
  st = Call(&Stub::Publish, ro_pub, &presp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_LT(open((ro_target + "/new").c_str(), O_CREAT | O_WRONLY, 0600), 0);
  EXPECT_EQ(errno, EROFS);

  // Block publish of the second volume, twice.
  const std::string btarget = BlockPublishPath("pv-block", "p1");
  v1::PublishRequest bpub;
  bpub.set_volume_uuid(buuid);
  bpub.set_target_path(btarget);
  bpub.set_block_device(true);
  st = Call(&Stub::Publish, bpub, &presp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = Call(&Stub::Publish, bpub, &presp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(presp.already_published());
  struct stat bst {};
  ASSERT_EQ(stat(btarget.c_str(), &bst), 0);
  EXPECT_TRUE(S_ISBLK(bst.st_mode));

  // Expand: grow the backing file, then ask the helper, twice.
  const uint64_t bigger = size + (xfs ? 256ull << 20 : 64ull << 20);
  ASSERT_EQ(truncate(img.c_str(), static_cast<off_t>(bigger)), 0);
  v1::ExpandFilesystemRequest ereq;
  ereq.set_volume_uuid(uuid);
  ereq.set_mount_path(staging);
  v1::ExpandFilesystemResponse eresp;
  for (int i = 0; i < 2; ++i) {
    st = Call(&Stub::ExpandFilesystem, ereq, &eresp);
    if (xfs) {
      ASSERT_TRUE(st.ok()) << st.error_message();
      EXPECT_EQ(eresp.device_size_bytes(), bigger);
      EXPECT_GT(eresp.filesystem_size_bytes(), size);
    } else if (!st.ok()) {
      // ext4 online grow needs CAP_SYS_RESOURCE (absent on the build host; VM test).
      EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
      EXPECT_TRUE(Contains(st.error_message(), "CAP_SYS_RESOURCE")) << st.error_message();
    } else {
      EXPECT_GT(eresp.filesystem_size_bytes(), size);
    }
  }

  // Stats, twice, fs and block.
  v1::StatsRequest sreq;
  sreq.set_volume_uuid(uuid);
  sreq.set_path(target);
  v1::StatsResponse sresp;
  for (int i = 0; i < 2; ++i) {
    st = Call(&Stub::Stats, sreq, &sresp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_GT(sresp.total_bytes(), 0u);
    EXPECT_GT(sresp.total_inodes(), 0u);
    EXPECT_FALSE(sresp.condition().abnormal()) << sresp.condition().message();
    if (xfs) {
      EXPECT_GT(sresp.total_bytes(), size);
    }
  }
  sreq.set_volume_uuid(buuid);
  sreq.set_path(btarget);
  ASSERT_TRUE(Call(&Stub::Stats, sreq, &sresp).ok());
  EXPECT_TRUE(sresp.is_block());
  EXPECT_EQ(sresp.total_bytes(), 16u << 20);

  v1::InventoryResponse inv;
  ASSERT_TRUE(Call(&Stub::Inventory, v1::InventoryRequest(), &inv).ok());
  EXPECT_EQ(inv.attached_size(), 2);
  EXPECT_EQ(inv.mounts_size(), 4);  // staging, two fs targets, one block target

  // Detach refuses while in use.
  v1::DetachResponse dresp;
  EXPECT_EQ(Detach(uuid, &dresp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // Unpublish everything, twice.
  for (const std::string& t : {target, ro_target, btarget}) {
    v1::UnpublishRequest u;
    u.set_target_path(t);
    v1::UnpublishResponse uresp;
    st = Call(&Stub::Unpublish, u, &uresp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(uresp.was_mounted());
    EXPECT_TRUE(uresp.target_removed());
    st = Call(&Stub::Unpublish, u, &uresp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_FALSE(uresp.was_mounted());
    EXPECT_FALSE(std::filesystem::exists(t));
  }
  v1::UnmountRequest ureq;
  ureq.set_staging_path(staging);
  v1::UnmountResponse uresp;
  ASSERT_TRUE(Call(&Stub::Unmount, ureq, &uresp).ok());
  EXPECT_TRUE(uresp.was_mounted());
  ASSERT_TRUE(Call(&Stub::Unmount, ureq, &uresp).ok());
  EXPECT_FALSE(uresp.was_mounted());
  EXPECT_TRUE(std::filesystem::exists(staging)) << "staging dir belongs to kubelet";

  for (const std::string& u : {uuid, buuid}) {
    ASSERT_TRUE(Detach(u, &dresp).ok());
    EXPECT_TRUE(dresp.was_attached());
    ASSERT_TRUE(Detach(u, &dresp).ok());
    EXPECT_FALSE(dresp.was_attached());
  }
  ASSERT_TRUE(Call(&Stub::Inventory, v1::InventoryRequest(), &inv).ok());
  EXPECT_EQ(inv.attached_size(), 0);
  EXPECT_EQ(inv.mounts_size(), 0);
  EXPECT_TRUE(MountsUnder(dir_).empty());
}

INSTANTIATE_TEST_SUITE_P(Fs, Lifecycle, ::testing::Values(v1::FS_TYPE_EXT4, v1::FS_TYPE_XFS),
                         [](const auto& info) {
                           return info.param == v1::FS_TYPE_XFS ? std::string("xfs")
                                                                : std::string("ext4");
                         });

TEST_F(HelperProcess, AttachOutsideAclFailsWithClearReason) {
  if (dir_.empty()) return;
  const std::string uuid = "0c000000-0000-4000-8000-000000000003";
  MakeVolume(uuid, 16 << 20, /*acl=*/false);
  v1::AttachRequest req;
  req.set_volume_uuid(uuid);
  req.set_subsystem_nqn("nqn.2016-01.com.lightbitslabs:uuid:sim");
  v1::AttachResponse resp;
  grpc::Status st = Call(&Stub::Attach, req, &resp, 2);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_TRUE(Contains(st.error_message(), "not in the volume's ACL")) << st.error_message();
  v1::InventoryResponse inv;
  ASSERT_TRUE(Call(&Stub::Inventory, v1::InventoryRequest(), &inv).ok());
  EXPECT_EQ(inv.attached_size(), 0);
}

TEST_F(HelperProcess, PrepareSocketDirIsRefusedWhenNotConfigured) {
  if (dir_.empty()) return;
  v1::PrepareSocketDirRequest req;
  req.set_dir(v1::SOCKET_DIR_PLUGIN);
  v1::PrepareSocketDirResponse resp;
  EXPECT_EQ(Call(&Stub::PrepareSocketDir, req, &resp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace lbcsi::helper::testing
