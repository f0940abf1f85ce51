// A compromised agent against the real helper (loop transport, seccomp enforcing): each case is
// a request such an agent could send. Every one must be refused with the expected code and a
// message naming the reason, and leave the node as it was: the same mounts, the same files and
// contents under the test directory, the same loop devices (docs/security.md lists the
// boundaries these cases probe).

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <functional>
#include <map>

#include "tests/helper/helper_fixture.h"

namespace lbcsi::helper::testing {
namespace {

using Stub = v1::NodeHelper::Stub;
using grpc::StatusCode;

// What a refused request must not change.
struct World {
  std::vector<std::string> mounts;
  std::vector<std::string> loops;
  std::map<std::string, std::string> files;  // path -> kind, size, contents of small files
  bool operator==(const World&) const = default;
};

class HostileAgent : public HelperProcess {
 protected:
  void TearDown() override {
    for (const std::string& m : {victim_secret_, legacy_foreign_, block_foreign_}) {
      if (!m.empty()) umount2(m.c_str(), MNT_DETACH);
    }
    for (const auto& loop : lbcsi::testing::LoopDevicesBackedBy(outside_ + "/")) {
      lbcsi::testing::ClearLoopDevice(loop.name);
    }
    HelperProcess::TearDown();
  }

  World Snapshot() const {
    World w;
    const std::vector<MountEntry> entries = ReadMountInfo().value();
    for (const MountEntry& e : entries) {
      if (e.mount_point.starts_with(dir_ + "/")) {
        w.mounts.push_back(Cat(e.mount_point, " ", e.fs_type, " ", e.dev, " ", e.options));
      }
    }
    for (const auto& l : lbcsi::testing::LoopDevicesBackedBy(dir_ + "/")) {
      w.loops.push_back(l.name + " " + l.backing);
    }
    for (auto it = std::filesystem::recursive_directory_iterator(dir_);
         it != std::filesystem::recursive_directory_iterator(); ++it) {
      const std::string p = it->path().string();
      if (p == socket_ || p.starts_with(dir_ + "/state")) continue;
      struct stat st {};
      if (lstat(p.c_str(), &st) != 0) continue;
      std::string v = Cat(st.st_mode, " ", S_ISREG(st.st_mode) ? st.st_size : 0);
      if (S_ISREG(st.st_mode) && st.st_size < 4096) {
        std::ifstream in(p);
        v += " " + std::string(std::istreambuf_iterator<char>(in), {});
      }
      w.files[p] = v;
    }
    return w;
  }

  // A loop device the helper did not attach, over a file outside its backing directory but
  // named like one of its volumes.
  void AttachForeignLoop(const std::string& uuid) {
    const std::string img = Cat(outside_, "/", uuid, ".img");
    int f = open(img.c_str(), O_RDWR | O_CREAT, 0600);
    ASSERT_GE(f, 0);
    ASSERT_EQ(ftruncate(f, 16 << 20), 0);
    int control = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    ASSERT_GE(control, 0);
    int n = ioctl(control, LOOP_CTL_GET_FREE);
    close(control);
    ASSERT_GE(n, 0);
    int loop = open(Cat("/dev/loop", n).c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(loop, 0);
    ASSERT_EQ(ioctl(loop, LOOP_SET_FD, f), 0);
    close(loop);
    close(f);
  }

  void MountTmpfs(const std::string& path) {
    std::filesystem::create_directories(path);
    ASSERT_EQ(mount("tmpfs", path.c_str(), "tmpfs", 0, "size=1m"), 0) << path;
    std::ofstream(path + "/token") << "victim secret\n";
  }

  const std::string ours_ = "0e000000-0000-4000-8000-000000000001";     // staged ext4
  const std::string block_ = "0e000000-0000-4000-8000-000000000002";    // attached, raw
  const std::string foreign_ = "0e000000-0000-4000-8000-0000000000ff";  // foreign loop device
  std::string victim_secret_, legacy_foreign_, block_foreign_;
};

struct Case {
  std::string name;
  std::function<grpc::Status()> call;
  StatusCode code;
  std::string message;  // a substring the refusal must contain
};

TEST_F(HostileAgent, EveryRequestIsRefusedWithoutSideEffects) {
  if (dir_.empty()) return;
  // Our own volumes: one staged filesystem, one attached raw volume.
  MakeVolume(ours_, 64 << 20);
  MakeVolume(block_, 16 << 20);
  Attach(ours_);
  Attach(block_);
  v1::FormatRequest f;
  f.set_volume_uuid(ours_);
  f.set_fs_type(v1::FS_TYPE_EXT4);
  f.set_proof(v1::NEVER_WRITTEN_PROOF_CREATED_EMPTY);
  v1::FormatResponse fr;
  ASSERT_TRUE(Call(&Stub::Format, f, &fr, 120).ok());
  const std::string staging = StagingPath("ours");
  {
    v1::MountRequest m;
    m.set_volume_uuid(ours_);
    m.set_staging_path(staging);
    m.set_fs_type(v1::FS_TYPE_EXT4);
    v1::MountResponse mr;
    ASSERT_TRUE(Call(&Stub::Mount, m, &mr).ok());
  }
  // The victims: a pod's secret tmpfs at a CSI publish path, another driver's staged volume in
  // the pre-1.24 layout, a foreign mount at a block publish path, a pod's non-empty emptyDir-like
  // directory where a publish would go, a raw-block pod's existing file with data, an empty
  // file where a directory belongs, a foreign loop device.
  victim_secret_ = PublishPath("victim", "secret");
  MountTmpfs(victim_secret_);
  legacy_foreign_ = Layouts().StageMountLegacyPath("other-pv");
  MountTmpfs(legacy_foreign_);
  block_foreign_ = BlockPublishPath("other-pv", "victim");
  std::ofstream(block_foreign_) << "";
  ASSERT_EQ(
      mount((outside_ + "/sentinel").c_str(), block_foreign_.c_str(), nullptr, MS_BIND, nullptr),
      0);
  const std::string nonempty_dir = PublishPath("victim", "cache");
  std::filesystem::create_directories(nonempty_dir);
  std::ofstream(nonempty_dir + "/data") << "pod data\n";
  const std::string nonempty_file = BlockPublishPath("pv-raw", "victim");
  std::ofstream(nonempty_file) << "raw data\n";
  const std::string empty_file_at_dir = PublishPath("victim", "notadir");
  std::ofstream(empty_file_at_dir) << "";
  const std::string nonempty_staging = StagingPath("nonempty");
  std::ofstream(nonempty_staging + "/data") << "kubelet data\n";
  const std::string block_dir_target = BlockPublishPath("pv-dir", "victim");
  std::filesystem::create_directories(block_dir_target + "/x");
  const std::string symlink_target = BlockPublishPath("pv-link", "victim");
  std::filesystem::create_symlink(outside_ + "/sentinel", symlink_target);
  const std::string fifo_target = PublishPath("victim", "fifo");
  ASSERT_EQ(mkfifo(fifo_target.c_str(), 0600), 0);
  AttachForeignLoop(foreign_);

  // Requests.
  auto mount_at = [&](std::string path, std::string uuid = "", bool create = false) {
    return [=, this] {
      v1::MountRequest m;
      m.set_volume_uuid(uuid.empty() ? ours_ : uuid);
      m.set_staging_path(path);
      m.set_fs_type(v1::FS_TYPE_EXT4);
      m.set_create_staging_path(create);
      v1::MountResponse r;
      return Call(&Stub::Mount, m, &r);
    };
  };
  auto publish_fs = [&](std::string target, std::string staging_path, std::string uuid = "") {
    return [=, this] {
      v1::PublishRequest p;
      p.set_volume_uuid(uuid.empty() ? ours_ : uuid);
      p.set_target_path(target);
      p.set_staging_path(staging_path);
      v1::PublishResponse r;
      return Call(&Stub::Publish, p, &r);
    };
  };
  auto publish_block = [&](std::string target, std::string uuid = "", bool ro = false) {
    return [=, this] {
      v1::PublishRequest p;
      p.set_volume_uuid(uuid.empty() ? block_ : uuid);
      p.set_target_path(target);
      p.set_block_device(true);
      p.set_read_only(ro);
      v1::PublishResponse r;
      return Call(&Stub::Publish, p, &r);
    };
  };
  auto unmount = [&](std::string path, bool remove = false) {
    return [=, this] {
      v1::UnmountRequest u;
      u.set_staging_path(path);
      u.set_remove_staging_path(remove);
      v1::UnmountResponse r;
      return Call(&Stub::Unmount, u, &r);
    };
  };
  auto unpublish = [&](std::string path) {
    return [=, this] {
      v1::UnpublishRequest u;
      u.set_target_path(path);
      v1::UnpublishResponse r;
      return Call(&Stub::Unpublish, u, &r);
    };
  };
  auto expand = [&](std::string path, std::string uuid = "") {
    return [=, this] {
      v1::ExpandFilesystemRequest e;
      e.set_volume_uuid(uuid.empty() ? ours_ : uuid);
      e.set_mount_path(path);
      v1::ExpandFilesystemResponse r;
      return Call(&Stub::ExpandFilesystem, e, &r);
    };
  };
  auto stats = [&](std::string path, std::string uuid = "") {
    return [=, this] {
      v1::StatsRequest s;
      s.set_volume_uuid(uuid.empty() ? ours_ : uuid);
      s.set_path(path);
      v1::StatsResponse r;
      return Call(&Stub::Stats, s, &r);
    };
  };
  auto probe = [&](std::string uuid) {
    return [=, this] {
      v1::ProbeRequest p;
      p.set_volume_uuid(uuid);
      v1::ProbeResponse r;
      return Call(&Stub::Probe, p, &r);
    };
  };
  auto format = [&](std::string uuid) {
    return [=, this] {
      v1::FormatRequest fq;
      fq.set_volume_uuid(uuid);
      fq.set_fs_type(v1::FS_TYPE_EXT4);
      fq.set_proof(v1::NEVER_WRITTEN_PROOF_CREATED_EMPTY);
      v1::FormatResponse r;
      return Call(&Stub::Format, fq, &r, 120);
    };
  };

  // Format of our blank attached volume with mkfs options the helper must refuse itself: without
  // the check it would format the volume (a side effect the snapshot sees).
  auto format_mkfs = [&](v1::FsType fs, std::function<void(v1::MkfsOptions*)> set) {
    return [=, this] {
      v1::FormatRequest fq;
      fq.set_volume_uuid(block_);
      fq.set_fs_type(fs);
      fq.set_proof(v1::NEVER_WRITTEN_PROOF_CREATED_EMPTY);
      set(fq.mutable_mkfs());
      v1::FormatResponse r;
      return Call(&Stub::Format, fq, &r, 120);
    };
  };

  std::vector<Case> cases;
  // 0. mkfs options outside mkfsopts' ranges or for the other filesystem.
  const v1::FsType kExt4 = v1::FS_TYPE_EXT4;
  const v1::FsType kXfs = v1::FS_TYPE_XFS;
  cases.push_back({"Format with an 8 KiB block",
                   format_mkfs(kExt4, [](v1::MkfsOptions* o) { o->set_block_size(8192); }),
                   StatusCode::INVALID_ARGUMENT, "mkfs.mkfs-block-size"});
  cases.push_back({"Format with a block size that is no power of two",
                   format_mkfs(kXfs, [](v1::MkfsOptions* o) { o->set_block_size(3000); }),
                   StatusCode::INVALID_ARGUMENT, "mkfs.mkfs-block-size"});
  cases.push_back({"Format xfs with bytes per inode (ext4 only)",
                   format_mkfs(kXfs, [](v1::MkfsOptions* o) { o->set_bytes_per_inode(4096); }),
                   StatusCode::INVALID_ARGUMENT, "applies to ext4 only"});
  cases.push_back(
      {"Format ext4 with reflink (xfs only)",
       format_mkfs(kExt4, [](v1::MkfsOptions* o) { o->set_xfs_reflink(v1::MKFS_SWITCH_ON); }),
       StatusCode::INVALID_ARGUMENT, "applies to xfs only"});
  cases.push_back(
      {"Format with an unknown switch value",
       format_mkfs(kXfs,
                   [](v1::MkfsOptions* o) { o->set_xfs_crc(static_cast<v1::MkfsSwitch>(7)); }),
       StatusCode::INVALID_ARGUMENT, "mkfs.xfs_crc"});
  cases.push_back({"Format ext4 with a 4 GiB cluster",
                   format_mkfs(kExt4, [](v1::MkfsOptions* o) { o->set_cluster_size(1u << 31); }),
                   StatusCode::INVALID_ARGUMENT, "mkfs.mkfs-ext4-cluster-size"});
  cases.push_back({"Format ext4 with inodes larger than its blocks",
                   format_mkfs(kExt4,
                               [](v1::MkfsOptions* o) {
                                 o->set_block_size(1024);
                                 o->set_inode_size(2048);
                               }),
                   StatusCode::INVALID_ARGUMENT, "mkfs.mkfs-inode-size"});
  // 1. Paths outside kubelet's CSI layouts of this driver, in every path field.
  const std::string uid = "0f4a1c2e-7b3d-4e5f-9a8b-1c2d3e4f5a6b";
  const std::string R = root_;
  // The reason names where the path leaves the layouts, counted below the kubelet root (which
  // component depends on the layouts the field allows; kubeletpaths' own tests check those).
  const std::vector<std::pair<std::string, std::string>> outside_layouts = {
      {R + "/pods/" + uid + "/etc-hosts", "kubelet root"},
      {R + "/pods/" + uid + "/volumes/kubernetes.io~empty-dir/cache", "kubelet root"},
      {R + "/pods/" + uid + "/volumes/kubernetes.io~secret/token", "kubelet root"},
      {R + "/pods/" + uid + "/volumes/kubernetes.io~projected/kube-api-access", "kubelet root"},
      {R + "/pods/" + uid + "/volume-subpaths/v/c/0", "kubelet root"},
      {R + "/pods/" + uid + "/volumeDevices/kubernetes.io~csi/pv", "kubelet root"},
      {R + "/pods/" + uid, "kubelet root"},
      {R + "/plugins/kubernetes.io/csi/other.driver/" + std::string(64, 'a') + "/globalmount",
       "kubelet root"},
      {R + "/plugins/other.driver/ephemeral/" + std::string(40, 'a'), "kubelet root"},
      {R + "/plugins_registry/csi.lightbitslabs.com-reg.sock", "kubelet root"},
      {R + "/pki", "kubelet root"},
      {R, "kubelet root"},
      {outside_ + "/sentinel", "kubelet root"},
      {"/etc", "kubelet root"},
      {R + "/pods/../../outside/sentinel", "kubelet root"},
      {R + "/pods/" + uid + "/volumes/kubernetes.io~csi/pv/mount/x", "kubelet root"},
      {R + "/pods/" + uid + "/volumes/kubernetes.io~csi/PV/mount", "kubelet root"},
      {R + "/plugins/kubernetes.io/csi/csi.lightbitslabs.com/abc/globalmount", "kubelet root"},
      {R + "/pods/" + uid + "/volumes/kubernetes.io~csi/pv/mount/", "end with '/'"},
  };
  for (const auto& [path, why] : outside_layouts) {
    const std::string p = path;
    cases.push_back({"Mount.staging_path " + p, mount_at(p), StatusCode::INVALID_ARGUMENT, why});
    // (the field each refusal names is checked below from the case name)
    cases.push_back({"Publish.target_path (fs) " + p, publish_fs(p, staging),
                     StatusCode::INVALID_ARGUMENT, why});
    cases.push_back({"Publish.staging_path " + p, publish_fs(PublishPath("attacker", "t"), p),
                     StatusCode::INVALID_ARGUMENT, why});
    cases.push_back(
        {"Publish.target_path (block) " + p, publish_block(p), StatusCode::INVALID_ARGUMENT, why});
    cases.push_back({"Unmount.staging_path " + p, unmount(p), StatusCode::INVALID_ARGUMENT, why});
    cases.push_back(
        {"Unpublish.target_path " + p, unpublish(p), StatusCode::INVALID_ARGUMENT, why});
    cases.push_back(
        {"ExpandFilesystem.mount_path " + p, expand(p), StatusCode::INVALID_ARGUMENT, why});
    cases.push_back({"Stats.path " + p, stats(p), StatusCode::INVALID_ARGUMENT, why});
  }
  // 2. Layout-conformant paths used for the wrong role.
  cases.push_back({"Mount at a publish path", mount_at(PublishPath("attacker", "m")),
                   StatusCode::INVALID_ARGUMENT, "staging_path: "});
  cases.push_back({"Mount at a block staging path", mount_at(BlockStagingPath("pv-b")),
                   StatusCode::INVALID_ARGUMENT, "staging_path: "});
  cases.push_back({"fs Publish at a block publish path",
                   publish_fs(BlockPublishPath("pv-x", "a"), staging), StatusCode::INVALID_ARGUMENT,
                   "target_path: "});
  cases.push_back({"block Publish at a fs publish path",
                   publish_block(PublishPath("attacker", "b")), StatusCode::INVALID_ARGUMENT,
                   "target_path: "});
  cases.push_back({"Publish from a publish path as staging",
                   publish_fs(PublishPath("attacker", "c"), PublishPath("attacker", "d")),
                   StatusCode::INVALID_ARGUMENT, "staging_path: "});
  cases.push_back({"Unpublish of a staging path", unpublish(staging), StatusCode::INVALID_ARGUMENT,
                   "target_path: "});
  cases.push_back({"Unmount of a publish path", unmount(victim_secret_),
                   StatusCode::INVALID_ARGUMENT, "staging_path: "});
  cases.push_back({"helper-created staging dir at kubelet's layout",
                   mount_at(Layouts().StageMountPathForHandle("fresh"), "", true),
                   StatusCode::INVALID_ARGUMENT, "create_staging_path"});
  // 3. The four attacks proven against feccdff, and their relatives: foreign mounts, existing data.
  cases.push_back({"bind our volume over a pod's non-empty directory",
                   publish_fs(nonempty_dir, staging), StatusCode::FAILED_PRECONDITION,
                   "not empty"});
  cases.push_back({"Unmount a foreign tmpfs (another driver's legacy staging)",
                   unmount(legacy_foreign_), StatusCode::FAILED_PRECONDITION,
                   "not one of this helper's volumes"});
  cases.push_back({"Unmount+remove a foreign tmpfs", unmount(legacy_foreign_, true),
                   StatusCode::FAILED_PRECONDITION, "not one of this helper's volumes"});
  cases.push_back({"Unpublish a pod's secret tmpfs", unpublish(victim_secret_),
                   StatusCode::FAILED_PRECONDITION, "not one of this helper's volumes"});
  cases.push_back({"Unpublish a foreign bind at a block publish path", unpublish(block_foreign_),
                   StatusCode::FAILED_PRECONDITION, "not one of this helper's volumes"});
  cases.push_back({"block Publish replacing a file that holds data", publish_block(nonempty_file),
                   StatusCode::FAILED_PRECONDITION, "holds data"});
  cases.push_back({"Unpublish deleting an empty file where the layout has a directory",
                   unpublish(empty_file_at_dir), StatusCode::FAILED_PRECONDITION,
                   "not an empty directory"});
  cases.push_back({"Unpublish deleting a block target that holds data", unpublish(nonempty_file),
                   StatusCode::FAILED_PRECONDITION, "not an empty file"});
  cases.push_back({"Publish over a foreign tmpfs", publish_fs(victim_secret_, staging),
                   StatusCode::FAILED_PRECONDITION, "something else mounted"});
  cases.push_back({"block Publish over a foreign bind", publish_block(block_foreign_),
                   StatusCode::FAILED_PRECONDITION, "something else mounted"});
  cases.push_back({"Mount over a non-empty staging directory", mount_at(nonempty_staging),
                   StatusCode::FAILED_PRECONDITION, "not empty"});
  cases.push_back({"block Publish onto a non-empty directory", publish_block(block_dir_target),
                   StatusCode::FAILED_PRECONDITION, "not empty"});
  cases.push_back({"block Publish onto a symlink", publish_block(symlink_target),
                   StatusCode::FAILED_PRECONDITION, "symlink"});
  cases.push_back({"fs Publish onto a fifo", publish_fs(fifo_target, staging),
                   StatusCode::FAILED_PRECONDITION, "neither a directory nor a regular file"});
  cases.push_back({"Publish from a foreign tmpfs as staging",
                   publish_fs(PublishPath("attacker", "e"), legacy_foreign_),
                   StatusCode::FAILED_PRECONDITION, "does not hold volume"});
  cases.push_back({"Stats claiming a foreign tmpfs is our volume", stats(legacy_foreign_),
                   StatusCode::FAILED_PRECONDITION, "does not hold volume"});
  cases.push_back({"Expand a foreign tmpfs as our volume", expand(legacy_foreign_),
                   StatusCode::FAILED_PRECONDITION, "does not have volume"});
  // 4. Devices the helper did not attach.
  cases.push_back({"Probe a foreign loop device", probe(foreign_), StatusCode::FAILED_PRECONDITION,
                   "is not attached"});
  cases.push_back({"Format a foreign loop device", format(foreign_),
                   StatusCode::FAILED_PRECONDITION, "is not attached"});
  cases.push_back({"Mount a foreign loop device", mount_at(StagingPath("foreign"), foreign_),
                   StatusCode::FAILED_PRECONDITION, "is not attached"});
  cases.push_back({"block Publish of a foreign loop device",
                   publish_block(BlockPublishPath("pv-f", "a"), foreign_),
                   StatusCode::FAILED_PRECONDITION, "is not attached"});
  cases.push_back({"read-only block Publish of a foreign loop device (BLKROSET)",
                   publish_block(BlockPublishPath("pv-g", "a"), foreign_, true),
                   StatusCode::FAILED_PRECONDITION, "is not attached"});
  cases.push_back({"Expand a foreign loop device", expand("", foreign_),
                   StatusCode::FAILED_PRECONDITION, "is not attached"});

  // A snapshot after the paths the builders above created (kubelet's parents), before any call.
  const World before = Snapshot();
  int refused = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name.substr(0, 200));
    grpc::Status st = c.call();
    EXPECT_EQ(st.error_code(), c.code) << st.error_message();
    EXPECT_NE(st.error_message().find(c.message), std::string::npos) << st.error_message();
    const World after = Snapshot();
    EXPECT_TRUE(after == before) << "side effect";
    refused += st.error_code() == c.code;
  }
  // The refused Formats wrote nothing on the raw volume.
  {
    v1::ProbeRequest p;
    p.set_volume_uuid(block_);
    v1::ProbeResponse r;
    ASSERT_TRUE(Call(&Stub::Probe, p, &r).ok());
    EXPECT_EQ(r.kind(), v1::CONTENT_KIND_BLANK) << r.type();
  }
  // Detach of a volume the helper does not know leaves the foreign loop device alone.
  v1::DetachResponse dr;
  grpc::Status st = Detach(foreign_, &dr);
  EXPECT_TRUE(!st.ok() || !dr.was_attached()) << st.error_message();
  EXPECT_TRUE(Snapshot() == before) << "Detach of a foreign volume changed something";
  std::printf("hostile agent: %zu cases, %d refused as expected\n", cases.size() + 1, refused);
  EXPECT_GE(cases.size() + 1, 150u);
  // Our own volume still works after all of it.
  v1::PublishResponse pr;
  v1::PublishRequest ok;
  ok.set_volume_uuid(ours_);
  ok.set_target_path(PublishPath("pod-ok", "pv"));
  ok.set_staging_path(staging);
  st = Call(&Stub::Publish, ok, &pr);
  EXPECT_TRUE(st.ok()) << st.error_message();
  v1::UnpublishRequest up;
  up.set_target_path(ok.target_path());
  v1::UnpublishResponse upr;
  EXPECT_TRUE(Call(&Stub::Unpublish, up, &upr).ok());
  EXPECT_TRUE(upr.was_mounted());
}

}  // namespace
}  // namespace lbcsi::helper::testing
