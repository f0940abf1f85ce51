// Concurrent calls (docs/design.md rule 3): while a call on a volume or a path is in
// flight, a second call on that volume or path gets ABORTED at once, never
// queued behind it; calls on other volumes and paths go on. A format that
// outlives its caller's deadline keeps its volume ABORTED until mkfs is done.
//
// Calls are held in flight by freezing the filesystem under the volume files
// (backing_fs.h): mkfs and a read-write mount then sleep in the kernel for as
// long as the test needs, so nothing here depends on timing.

#include "tests/helper/backing_fs.h"

namespace lbcsi::helper::testing {
namespace {

using Stub = v1::NodeHelper::Stub;
using grpc::StatusCode;

class InFlightCalls : public BackedHelper {
 protected:
  // A 64 MiB volume that already holds ext4.
  void MakeExt4Volume(const std::string& uuid) {
    const std::string img = MakeVolume(uuid, 64ull << 20);
    ASSERT_TRUE(RunQuiet({"/usr/sbin/mkfs.ext4", "-q", "-F", img}));
  }

  grpc::Status Probe(const std::string& uuid, v1::ProbeResponse* resp = nullptr) {
    v1::ProbeRequest req;
    req.set_volume_uuid(uuid);
    v1::ProbeResponse r;
    return Call(&Stub::Probe, req, resp ? resp : &r);
  }

  v1::MountRequest MountReq(const std::string& uuid, const std::string& staging, bool ro) {
    v1::MountRequest req;
    req.set_volume_uuid(uuid);
    req.set_staging_path(staging);
    req.set_fs_type(v1::FS_TYPE_EXT4);
    req.set_read_only(ro);
    return req;
  }

  grpc::Status Unmount(const std::string& staging) {
    v1::UnmountRequest req;
    req.set_staging_path(staging);
    v1::UnmountResponse resp;
    return Call(&Stub::Unmount, req, &resp);
  }

  // A helper thread, or a tool its spawner runs (e2fsck before a mount), sleeps
  // in the kernel: either way the call that started it is still in flight.
  bool HelperThreadBlocked() {
    for (const auto& ent : std::filesystem::directory_iterator(Cat("/proc/", pid_, "/task"))) {
      std::optional<ProcStat> s = ReadProcStat(std::stoi(ent.path().filename().string()));
      if (s && s->state == 'D') return true;
    }
    for (pid_t spawner : ChildrenOf(pid_)) {
      for (pid_t tool : ChildrenOf(spawner)) {
        std::optional<ProcStat> s = ReadProcStat(tool);
        if (s && s->state == 'D') return true;
      }
    }
    return false;
  }

  // Every call that names `uuid` (but nothing else in use) is ABORTED.
  void ExpectVolumeCallsAborted(const std::string& uuid, const std::string& free_path) {
    v1::FormatResponse fr;
    grpc::Status st = Call(&Stub::Format, FormatReq(uuid, v1::FS_TYPE_EXT4), &fr);
    EXPECT_EQ(st.error_code(), StatusCode::ABORTED) << "Format: " << st.error_message();
    st = Probe(uuid);
    EXPECT_EQ(st.error_code(), StatusCode::ABORTED) << "Probe: " << st.error_message();
    v1::MountResponse mr;
    st = Call(&Stub::Mount, MountReq(uuid, free_path, false), &mr);
    EXPECT_EQ(st.error_code(), StatusCode::ABORTED) << "Mount: " << st.error_message();
    EXPECT_TRUE(MountsUnder(free_path).empty());
    v1::AttachRequest areq;
    areq.set_volume_uuid(uuid);
    areq.set_subsystem_nqn("nqn.2016-01.com.lightbitslabs:uuid:sim");
    v1::AttachResponse ar;
    st = Call(&Stub::Attach, areq, &ar);
    EXPECT_EQ(st.error_code(), StatusCode::ABORTED) << "Attach: " << st.error_message();
    v1::DetachResponse dr;
    st = Detach(uuid, &dr);
    EXPECT_EQ(st.error_code(), StatusCode::ABORTED) << "Detach: " << st.error_message();
    v1::ExpandFilesystemRequest ereq;
    ereq.set_volume_uuid(uuid);
    v1::ExpandFilesystemResponse er;
    st = Call(&Stub::ExpandFilesystem, ereq, &er);
    EXPECT_EQ(st.error_code(), StatusCode::ABORTED) << "Expand: " << st.error_message();
    v1::PublishRequest preq;
    const std::string btarget = BlockPublishPath("block-target", "p1");
    preq.set_volume_uuid(uuid);
    preq.set_target_path(btarget);
    preq.set_block_device(true);
    v1::PublishResponse pr;
    st = Call(&Stub::Publish, preq, &pr);
    EXPECT_EQ(st.error_code(), StatusCode::ABORTED) << "Publish: " << st.error_message();
    EXPECT_FALSE(std::filesystem::exists(btarget));
  }

  // Another volume is served normally meanwhile (read-only work: the backing is frozen).
  void ExpectOtherVolumeServed(const std::string& uuid) {
    v1::ProbeResponse p;
    grpc::Status st = Probe(uuid, &p);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(p.type(), "ext4");
    const std::string staging = StagingPath("other-" + uuid);
    v1::MountResponse mr;
    st = Call(&Stub::Mount, MountReq(uuid, staging, true), &mr);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(MountsUnder(staging).size(), 1u);
    st = Unmount(staging);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(MountsUnder(staging).empty());
    v1::InventoryResponse inv;
    st = Call(&Stub::Inventory, v1::InventoryRequest(), &inv);
    EXPECT_TRUE(st.ok()) << st.error_message();
  }
};

TEST_F(InFlightCalls, FormatInFlightAbortsCallsOnItsVolumeOnly) {
  if (dir_.empty()) return;
  const std::string a = "4a000000-0000-4000-8000-000000000001";
  const std::string b = "4a000000-0000-4000-8000-000000000002";
  MakeVolume(a, 512ull << 20);
  MakeExt4Volume(b);
  Attach(a);
  Attach(b);
  const std::string free_path = StagingPath("free");

  Freeze();
  grpc::Status first;
  v1::FormatResponse first_resp;
  auto stub = NewStub();
  std::thread call([&] {
    first = CallOn(*stub, &Stub::Format, FormatReq(a, v1::FS_TYPE_EXT4), &first_resp, 600);
  });
  OnExit join([&] {
    Thaw();
    if (call.joinable()) call.join();
  });
  ASSERT_TRUE(WaitForBlockedMkfs(120).has_value()) << "mkfs never blocked on the frozen backing";

  ExpectVolumeCallsAborted(a, free_path);
  ExpectOtherVolumeServed(b);

  Thaw();
  call.join();
  ASSERT_TRUE(first.ok()) << first.error_message();
  EXPECT_TRUE(first_resp.formatted());
  v1::ProbeResponse p;
  ASSERT_TRUE(Probe(a, &p).ok());
  EXPECT_EQ(p.type(), "ext4");
  EXPECT_FALSE(p.format_in_progress());
}

TEST_F(InFlightCalls, FormatPastItsDeadlineKeepsTheVolumeBusyUntilMkfsEnds) {
  if (dir_.empty()) return;
  const std::string c = "4b000000-0000-4000-8000-000000000001";
  const std::string b = "4b000000-0000-4000-8000-000000000002";
  MakeVolume(c, 512ull << 20);
  MakeExt4Volume(b);
  Attach(c);
  Attach(b);
  const std::string free_path = StagingPath("free");

  Freeze();
  OnExit thaw([&] { Thaw(); });
  v1::FormatResponse fr;
  // The helper answers before the client gives up, and leaves mkfs running.
  grpc::Status st = Call(&Stub::Format, FormatReq(c, v1::FS_TYPE_EXT4), &fr, 8);
  EXPECT_EQ(st.error_code(), StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  ASSERT_TRUE(WaitForBlockedMkfs(120).has_value());
  EXPECT_EQ(access(FormatRecord(c).c_str(), F_OK), 0);

  ExpectVolumeCallsAborted(c, free_path);
  ExpectOtherVolumeServed(b);

  Thaw();
  // No timing assumption: the volume comes free once mkfs ends.
  v1::ProbeResponse p;
  ASSERT_TRUE(WaitFor([&] { return Probe(c, &p).ok(); }, 300)) << "volume stayed busy";
  EXPECT_EQ(p.kind(), v1::CONTENT_KIND_FILESYSTEM);
  EXPECT_EQ(p.type(), "ext4");
  EXPECT_FALSE(p.format_in_progress());
  EXPECT_NE(access(FormatRecord(c).c_str(), F_OK), 0);
  st = Call(&Stub::Format, FormatReq(c, v1::FS_TYPE_EXT4), &fr, 300);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(fr.formatted()) << "the background format finished; nothing left to do";
}

// A mount stuck in the kernel holds both its volume and its staging path.
TEST_F(InFlightCalls, MountInFlightAbortsCallsOnItsVolumeAndPath) {
  if (dir_.empty()) return;
  const std::string d = "4c000000-0000-4000-8000-000000000001";
  const std::string e = "4c000000-0000-4000-8000-000000000002";
  MakeExt4Volume(d);
  MakeExt4Volume(e);
  Attach(d);
  Attach(e);
  const std::string staging = StagingPath("staging-d");
  const std::string target = PublishPath("p1", "target-d");

  Freeze();
  grpc::Status first;
  v1::MountResponse first_resp;
  auto stub = NewStub();
  std::thread call(
      [&] { first = CallOn(*stub, &Stub::Mount, MountReq(d, staging, false), &first_resp, 600); });
  OnExit join([&] {
    Thaw();
    if (call.joinable()) call.join();
  });
  // A read-write ext4 stage writes (e2fsck -p, then the mount): that write sleeps on the frozen
  // backing.
  ASSERT_TRUE(WaitFor([&] { return HelperThreadBlocked(); }, 120)) << "the mount never blocked";

  v1::MountResponse mr;
  grpc::Status st = Call(&Stub::Mount, MountReq(e, staging, true), &mr);
  EXPECT_EQ(st.error_code(), StatusCode::ABORTED)
      << "other volume, same path: " << st.error_message();
  st = Unmount(staging);
  EXPECT_EQ(st.error_code(), StatusCode::ABORTED) << "Unmount: " << st.error_message();
  v1::PublishRequest preq;
  preq.set_volume_uuid(d);
  preq.set_target_path(target);
  preq.set_staging_path(staging);
  v1::PublishResponse pr;
  st = Call(&Stub::Publish, preq, &pr);
  EXPECT_EQ(st.error_code(), StatusCode::ABORTED) << "Publish: " << st.error_message();
  EXPECT_FALSE(std::filesystem::exists(target));
  ExpectVolumeCallsAborted(d, StagingPath("free"));
  ExpectOtherVolumeServed(e);

  Thaw();
  call.join();
  ASSERT_TRUE(first.ok()) << first.error_message();
  EXPECT_FALSE(first_resp.already_mounted());
  ASSERT_EQ(MountsUnder(staging).size(), 1u);
  st = Unmount(staging);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(MountsUnder(staging).empty());
}

}  // namespace
}  // namespace lbcsi::helper::testing
