// SELinux context= on Mount and Publish: a label that is not a plain
// user:role:type:level is INVALID_ARGUMENT before anything is created or
// mounted (it would otherwise be spliced into the mount option string); a
// valid one is applied where SELinux labels mounts and left out where it does
// not, and in both cases a repeated Mount with the same label is idempotent.
// The mount table is checked for what the kernel really got.

#include "tests/helper/backing_fs.h"

namespace lbcsi::helper::testing {
namespace {

using Stub = v1::NodeHelper::Stub;
using grpc::StatusCode;

constexpr const char* kLabel = "system_u:object_r:container_file_t:s0:c1,c2";

// selinuxfs is mounted where the kernel has SELinux on (what libselinux looks for).
bool SelinuxOn() {
  auto entries = ReadMountInfo();
  if (!entries.ok()) return false;
  for (const MountEntry& e : *entries) {
    if (e.fs_type == "selinuxfs") return true;
  }
  return false;
}

std::optional<MountEntry> EntryAt(const std::string& path) {
  auto entries = ReadMountInfo();
  if (!entries.ok()) return std::nullopt;
  std::optional<MountEntry> top;
  for (const MountEntry& e : *entries) {
    if (e.mount_point == path) top = e;  // the last one listed is on top
  }
  return top;
}

class SelinuxMountBase : public HelperProcess {
 protected:
  std::string Ext4Volume(const std::string& uuid) {
    const std::string img = MakeVolume(uuid, 64ull << 20);
    EXPECT_TRUE(RunQuiet({"/usr/sbin/mkfs.ext4", "-q", "-F", img}));
    return img;
  }
  v1::MountRequest MountReq(const std::string& uuid, const std::string& staging,
                            const std::string& label, v1::FsType fs = v1::FS_TYPE_EXT4) {
    v1::MountRequest req;
    req.set_volume_uuid(uuid);
    req.set_staging_path(staging);
    req.set_fs_type(fs);
    req.set_selinux_context(label);
    return req;
  }
};

class SelinuxMount : public SelinuxMountBase, public ::testing::WithParamInterface<v1::FsType> {};
using SelinuxLabels = SelinuxMountBase;

TEST_F(SelinuxLabels, MalformedLabelsAreRefusedAndNothingIsMounted) {
  if (dir_.empty()) return;
  const std::string uuid = "5a000000-0000-4000-8000-000000000001";
  const std::string img = Ext4Volume(uuid);
  const std::string before = Sha256File(img);
  Attach(uuid);
  const std::string staging = StagingPath("staging");
  const std::vector<std::string> bad = {
      "system_u:object_r:container_file_t",                   // no level
      "system_u:object_r:container_file_t:s0\",rw,exec=\"x",  // quote: escapes the option
      "system_u:object_r:container_file_t:s0,noexec",         // an option smuggled in the level
      "system_u:object_r:container_file_t:s0:c1,c2,nosuid",   // ... or in the categories
      "system_u:object_r:container_file_t:s0 ",
      "system_u:object_r:container_file_t:s0:c1\nc2",
      "system_u:object_r:container_file_t:s0:c1:c2",
      "system_u:object_r:container,file_t:s0",
      "system_u:object_r:container.file_t:s0",
      "::container_file_t:s0",
      "system_u:object_r:container_file_t:x0",
      "system_u:object_r:container_file_t:s0-s1-s2",
      "system_u:object_r:container_file_t:s0:c1.c2.c3",
      "system_u:object_r:container_file_t:s0:c",
      std::string(300, 'u') + ":object_r:container_file_t:s0",
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(bad[i]);
    v1::MountResponse mr;
    grpc::Status st = Call(&Stub::Mount, MountReq(uuid, staging, bad[i]), &mr);
    EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_NE(st.error_message().find("selinux_context"), std::string::npos) << st.error_message();
    // The helper-owned form must not even create the directory.
    const std::string owned = EphemeralPath(Cat("owned-", i));
    v1::MountRequest create = MountReq(uuid, owned, bad[i]);
    create.set_create_staging_path(true);
    st = Call(&Stub::Mount, create, &mr);
    EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_FALSE(std::filesystem::exists(owned));
  }
  EXPECT_TRUE(MountsUnder(root_).empty());
  EXPECT_EQ(Sha256File(img), before) << "a refused mount changed the volume";

  // Publish validates its label as well, before it creates the target.
  v1::MountResponse mr;
  grpc::Status st = Call(&Stub::Mount, MountReq(uuid, staging, ""), &mr);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string target = PublishPath("p1", "target");
  for (const std::string& label : bad) {
    SCOPED_TRACE(label);
    v1::PublishRequest pub;
    pub.set_volume_uuid(uuid);
    pub.set_target_path(target);
    pub.set_staging_path(staging);
    pub.set_selinux_context(label);
    v1::PublishResponse pr;
    st = Call(&Stub::Publish, pub, &pr);
    EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_FALSE(std::filesystem::exists(target));
  }
  v1::UnmountRequest u;
  u.set_staging_path(staging);
  v1::UnmountResponse ur;
  ASSERT_TRUE(Call(&Stub::Unmount, u, &ur).ok());
  EXPECT_TRUE(MountsUnder(root_).empty());
}

TEST_P(SelinuxMount, ValidLabelMountsAsTheKernelAllowsAndRepeats) {
  if (dir_.empty()) return;
  const v1::FsType fs = GetParam();
  const bool xfs = fs == v1::FS_TYPE_XFS;
  const std::string uuid =
      xfs ? "5b000000-0000-4000-8000-000000000001" : "5b000000-0000-4000-8000-000000000002";
  const std::string img = MakeVolume(uuid, xfs ? 320ull << 20 : 64ull << 20);
  ASSERT_TRUE(RunQuiet(xfs ? std::vector<std::string>{"/usr/sbin/mkfs.xfs", "-q", img}
                           : std::vector<std::string>{"/usr/sbin/mkfs.ext4", "-q", "-F", img}));
  Attach(uuid);
  const std::string staging = StagingPath("staging");
  v1::MountRequest req = MountReq(uuid, staging, kLabel, fs);
  req.add_options(v1::MOUNT_OPTION_NOATIME);
  v1::MountResponse mr;
  grpc::Status st = Call(&Stub::Mount, req, &mr);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(mr.already_mounted());

  std::optional<MountEntry> e = EntryAt(staging);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->fs_type, xfs ? "xfs" : "ext4");
  EXPECT_TRUE(e->HasOption("noatime")) << e->options;
  EXPECT_FALSE(e->read_only());
  const bool labelled = e->super_options.find("context=") != std::string::npos;
  if (SelinuxOn()) {
    // The kernel shows the label quoted (it holds a comma).
    EXPECT_NE(e->super_options.find(Cat("context=\"", kLabel, "\"")), std::string::npos)
        << e->super_options;
  } else {
    // No SELinux: the label cannot apply and is left out, not passed on as
    // something the filesystem would refuse.
    EXPECT_FALSE(labelled) << e->super_options;
    std::printf("SELinux is off on this host: mounted without context= (%s)\n",
                e->super_options.c_str());
  }

  // The same request again is a no-op, whichever way the label went.
  st = Call(&Stub::Mount, req, &mr);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(mr.already_mounted());
  EXPECT_EQ(MountsUnder(staging).size(), 1u);

  // Publish takes the label (a bind cannot change it) and shows the staged superblock.
  const std::string target = PublishPath("p1", "target");
  v1::PublishRequest pub;
  pub.set_volume_uuid(uuid);
  pub.set_target_path(target);
  pub.set_staging_path(staging);
  pub.set_selinux_context(kLabel);
  v1::PublishResponse pr;
  st = Call(&Stub::Publish, pub, &pr);
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::optional<MountEntry> t = EntryAt(target);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->super_options, e->super_options);
  EXPECT_EQ(t->dev, e->dev);

  v1::UnpublishRequest unpub;
  unpub.set_target_path(target);
  v1::UnpublishResponse upr;
  ASSERT_TRUE(Call(&Stub::Unpublish, unpub, &upr).ok());
  v1::UnmountRequest u;
  u.set_staging_path(staging);
  v1::UnmountResponse ur;
  ASSERT_TRUE(Call(&Stub::Unmount, u, &ur).ok());
  EXPECT_TRUE(ur.was_mounted());
  EXPECT_TRUE(MountsUnder(root_).empty());
}

INSTANTIATE_TEST_SUITE_P(Fs, SelinuxMount, ::testing::Values(v1::FS_TYPE_EXT4, v1::FS_TYPE_XFS),
                         [](const auto& info) {
                           return std::string(info.param == v1::FS_TYPE_XFS ? "xfs" : "ext4");
                         });

}  // namespace
}  // namespace lbcsi::helper::testing
