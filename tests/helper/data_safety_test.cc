// Data safety (docs/design.md rule 1): for volumes that hold ext4, xfs, a GPT or MBR
// partition table, a LUKS2 header, or data at 1 GiB behind a zeroed first MiB,
// no combination of requests changes a byte of the backing file, and format is
// refused without the never-written proof even when the probe finds nothing.

#include <sys/wait.h>

#include <cstring>

#include "tests/helper/helper_fixture.h"

namespace lbcsi::helper::testing {
namespace {

using Stub = v1::NodeHelper::Stub;

uint32_t Crc32(const unsigned char* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
  }
  return ~c;
}

void PutLe32(unsigned char* p, uint32_t v) {
  std::memcpy(p, &v, 4);
}
void PutLe64(unsigned char* p, uint64_t v) {
  std::memcpy(p, &v, 8);
}

void WriteAt(const std::string& file, uint64_t off, const void* data, size_t n) {
  int fd = open(file.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, data, n, static_cast<off_t>(off)), static_cast<ssize_t>(n));
  close(fd);
}

void RunTool(std::vector<std::string> argv) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    execv(a[0], a.data());
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << argv[0];
}

void MakeMbr(const std::string& f) {
  unsigned char s[512] = {};
  unsigned char* e = s + 446;
  e[4] = 0x83;             // Linux partition
  PutLe32(e + 8, 2048);    // first LBA
  PutLe32(e + 12, 32768);  // sectors
  s[510] = 0x55;
  s[511] = 0xaa;
  WriteAt(f, 0, s, sizeof(s));
}

void MakeGpt(const std::string& f, uint64_t size) {
  unsigned char mbr[512] = {};
  mbr[446 + 4] = 0xee;
  PutLe32(mbr + 446 + 8, 1);
  PutLe32(mbr + 446 + 12, static_cast<uint32_t>(size / 512 - 1));
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  WriteAt(f, 0, mbr, sizeof(mbr));
  std::vector<unsigned char> entries(128 * 128, 0);
  unsigned char* pe = entries.data();
  const unsigned char linux_fs[16] = {0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
                                      0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4};
  std::memcpy(pe, linux_fs, 16);
  pe[16] = 1;  // unique guid, non-zero
  PutLe64(pe + 32, 2048);
  PutLe64(pe + 40, 4095);
  WriteAt(f, 2 * 512, entries.data(), entries.size());
  unsigned char h[512] = {};
  std::memcpy(h, "EFI PART", 8);
  PutLe32(h + 8, 0x00010000);
  PutLe32(h + 12, 92);
  PutLe64(h + 24, 1);
  PutLe64(h + 32, size / 512 - 1);
  PutLe64(h + 40, 34);
  PutLe64(h + 48, size / 512 - 34);
  h[56] = 7;  // disk guid
  PutLe64(h + 72, 2);
  PutLe32(h + 80, 128);
  PutLe32(h + 84, 128);
  PutLe32(h + 88, Crc32(entries.data(), entries.size()));
  PutLe32(h + 16, Crc32(h, 92));
  WriteAt(f, 512, h, sizeof(h));
}

void MakeLuks2(const std::string& f) {
  unsigned char h[4096] = {};
  std::memcpy(h, "LUKS\xba\xbe", 6);
  h[7] = 2;                                                          // version 2, big-endian
  h[8 + 6] = 0x40;                                                   // hdr_size 16384 (BE u64)
  h[16 + 7] = 1;                                                     // seqid
  std::memcpy(h + 72, "sha256", 6);                                  // checksum_alg
  std::memcpy(h + 168, "5a5a5a5a-1111-4222-8333-444444444444", 36);  // uuid
  WriteAt(f, 0, h, sizeof(h));
}

struct Fixture {
  const char* name;
  const char* uuid;
  uint64_t size;
  v1::ContentKind kind;
};

class DataSafety : public HelperProcess, public ::testing::WithParamInterface<Fixture> {};

TEST_P(DataSafety, NoRequestCombinationChangesTheVolume) {
  if (dir_.empty()) return;
  const Fixture fx = GetParam();
  const std::string uuid = fx.uuid;
  std::string img = MakeVolume(uuid, fx.size);
  std::string kind = fx.name;
  if (kind == "ext4") RunTool({"/usr/sbin/mkfs.ext4", "-q", "-F", img});
  if (kind == "xfs") RunTool({"/usr/sbin/mkfs.xfs", "-q", img});
  if (kind == "mbr") MakeMbr(img);
  if (kind == "gpt") MakeGpt(img, fx.size);
  if (kind == "luks2") MakeLuks2(img);
  if (kind == "data_at_1gib") {
    std::vector<unsigned char> data(1 << 20);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>(i * 131 + 7);
    WriteAt(img, 1ull << 30, data.data(), data.size());
  }
  const std::string before = Sha256File(img);
  Attach(uuid);

  v1::ProbeRequest p;
  p.set_volume_uuid(uuid);
  v1::ProbeResponse pr;
  ASSERT_TRUE(Call(&Stub::Probe, p, &pr).ok());
  EXPECT_EQ(pr.kind(), fx.kind) << pr.type();

  const std::string staging = StagingPath("staging");
  for (v1::FsType fs : {v1::FS_TYPE_EXT4, v1::FS_TYPE_XFS}) {
    for (int proof : {0, 1, 2}) {
      for (int access = 0; access < 3; ++access) {  // rw single, read-only, multi-node
        // The one combination that may legitimately write: a blank volume with a
        // proof, single-node rw. The data-at-1GiB fixture is exactly the case the
        // proof exists for (the probe cannot see it), so a proof is never sent for it.
        if (proof != 0 && access == 0 && fx.kind == v1::CONTENT_KIND_BLANK) continue;
        v1::FormatRequest f;
        f.set_volume_uuid(uuid);
        f.set_fs_type(fs);
        f.set_proof(static_cast<v1::NeverWrittenProof>(proof));
        f.set_read_only(access == 1);
        f.set_multi_node(access == 2);
        v1::FormatResponse fr;
        grpc::Status st = Call(&Stub::Format, f, &fr, 120);
        bool same_fs = fx.kind == v1::CONTENT_KIND_FILESYSTEM &&
                       kind == (fs == v1::FS_TYPE_EXT4 ? "ext4" : "xfs");
        if (st.ok()) {
          EXPECT_TRUE(same_fs) << kind << " formatted as " << fs;
          EXPECT_FALSE(fr.formatted());
        } else {
          EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
        }
      }
    }
    // Read-only mounts never write (noload / norecovery); a wrong type is refused.
    v1::MountRequest m;
    m.set_volume_uuid(uuid);
    m.set_staging_path(staging);
    m.set_fs_type(fs);
    m.set_read_only(true);
    v1::MountResponse mr;
    grpc::Status st = Call(&Stub::Mount, m, &mr);
    bool same_fs =
        fx.kind == v1::CONTENT_KIND_FILESYSTEM && kind == (fs == v1::FS_TYPE_EXT4 ? "ext4" : "xfs");
    EXPECT_EQ(st.ok(), same_fs) << st.error_message();
    v1::UnmountRequest u;
    u.set_staging_path(staging);
    v1::UnmountResponse ur;
    ASSERT_TRUE(Call(&Stub::Unmount, u, &ur).ok());
    if (fx.kind != v1::CONTENT_KIND_FILESYSTEM) {
      // A read-write mount of a non-filesystem is refused as well.
      m.set_read_only(false);
      EXPECT_FALSE(Call(&Stub::Mount, m, &mr).ok());
    }
  }
  v1::DetachResponse dr;
  ASSERT_TRUE(Detach(uuid, &dr).ok());
  EXPECT_EQ(Sha256File(img), before) << kind << ": the volume changed";
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, DataSafety,
    ::testing::Values(Fixture{"ext4", "1a000000-0000-4000-8000-000000000001", 64ull << 20,
                              v1::CONTENT_KIND_FILESYSTEM},
                      Fixture{"xfs", "1b000000-0000-4000-8000-000000000002", 320ull << 20,
                              v1::CONTENT_KIND_FILESYSTEM},
                      Fixture{"gpt", "1c000000-0000-4000-8000-000000000003", 64ull << 20,
                              v1::CONTENT_KIND_PARTITION_TABLE},
                      Fixture{"mbr", "1d000000-0000-4000-8000-000000000004", 64ull << 20,
                              v1::CONTENT_KIND_PARTITION_TABLE},
                      Fixture{"luks2", "1e000000-0000-4000-8000-000000000005", 64ull << 20,
                              v1::CONTENT_KIND_CRYPTO},
                      Fixture{"data_at_1gib", "1f000000-0000-4000-8000-000000000006",
                              (1ull << 30) + (4ull << 20), v1::CONTENT_KIND_BLANK}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace lbcsi::helper::testing
