// Helper API additions the node agent relies on, against the real binary:
// driver-owned staging directories (created and removed by the helper),
// Detach without a subsystem NQN, ExpandFilesystem as a cheap no-op when the
// filesystem fills its device, and Stats of a block volume by UUID.

#include <sys/stat.h>

#include "tests/helper/helper_fixture.h"

namespace lbcsi::helper::testing {
namespace {

using Stub = v1::NodeHelper::Stub;

bool HaveCapSysResource() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("CapEff:", 0) == 0) {
      return (std::stoull(line.substr(7), nullptr, 16) >> 24) & 1;  // CAP_SYS_RESOURCE = 24
    }
  }
  return false;
}

class NodeApi : public HelperProcess {
 protected:
  void Format(const std::string& uuid, v1::FsType fs) {
    v1::FormatRequest req;
    req.set_volume_uuid(uuid);
    req.set_fs_type(fs);
    req.set_proof(v1::NEVER_WRITTEN_PROOF_CREATED_EMPTY);
    v1::FormatResponse resp;
    grpc::Status st = Call(&Stub::Format, req, &resp, 120);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
};

TEST_F(NodeApi, DriverOwnedStagingPathIsCreatedAndRemovedByTheHelper) {
  if (dir_.empty()) return;
  const std::string uuid = "1a000000-0000-4000-8000-000000000001";
  MakeVolume(uuid, 64 << 20);
  Attach(uuid);
  Format(uuid, v1::FS_TYPE_EXT4);
  const std::string eph = root_ + "/plugins/csi.lightbitslabs.com/ephemeral";
  const std::string staging = eph + "/0123456789abcdef0123456789abcdef01234567";

  v1::MountRequest mreq;
  mreq.set_volume_uuid(uuid);
  mreq.set_staging_path(staging);
  mreq.set_fs_type(v1::FS_TYPE_EXT4);
  v1::MountResponse mresp;
  // Without the flag a missing staging path is the caller's mistake.
  EXPECT_EQ(Call(&Stub::Mount, mreq, &mresp).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_FALSE(std::filesystem::exists(eph));

  mreq.set_create_staging_path(true);
  grpc::Status st = Call(&Stub::Mount, mreq, &mresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(mresp.staging_path_created());
  EXPECT_FALSE(mresp.already_mounted());
  for (const std::string& d : {root_ + "/plugins", root_ + "/plugins/csi.lightbitslabs.com", eph}) {
    struct stat sb {};
    ASSERT_EQ(lstat(d.c_str(), &sb), 0) << d;
    EXPECT_TRUE(S_ISDIR(sb.st_mode)) << d;
    EXPECT_EQ(sb.st_uid, 0u) << d;
    EXPECT_EQ(sb.st_mode & 07777, 0750u) << d;
  }
  EXPECT_EQ(MountsUnder(root_), std::vector<std::string>{staging});
  st = Call(&Stub::Mount, mreq, &mresp);  // repeated: nothing new
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(mresp.already_mounted());
  EXPECT_FALSE(mresp.staging_path_created());

  v1::UnmountRequest ureq;
  ureq.set_staging_path(staging);
  ureq.set_remove_staging_path(true);
  v1::UnmountResponse uresp;
  st = Call(&Stub::Unmount, ureq, &uresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(uresp.was_mounted());
  EXPECT_TRUE(uresp.staging_path_removed());
  EXPECT_FALSE(std::filesystem::exists(staging));
  EXPECT_TRUE(std::filesystem::exists(eph)) << "parents stay";
  st = Call(&Stub::Unmount, ureq, &uresp);  // repeated: already gone is success
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(uresp.staging_path_removed());
  EXPECT_TRUE(MountsUnder(root_).empty());

  // A directory holding data is never removed.
  std::filesystem::create_directories(staging);
  std::ofstream(staging + "/keep") << "data";
  EXPECT_EQ(Call(&Stub::Unmount, ureq, &uresp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(std::filesystem::exists(staging + "/keep"));
  std::filesystem::remove_all(staging);

  v1::DetachResponse dresp;
  ASSERT_TRUE(Detach(uuid, &dresp).ok());
}

// The plugin directory belongs to the agent (0750), and the helper keeps no DAC override: the
// inline volumes' mount points must still be reachable and creatable by the helper.
TEST_F(NodeApi, PreparedPluginDirIsTheAgentsAndStillHoldsHelperCreatedInlineMounts) {
  if (dir_.empty()) return;
  const std::string plugin = root_ + "/plugins/csi.lightbitslabs.com";
  const std::string eph = plugin + "/ephemeral";
  // As an older install left it: everything owned by the agent.
  std::filesystem::create_directories(eph);
  ASSERT_EQ(chown(plugin.c_str(), 4242, 4242), 0);
  ASSERT_EQ(chown(eph.c_str(), 4242, 4242), 0);
  ASSERT_EQ(chmod(plugin.c_str(), 0750), 0);
  ASSERT_EQ(chmod(eph.c_str(), 0770), 0);
  StopHelper();
  StartHelper({"--plugin-socket-dir", plugin, "--agent-uid", "4242"});

  v1::PrepareSocketDirRequest preq;
  preq.set_dir(v1::SOCKET_DIR_PLUGIN);
  v1::PrepareSocketDirResponse presp;
  grpc::Status st = Call(&Stub::PrepareSocketDir, preq, &presp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(presp.path(), plugin);
  struct stat sb {};
  ASSERT_EQ(lstat(plugin.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_uid, 4242u);
  EXPECT_EQ(sb.st_gid, 0u);
  EXPECT_EQ(sb.st_mode & 07777, 0750u);
  ASSERT_EQ(lstat(eph.c_str(), &sb), 0);
  EXPECT_TRUE(S_ISDIR(sb.st_mode));
  EXPECT_EQ(sb.st_uid, 0u);
  EXPECT_EQ(sb.st_gid, 0u);
  EXPECT_EQ(sb.st_mode & 07777, 0750u);

  const std::string uuid = "1e000000-0000-4000-8000-000000000001";
  MakeVolume(uuid, 64 << 20);
  Attach(uuid);
  Format(uuid, v1::FS_TYPE_EXT4);
  v1::MountRequest mreq;
  mreq.set_volume_uuid(uuid);
  mreq.set_staging_path(eph + "/00112233445566778899aabbccddeeff00112233");
  mreq.set_fs_type(v1::FS_TYPE_EXT4);
  mreq.set_create_staging_path(true);
  v1::MountResponse mresp;
  st = Call(&Stub::Mount, mreq, &mresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(MountsUnder(root_), std::vector<std::string>{mreq.staging_path()});
  v1::UnmountRequest ureq;
  ureq.set_staging_path(mreq.staging_path());
  ureq.set_remove_staging_path(true);
  v1::UnmountResponse uresp;
  st = Call(&Stub::Unmount, ureq, &uresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  v1::DetachResponse dresp;
  ASSERT_TRUE(Detach(uuid, &dresp).ok());

  // Preparing again is idempotent; an ephemeral/ that is a symlink is refused, not followed.
  st = Call(&Stub::PrepareSocketDir, preq, &presp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::filesystem::remove(eph);
  std::filesystem::create_directory_symlink(outside_, eph);
  st = Call(&Stub::PrepareSocketDir, preq, &presp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  ASSERT_EQ(lstat(outside_.c_str(), &sb), 0);
  EXPECT_NE(sb.st_mode & 07777, 0750u) << "the symlink's target was not touched";
  std::filesystem::remove(eph);
}

TEST_F(NodeApi, CreatingAStagingPathRefusesSymlinksAndPathsOutsideTheRoots) {
  if (dir_.empty()) return;
  const std::string uuid = "1b000000-0000-4000-8000-000000000001";
  MakeVolume(uuid, 64 << 20);
  Attach(uuid);
  Format(uuid, v1::FS_TYPE_EXT4);
  // plugins/<driver> is a symlink to a directory outside the root.
  std::filesystem::create_directories(root_ + "/plugins");
  std::filesystem::create_directory_symlink(outside_, root_ + "/plugins/csi.lightbitslabs.com");
  const std::string through_link = Layouts().EphemeralPath(std::string(40, 'e'));
  v1::MountRequest mreq;
  mreq.set_volume_uuid(uuid);
  mreq.set_fs_type(v1::FS_TYPE_EXT4);
  mreq.set_create_staging_path(true);
  v1::MountResponse mresp;
  for (const std::string& path : {through_link, root_ + "/plugins/link", outside_ + "/new",
                                  root_ + "/plugins/../../outside/new"}) {
    mreq.set_staging_path(path);
    grpc::Status st = Call(&Stub::Mount, mreq, &mresp);
    EXPECT_FALSE(st.ok()) << path;
  }
  EXPECT_FALSE(std::filesystem::exists(outside_ + "/new"));
  EXPECT_FALSE(std::filesystem::exists(outside_ + "/ephemeral"));
  EXPECT_TRUE(MountsUnder(dir_).empty());
  v1::DetachResponse dresp;
  ASSERT_TRUE(Detach(uuid, &dresp).ok());
}

TEST_F(NodeApi, DetachWithoutSubsystemNqnDerivesItFromTheAttachedNamespace) {
  if (dir_.empty()) return;
  const std::string uuid = "1c000000-0000-4000-8000-000000000001";
  MakeVolume(uuid, 16 << 20);
  Attach(uuid);
  v1::DetachRequest req;
  req.set_volume_uuid(uuid);  // subsystem_nqn left empty: agent state was lost
  v1::DetachResponse resp;
  grpc::Status st = Call(&Stub::Detach, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(resp.was_attached());
  v1::InventoryResponse inv;
  ASSERT_TRUE(Call(&Stub::Inventory, v1::InventoryRequest(), &inv).ok());
  EXPECT_EQ(inv.attached_size(), 0);
  st = Call(&Stub::Detach, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(resp.was_attached());
  // A given NQN is still checked.
  req.set_subsystem_nqn("not an nqn");
  EXPECT_EQ(Call(&Stub::Detach, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(NodeApi, ExpandIsACheapNoOpWhenTheFilesystemFillsTheDevice) {
  if (dir_.empty()) return;
  const std::string uuid = "1d000000-0000-4000-8000-000000000001";
  const uint64_t size = 64ull << 20;
  std::string img = MakeVolume(uuid, size);
  Attach(uuid);
  Format(uuid, v1::FS_TYPE_EXT4);
  const std::string staging = StagingPath("stage");
  v1::MountRequest mreq;
  mreq.set_volume_uuid(uuid);
  mreq.set_staging_path(staging);
  mreq.set_fs_type(v1::FS_TYPE_EXT4);
  v1::MountResponse mresp;
  ASSERT_TRUE(Call(&Stub::Mount, mreq, &mresp).ok());

  v1::ExpandFilesystemRequest ereq;
  ereq.set_volume_uuid(uuid);
  ereq.set_mount_path(staging);
  v1::ExpandFilesystemResponse eresp;
  // Same size: no resize ioctl, so it succeeds even without CAP_SYS_RESOURCE.
  for (int i = 0; i < 3; ++i) {
    grpc::Status st = Call(&Stub::ExpandFilesystem, ereq, &eresp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_FALSE(eresp.grown());
    EXPECT_EQ(eresp.device_size_bytes(), size);
    EXPECT_LE(eresp.filesystem_size_bytes(), size);
    EXPECT_GT(eresp.filesystem_size_bytes(), size - (1u << 20));
  }
  // Bigger device: a real grow, which ext4 allows only with CAP_SYS_RESOURCE.
  ASSERT_EQ(truncate(img.c_str(), static_cast<off_t>(2 * size)), 0);
  grpc::Status st = Call(&Stub::ExpandFilesystem, ereq, &eresp);
  if (HaveCapSysResource()) {
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(eresp.grown());
    EXPECT_GT(eresp.filesystem_size_bytes(), size);
  } else {
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
    EXPECT_TRUE(Contains(st.error_message(), "CAP_SYS_RESOURCE")) << st.error_message();
    EXPECT_TRUE(Contains(st.error_message(), uuid)) << st.error_message();
  }
  v1::UnmountRequest ureq;
  ureq.set_staging_path(staging);
  v1::UnmountResponse uresp;
  ASSERT_TRUE(Call(&Stub::Unmount, ureq, &uresp).ok());
  v1::DetachResponse dresp;
  ASSERT_TRUE(Detach(uuid, &dresp).ok());
}

TEST_F(NodeApi, BlockVolumeStatsByUuidOnAnUnmountedStagingPath) {
  if (dir_.empty()) return;
  const std::string uuid = "1e000000-0000-4000-8000-000000000001";
  const uint64_t size = 32ull << 20;
  MakeVolume(uuid, size);
  Attach(uuid);
  const std::string staging = BlockStagingPath("b");
  v1::StatsRequest sreq;
  sreq.set_volume_uuid(uuid);
  sreq.set_path(staging);
  v1::StatsResponse sresp;
  EXPECT_EQ(Call(&Stub::Stats, sreq, &sresp).error_code(), grpc::StatusCode::NOT_FOUND)
      << "without block, an unmounted path has no stats";
  sreq.set_block(true);
  for (int i = 0; i < 2; ++i) {
    grpc::Status st = Call(&Stub::Stats, sreq, &sresp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(sresp.is_block());
    EXPECT_EQ(sresp.total_bytes(), size);
    EXPECT_FALSE(sresp.condition().abnormal()) << sresp.condition().message();
  }
  v1::DetachResponse dresp;
  ASSERT_TRUE(Detach(uuid, &dresp).ok());
  ASSERT_TRUE(Call(&Stub::Stats, sreq, &sresp).ok());
  EXPECT_TRUE(sresp.condition().abnormal());
  EXPECT_EQ(sresp.condition().message(), "device gone");
  sreq.clear_volume_uuid();
  EXPECT_EQ(Call(&Stub::Stats, sreq, &sresp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace lbcsi::helper::testing
