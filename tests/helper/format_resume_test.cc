// Format after a crash (docs/design.md rule 1): a format the helper recorded as
// started and that never finished is finished by the next Format call
// (resumed_interrupted_format), and that record is the only thing that ever
// lets the helper write over a signature. A volume that holds a filesystem and
// has no record, or a record that does not match what is on the volume, is
// never formatted again.
//
// The crash is real: the volume files sit on a frozen filesystem, so mkfs
// blocks in the kernel at its first flush and the helper is SIGKILLed while
// mkfs provably runs. The window after mkfs exits and before the record is
// cleared cannot be hit by a kill, so that case writes the record the way the
// helper does (format/<uuid> in --state-dir, holding the fs type).

#include "tests/helper/backing_fs.h"

namespace lbcsi::helper::testing {
namespace {

using Stub = v1::NodeHelper::Stub;

std::string FsName(v1::FsType fs) {
  return fs == v1::FS_TYPE_XFS ? "xfs" : "ext4";
}

class FormatResumeBase : public BackedHelper {
 protected:
  // mkfs.xfs wants at least 300 MB.
  static constexpr uint64_t kSize = 512ull << 20;

  void WriteRecord(const std::string& uuid, const std::string& body) {
    std::ofstream(FormatRecord(uuid)) << body;
    ASSERT_EQ(chmod(FormatRecord(uuid).c_str(), 0600), 0);
  }

  v1::ProbeResponse Probe(const std::string& uuid) {
    v1::ProbeRequest req;
    req.set_volume_uuid(uuid);
    v1::ProbeResponse resp;
    grpc::Status st = Call(&Stub::Probe, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  grpc::Status Mount(const std::string& uuid, v1::FsType fs, const std::string& staging) {
    v1::MountRequest req;
    req.set_volume_uuid(uuid);
    req.set_staging_path(staging);
    req.set_fs_type(fs);
    v1::MountResponse resp;
    return Call(&Stub::Mount, req, &resp);
  }

  grpc::Status Unmount(const std::string& staging) {
    v1::UnmountRequest req;
    req.set_staging_path(staging);
    v1::UnmountResponse resp;
    return Call(&Stub::Unmount, req, &resp);
  }

  // After a resumed format: the volume mounts, holds a usable filesystem, and
  // a further Format leaves it alone.
  void ExpectUsableAndFinal(const std::string& uuid, v1::FsType fs) {
    EXPECT_NE(access(FormatRecord(uuid).c_str(), F_OK), 0) << "record left after the format";
    v1::ProbeResponse p = Probe(uuid);
    EXPECT_EQ(p.kind(), v1::CONTENT_KIND_FILESYSTEM);
    EXPECT_EQ(p.type(), FsName(fs));
    EXPECT_FALSE(p.format_in_progress());
    const std::string staging = StagingPath("staging-" + uuid);
    grpc::Status st = Mount(uuid, fs, staging);
    ASSERT_TRUE(st.ok()) << st.error_message();
    std::ofstream(staging + "/kept") << "data after the resumed format\n";
    ASSERT_TRUE(Unmount(staging).ok());
    v1::FormatResponse fr;
    st = Call(&Stub::Format, FormatReq(uuid, fs), &fr, 300);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_FALSE(fr.formatted()) << "a finished volume was formatted again";
    EXPECT_FALSE(fr.resumed_interrupted_format());
    ASSERT_TRUE(Mount(uuid, fs, staging).ok());
    {
      std::ifstream in(staging + "/kept");
      std::string line;
      std::getline(in, line);
      EXPECT_EQ(line, "data after the resumed format");
    }
    st = Unmount(staging);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
};

class FormatResume : public FormatResumeBase, public ::testing::WithParamInterface<v1::FsType> {};
using FormatRecordRules = FormatResumeBase;

TEST_P(FormatResume, HelperKilledDuringMkfsIsFinishedByTheNextFormat) {
  if (dir_.empty()) return;
  const v1::FsType fs = GetParam();
  const std::string uuid = fs == v1::FS_TYPE_XFS ? "3a000000-0000-4000-8000-000000000001"
                                                 : "3a000000-0000-4000-8000-000000000002";
  MakeVolume(uuid, kSize);
  Attach(uuid);

  Freeze();
  grpc::Status first;
  auto stub = NewStub();
  std::thread call([&] {
    v1::FormatResponse r;
    first = CallOn(*stub, &Stub::Format, FormatReq(uuid, fs), &r, 600);
  });
  OnExit join([&] {
    Thaw();
    if (call.joinable()) call.join();
  });
  ASSERT_TRUE(WaitFor([&] { return access(FormatRecord(uuid).c_str(), F_OK) == 0; }, 120))
      << "Format never recorded its start";
  std::optional<pid_t> mkfs = WaitForBlockedMkfs(120);
  ASSERT_TRUE(mkfs.has_value()) << "mkfs never blocked on the frozen backing filesystem";
  const std::string exe = std::filesystem::read_symlink(Cat("/proc/", *mkfs, "/exe"));
  EXPECT_TRUE(exe.ends_with(fs == v1::FS_TYPE_XFS ? "/mkfs.xfs" : "/mke2fs")) << exe;

  KillHelper();
  call.join();
  EXPECT_FALSE(first.ok()) << "the first Format cannot have succeeded";
  // mkfs dies with the helper (PDEATHSIG through the spawner) once its I/O can end.
  Thaw();
  ASSERT_TRUE(WaitFor(
      [&] {
        std::optional<ProcStat> s = ReadProcStat(*mkfs);
        return !s || s->state == 'Z';
      },
      120))
      << "mkfs " << *mkfs << " outlived the helper";
  ASSERT_EQ(access(FormatRecord(uuid).c_str(), F_OK), 0) << "the crash must leave the record";

  StartHelper();
  v1::ProbeResponse p = Probe(uuid);
  EXPECT_TRUE(p.format_in_progress());
  // Half-made: never mounted.
  const std::string staging = StagingPath("early");
  grpc::Status st = Mount(uuid, fs, staging);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_TRUE(MountsUnder(staging).empty());

  v1::FormatResponse fr;
  st = Call(&Stub::Format, FormatReq(uuid, fs), &fr, 300);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(fr.formatted());
  EXPECT_TRUE(fr.resumed_interrupted_format());
  ExpectUsableAndFinal(uuid, fs);
}

// mkfs wrote the whole filesystem, then the helper died before it cleared the
// record: the probe sees a complete filesystem of the recorded type.
TEST_P(FormatResume, CompleteFilesystemWithRecordIsFormattedOnceMore) {
  if (dir_.empty()) return;
  const v1::FsType fs = GetParam();
  const std::string uuid = fs == v1::FS_TYPE_XFS ? "3b000000-0000-4000-8000-000000000001"
                                                 : "3b000000-0000-4000-8000-000000000002";
  const std::string img = MakeVolume(uuid, kSize);
  ASSERT_TRUE(RunQuiet(fs == v1::FS_TYPE_XFS
                           ? std::vector<std::string>{"/usr/sbin/mkfs.xfs", "-q", "-K", img}
                           : std::vector<std::string>{"/usr/sbin/mkfs.ext4", "-q", "-F", img}));
  WriteRecord(uuid, FsName(fs) + "\n");
  Attach(uuid);
  v1::ProbeResponse p = Probe(uuid);
  EXPECT_EQ(p.kind(), v1::CONTENT_KIND_FILESYSTEM);
  EXPECT_TRUE(p.format_in_progress());
  const std::string staging = StagingPath("early");
  EXPECT_EQ(Mount(uuid, fs, staging).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  v1::FormatResponse fr;
  grpc::Status st = Call(&Stub::Format, FormatReq(uuid, fs), &fr, 300);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(fr.formatted());
  EXPECT_TRUE(fr.resumed_interrupted_format());
  ExpectUsableAndFinal(uuid, fs);
}

INSTANTIATE_TEST_SUITE_P(Fs, FormatResume, ::testing::Values(v1::FS_TYPE_EXT4, v1::FS_TYPE_XFS),
                         [](const auto& info) { return FsName(info.param); });

// A record licenses only our own filesystem type: a volume whose content does
// not match it, or a request for another type, is refused and left as it was.
TEST_F(FormatRecordRules, RecordDoesNotLicenseOtherContent) {
  if (dir_.empty()) return;
  const std::string uuid = "3c000000-0000-4000-8000-000000000001";
  const std::string img = MakeVolume(uuid, kSize);
  ASSERT_TRUE(RunQuiet({"/usr/sbin/mkfs.xfs", "-q", "-K", img}));
  WriteRecord(uuid, "ext4\n");  // we were making ext4; someone else's xfs is there now
  const std::string before = Sha256File(img);
  Attach(uuid);
  for (v1::FsType fs : {v1::FS_TYPE_EXT4, v1::FS_TYPE_XFS}) {
    v1::FormatResponse fr;
    grpc::Status st = Call(&Stub::Format, FormatReq(uuid, fs), &fr, 300);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << FsName(fs) << ": " << st.error_message();
  }
  EXPECT_TRUE(Probe(uuid).format_in_progress()) << "a refused format must keep the record";

  // A blank volume with an ext4 record: finishing it as xfs is not "our" format.
  const std::string blank = "3c000000-0000-4000-8000-000000000002";
  const std::string blank_img = MakeVolume(blank, kSize);
  WriteRecord(blank, "ext4\n");
  Attach(blank);
  v1::FormatResponse fr;
  grpc::Status st = Call(&Stub::Format, FormatReq(blank, v1::FS_TYPE_XFS), &fr, 300);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();

  v1::DetachResponse dr;
  ASSERT_TRUE(Detach(uuid, &dr).ok());
  ASSERT_TRUE(Detach(blank, &dr).ok());
  EXPECT_EQ(Sha256File(img), before) << "the volume changed";
  struct stat sb {};
  ASSERT_EQ(stat(blank_img.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_blocks, 0) << "something was written to the blank volume";
}

// A half-made filesystem is not handed to a pod as a device either.
TEST_F(FormatRecordRules, BlockPublishIsRefusedWhileAFormatRecordExists) {
  if (dir_.empty()) return;
  const std::string uuid = "3c000000-0000-4000-8000-000000000003";
  MakeVolume(uuid, 64ull << 20);
  WriteRecord(uuid, "ext4\n");
  Attach(uuid);
  v1::PublishRequest p;
  p.set_volume_uuid(uuid);
  p.set_target_path(BlockPublishPath("pv-half-made", "pod1"));
  p.set_block_device(true);
  v1::PublishResponse r;
  grpc::Status st = Call(&Stub::Publish, p, &r);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_NE(st.error_message().find("unfinished format"), std::string::npos) << st.error_message();
  EXPECT_FALSE(std::filesystem::exists(p.target_path()));
  // Without the record the same request publishes.
  ASSERT_EQ(unlink(FormatRecord(uuid).c_str()), 0);
  st = Call(&Stub::Publish, p, &r);
  EXPECT_TRUE(st.ok()) << st.error_message();
  v1::UnpublishRequest u;
  u.set_target_path(p.target_path());
  v1::UnpublishResponse ur;
  ASSERT_TRUE(Call(&Stub::Unpublish, u, &ur).ok());
  v1::DetachResponse dr;
  ASSERT_TRUE(Detach(uuid, &dr).ok());
}

// Rule 1, the helper's own part beyond the probe: a volume that probes blank but
// has data in its first or last MiB is not formatted, whatever proof comes with it.
TEST_F(FormatRecordRules, DataInTheFirstOrLastMiBBlocksTheFormat) {
  if (dir_.empty()) return;
  constexpr uint64_t kVol = 64ull << 20;
  struct Spot {
    const char* uuid;
    uint64_t offset;
  };
  for (const Spot& spot : {Spot{"3d000000-0000-4000-8000-000000000001", 700ull << 10},
                           Spot{"3d000000-0000-4000-8000-000000000002", kVol - 4096}}) {
    SCOPED_TRACE(spot.offset);
    const std::string img = MakeVolume(spot.uuid, kVol);
    {
      std::fstream f(img, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(spot.offset));
      f << "application data with no signature";
    }
    const std::string before = Sha256File(img);
    Attach(spot.uuid);
    ASSERT_EQ(Probe(spot.uuid).kind(), v1::CONTENT_KIND_BLANK);
    v1::FormatResponse fr;
    grpc::Status st = Call(&Stub::Format, FormatReq(spot.uuid, v1::FS_TYPE_EXT4), &fr, 300);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
    EXPECT_NE(st.error_message().find(Cat("byte ", spot.offset, " is not zero")), std::string::npos)
        << st.error_message();
    EXPECT_FALSE(Probe(spot.uuid).format_in_progress()) << "refused before the record";
    v1::DetachResponse dr;
    ASSERT_TRUE(Detach(spot.uuid, &dr).ok());
    EXPECT_EQ(Sha256File(img), before) << "the volume changed";
  }
}

// No record: a volume with a filesystem and files is never formatted again,
// whatever the request and whatever proof it carries.
TEST_F(FormatRecordRules, FilesystemWithoutRecordIsNeverFormattedAgain) {
  if (dir_.empty()) return;
  const std::string uuid = "3d000000-0000-4000-8000-000000000001";
  MakeVolume(uuid, kSize);
  Attach(uuid);
  v1::FormatResponse fr;
  grpc::Status st = Call(&Stub::Format, FormatReq(uuid, v1::FS_TYPE_EXT4), &fr, 300);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(fr.formatted());
  EXPECT_FALSE(fr.resumed_interrupted_format());
  const std::string staging = StagingPath("staging");
  ASSERT_TRUE(Mount(uuid, v1::FS_TYPE_EXT4, staging).ok());
  std::ofstream(staging + "/precious") << "user data\n";
  ASSERT_TRUE(Unmount(staging).ok());
  v1::DetachResponse dr;
  ASSERT_TRUE(Detach(uuid, &dr).ok());
  const std::string img = Cat(volumes_, "/", uuid, ".img");
  const std::string before = Sha256File(img);

  Attach(uuid);
  for (auto proof :
       {v1::NEVER_WRITTEN_PROOF_CREATED_EMPTY, v1::NEVER_WRITTEN_PROOF_WRITTEN_BYTES_ZERO}) {
    v1::FormatRequest same = FormatReq(uuid, v1::FS_TYPE_EXT4);
    same.set_proof(proof);
    st = Call(&Stub::Format, same, &fr, 300);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_FALSE(fr.formatted());
    EXPECT_FALSE(fr.resumed_interrupted_format());
    v1::FormatRequest other = FormatReq(uuid, v1::FS_TYPE_XFS);
    other.set_proof(proof);
    st = Call(&Stub::Format, other, &fr, 300);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  }
  EXPECT_FALSE(Probe(uuid).format_in_progress());
  EXPECT_NE(access(FormatRecord(uuid).c_str(), F_OK), 0);
  ASSERT_TRUE(Detach(uuid, &dr).ok());
  EXPECT_EQ(Sha256File(img), before) << "the filesystem was touched";
}

}  // namespace
}  // namespace lbcsi::helper::testing
