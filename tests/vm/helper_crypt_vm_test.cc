// Host encryption for real, in the VM guest: lbcsi-helper (--transport nvme, seccomp
// enforced) drives libcryptsetup and dm-crypt over NVMe/TCP volumes exported by the
// kernel target on loopback (tests/vm/nvmet.sh). One test, one helper start-up:
//   - a never-written volume: LUKS2 format (the shipped plugin's parameters, 256-bit key,
//     checked with cryptsetup luksDump) -> open -> ext4 inside -> mount -> write; the raw
//     namespace never shows the plaintext; close refused while mounted, detach refused while
//     open; unmount -> close -> detach;
//   - stage again: a wrong passphrase is PERMISSION_DENIED (no mapping left), the right one
//     opens and the data reads back;
//   - online expand: the namespace grows, the LUKS mapping then ext4 follow;
//   - a volume formatted the way the shipped plugin does (cryptsetup luksFormat --type luks2
//     --cipher aes-xts-plain64 --key-size 256 --hash sha256, with a file written through
//     cryptsetup open) opens and mounts with its data, and is not re-formatted;
//   - the helper's log (trace level) never holds a passphrase.
// Registered only in the guest suite (tests/vm/CMakeLists.txt).

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "lbcsi/helper/v1/helper.grpc.pb.h"
#include "tests/vm/guest_util.h"
#include "tests/vm/rpc_assert.h"

namespace {

using namespace lbcsi::vmtest;
namespace fs = std::filesystem;
namespace hv1 = ::lbcsi::helper::v1;
using Clock = std::chrono::steady_clock;
using Stub = hv1::NodeHelper::Stub;

constexpr char kPass[] = "VM-luks-S3cret-passphrase-0xFEED";
constexpr char kWrong[] = "VM-luks-wrong-passphrase-0xBAD";
constexpr char kShippedPass[] = "Shipped-plugin-passphrase-0x600D";

// bash with nvmet.sh sourced and /sbin on PATH; true on exit status 0.
bool Sh(const std::string& script) {
  const std::string nvmet = Env("LBCSI_SOURCE_DIR") + "/tests/vm/nvmet.sh";
  std::ofstream(std::string("/var/tmp/crypt-vm-cmd.sh"))
      << "set -eu\nexport PATH=/usr/sbin:/sbin:$PATH\n. \"" << nvmet << "\"\n"
      << script << "\n";
  return std::system("bash /var/tmp/crypt-vm-cmd.sh") == 0;
}

class HelperCryptVmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(Env("LBCSI_IN_VM"), "1") << "runs inside the VM guest only (tests/vm/run-in-vm.sh)";
    ASSERT_EQ(geteuid(), 0u);
    char tmpl[] = "/var/tmp/helper-crypt-vm.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (const char* d : {"/root", "/state", "/etc"}) fs::create_directories(dir_ + d);
    socket_ = dir_ + "/helper.sock";
    log_ = dir_ + "/helper.log";
    const std::string helper = Env("LBCSI_HELPER_BIN");
    ASSERT_FALSE(helper.empty()) << "LBCSI_HELPER_BIN (set by the guest suite) is missing";
    std::vector<std::string> args = {
        helper, "--socket", socket_, "--allowed-uid", "0", "--allowed-gid", "0",
        "--allow-root-client", "--root", dir_ + "/root", "--state-dir", dir_ + "/state",
        "--host-nqn-file", dir_ + "/etc/hostnqn", "--transport", "nvme", "--ctrl-loss-tmo", "5",
        "--log-level", "trace", "--seccomp",
        Env("LBCSI_CRYPT_VM_SECCOMP").empty() ? "enforce" : Env("LBCSI_CRYPT_VM_SECCOMP"),
        // Cheap key slots under TCG: the test is about behaviour, not PBKDF cost.
        "--luks-pbkdf-iterations", "4", "--luks-pbkdf-memory-kib", "32768", "--luks-pbkdf-parallel",
        "1"};
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd >= 0) dup2(fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    for (auto end = Clock::now() + std::chrono::seconds(60); !fs::exists(socket_);) {
      int status = 0;
      ASSERT_EQ(waitpid(pid_, &status, WNOHANG), 0) << "helper exited early:\n" << ReadAll(log_);
      ASSERT_LT(Clock::now(), end) << "helper did not create its socket in 60 s";
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    stub_ = hv1::NodeHelper::NewStub(
        grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials()));
    nqn_ = "nqn.2016-01.com.lightbitslabs:uuid:" + NewUuid();
    ASSERT_TRUE(Sh("nvmet_need_cfg; nvmet_subsys " + nqn_ + "; nvmet_port_add " + nqn_ +
                   " 1 127.0.0.1 4420"));
    target_up_ = true;
    t0_ = Clock::now();
  }

  void TearDown() override {
    if (HasFailure() || !Env("LBCSI_CRYPT_VM_SECCOMP").empty()) {
      // What the helper said, and any seccomp verdict the kernel logged (type=1326).
      std::string log = ReadAll(log_);
      std::printf("---- helper log (last 6000 bytes) ----\n%s\n",
                  log.substr(log.size() > 6000 ? log.size() - 6000 : 0).c_str());
      Sh("dmesg | grep -E 'type=1326|seccomp' | tail -40 || true");
    }
    for (const std::string& m : mounts_) std::system(("umount -q " + m + " 2>/dev/null").c_str());
    for (const std::string& u : uuids_) {
      Sh("dmsetup remove lbcsi-" + u + " 2>/dev/null || true");
    }
    Sh("cryptsetup close lbcsi-shipped-prep 2>/dev/null || true");
    stub_.reset();
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      for (auto end = Clock::now() + std::chrono::seconds(20);
           waitpid(pid_, &status, WNOHANG) == 0;) {
        if (Clock::now() >= end) {
          kill(pid_, SIGKILL);
          waitpid(pid_, &status, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    DeleteControllers(nqn_);
    if (target_up_) Sh("nvmet_teardown");
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  void Note(const std::string& what) {
    long ms = static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0_).count());
    std::printf("[%6ld ms] %s\n", ms, what.c_str());
    std::fflush(stdout);
  }

  template <typename Req, typename Resp>
  grpc::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                    const Req& req, Resp* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(180));
    return (stub_.get()->*method)(&ctx, req, resp);
  }

  std::string AddVolume(const std::string& size, std::string* img_out) {
    std::string uuid = NewUuid();
    uuids_.push_back(uuid);
    *img_out = dir_ + "/" + uuid + ".img";
    EXPECT_TRUE(Sh("truncate -s " + size + " " + *img_out));
    return uuid;
  }
  void Export(int nsid, const std::string& uuid, const std::string& img) {
    ASSERT_TRUE(Sh("nvmet_ns_add " + nqn_ + " " + std::to_string(nsid) + " " + uuid + " " + img));
  }
  void Attach(const std::string& uuid) {
    hv1::AttachRequest a;
    a.set_volume_uuid(uuid);
    a.set_subsystem_nqn(nqn_);
    auto* ep = a.add_nvme_endpoints();
    ep->set_ip("127.0.0.1");
    ep->set_port(4420);
    hv1::AttachResponse r;
    ASSERT_RPC_OK(Call(&Stub::Attach, a, &r));
  }
  grpc::Status Open(const std::string& uuid, const std::string& pass,
                    hv1::OpenEncryptedResponse* r) {
    hv1::OpenEncryptedRequest o;
    o.set_volume_uuid(uuid);
    o.mutable_passphrase()->set_value(pass);
    return Call(&Stub::OpenEncrypted, o, r);
  }
  hv1::ProbeResponse Probe(const std::string& uuid, bool encrypted) {
    hv1::ProbeRequest p;
    p.set_volume_uuid(uuid);
    p.set_encrypted(encrypted);
    hv1::ProbeResponse r;
    grpc::Status st = Call(&Stub::Probe, p, &r);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return r;
  }
  grpc::Status Mount(const std::string& uuid, const std::string& path) {
    hv1::MountRequest m;
    m.set_volume_uuid(uuid);
    m.set_staging_path(path);
    m.set_fs_type(hv1::FS_TYPE_EXT4);
    m.set_encrypted(true);
    hv1::MountResponse r;
    return Call(&Stub::Mount, m, &r);
  }
  grpc::Status Unmount(const std::string& path) {
    hv1::UnmountRequest u;
    u.set_staging_path(path);
    hv1::UnmountResponse r;
    return Call(&Stub::Unmount, u, &r);
  }
  grpc::Status Close(const std::string& uuid, bool* was_open = nullptr) {
    hv1::CloseEncryptedRequest c;
    c.set_volume_uuid(uuid);
    hv1::CloseEncryptedResponse r;
    grpc::Status st = Call(&Stub::CloseEncrypted, c, &r);
    if (was_open) *was_open = r.was_open();
    return st;
  }
  grpc::Status Detach(const std::string& uuid) {
    hv1::DetachRequest d;
    d.set_volume_uuid(uuid);
    d.set_subsystem_nqn(nqn_);
    hv1::DetachResponse r;
    return Call(&Stub::Detach, d, &r);
  }
  // kubelet's pre-1.24 staging layout (the helper accepts no other path).
  std::string Staging(const std::string& name) {
    std::string p = dir_ + "/root/plugins/kubernetes.io/csi/pv/" + name + "/globalmount";
    fs::create_directories(p);
    mounts_.push_back(p);
    return p;
  }

  std::string dir_, socket_, log_, nqn_;
  pid_t pid_ = -1;
  bool target_up_ = false;
  std::vector<std::string> mounts_, uuids_;
  std::unique_ptr<Stub> stub_;
  Clock::time_point t0_;
};

TEST_F(HelperCryptVmTest, LuksLifecycleExpandWrongPassphraseAndShippedVolumes) {
  // ---- a never-written volume: format, open, mkfs, mount, write ----
  std::string img;
  const std::string uuid = AddVolume("256M", &img);
  Export(1, uuid, img);
  Attach(uuid);
  Note("attached");
  ASSERT_EQ(Probe(uuid, false).kind(), hv1::CONTENT_KIND_BLANK);
  hv1::FormatEncryptedRequest fe;
  fe.set_volume_uuid(uuid);
  fe.set_proof(hv1::NEVER_WRITTEN_PROOF_CREATED_EMPTY);
  fe.mutable_passphrase()->set_value(kPass);
  hv1::FormatEncryptedResponse fer;
  ASSERT_RPC_OK(Call(&Stub::FormatEncrypted, fe, &fer));
  ASSERT_TRUE(fer.formatted());
  Note("LUKS2 header written");
  EXPECT_EQ(Probe(uuid, false).type(), "crypto_LUKS");
  {
    // The shipped plugin's parameters: LUKS2, aes-xts-plain64, a 256-bit key, sha256.
    const std::string dump = Capture("cryptsetup luksDump " + img);
    EXPECT_NE(dump.find("Version:       \t2"), std::string::npos) << dump;
    EXPECT_NE(dump.find("aes-xts-plain64"), std::string::npos) << dump;
    EXPECT_EQ(VolumeKeyBits(dump), 256) << dump;
    EXPECT_NE(dump.find("sha256"), std::string::npos) << dump;
    EXPECT_NE(dump.find("argon2id"), std::string::npos) << dump;
  }
  hv1::OpenEncryptedResponse opened;
  ASSERT_RPC_OK(Open(uuid, kPass, &opened));
  EXPECT_FALSE(opened.already_open());
  EXPECT_EQ(opened.mapper_name(), "lbcsi-" + uuid);
  EXPECT_EQ(ReadAll("/sys/block/" + opened.device_name() + "/dm/name"), "lbcsi-" + uuid + "\n");
  EXPECT_GT(opened.size_bytes(), 200ull << 20);
  EXPECT_LT(opened.size_bytes(), 256ull << 20);
  Note("opened as " + opened.device_name());
  ASSERT_RPC_OK(Open(uuid, kPass, &opened));
  EXPECT_TRUE(opened.already_open());
  ASSERT_EQ(Probe(uuid, true).kind(), hv1::CONTENT_KIND_BLANK);
  hv1::FormatRequest f;
  f.set_volume_uuid(uuid);
  f.set_fs_type(hv1::FS_TYPE_EXT4);
  f.set_proof(hv1::NEVER_WRITTEN_PROOF_CREATED_EMPTY);
  f.set_encrypted(true);
  hv1::FormatResponse fr;
  ASSERT_RPC_OK(Call(&Stub::Format, f, &fr));
  ASSERT_TRUE(fr.formatted());
  EXPECT_EQ(Probe(uuid, true).type(), "ext4");
  EXPECT_EQ(Probe(uuid, false).type(), "crypto_LUKS") << "the raw device keeps its header";
  const std::string staging = Staging("vol1");
  ASSERT_RPC_OK(Mount(uuid, staging));
  Note("ext4 mounted from the mapping");
  const std::string marker = "lbcsi-plaintext-marker-7f3a9c";
  std::string payload;
  for (int i = 0; i < 8192; ++i) payload += marker;
  {
    std::ofstream out(staging + "/data.txt");
    out << payload;
  }
  ASSERT_TRUE(Sh("sync -f " + staging + "/data.txt"));
  hv1::StatsRequest sreq;
  sreq.set_volume_uuid(uuid);
  sreq.set_path(staging);
  sreq.set_encrypted(true);
  hv1::StatsResponse stats;
  ASSERT_RPC_OK(Call(&Stub::Stats, sreq, &stats));
  EXPECT_FALSE(stats.condition().abnormal()) << stats.condition().message();
  EXPECT_GT(stats.used_bytes(), payload.size() / 2);
  hv1::InventoryResponse inv;
  ASSERT_RPC_OK(Call(&Stub::Inventory, hv1::InventoryRequest(), &inv));
  bool saw_open = false, saw_mount = false;
  for (const auto& a : inv.attached()) saw_open |= a.volume_uuid() == uuid && a.encrypted_open();
  for (const auto& m : inv.mounts()) {
    saw_mount |= m.path() == staging && m.volume_uuid() == uuid && m.encrypted();
  }
  EXPECT_TRUE(saw_open);
  EXPECT_TRUE(saw_mount);
  // Nothing of the plaintext reaches the namespace.
  EXPECT_TRUE(Sh("! grep -q " + marker + " " + img)) << "plaintext found on the raw volume";
  // Close while mounted and detach while open are refused.
  EXPECT_EQ(Close(uuid).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Detach(uuid).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_RPC_OK(Unmount(staging));
  bool was_open = false;
  ASSERT_RPC_OK(Close(uuid, &was_open));
  EXPECT_TRUE(was_open);
  ASSERT_RPC_OK(Close(uuid, &was_open));
  EXPECT_FALSE(was_open);
  ASSERT_RPC_OK(Detach(uuid));
  Note("unmounted, closed, detached");

  // ---- stage again: wrong passphrase, then the right one reads the data back ----
  Attach(uuid);
  grpc::Status st = Open(uuid, kWrong, &opened);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  EXPECT_EQ(st.error_message().find(kWrong), std::string::npos);
  EXPECT_FALSE(fs::exists("/sys/block/" + opened.device_name() + "/dm") &&
               !opened.device_name().empty());
  EXPECT_EQ(Mount(uuid, staging).error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << "nothing is open after a wrong passphrase";
  Note("wrong passphrase refused: " + st.error_message());
  ASSERT_RPC_OK(Open(uuid, kPass, &opened));
  hv1::FormatResponse again;
  ASSERT_RPC_OK(Call(&Stub::Format, f, &again));
  EXPECT_FALSE(again.formatted()) << "the filesystem inside is kept";
  ASSERT_RPC_OK(Mount(uuid, staging));
  EXPECT_EQ(ReadAll(staging + "/data.txt"), payload);
  Note("re-opened, data read back");

  // ---- online expand: namespace, then the LUKS mapping, then ext4 ----
  const uint64_t before = stats.total_bytes();
  ASSERT_TRUE(Sh("truncate -s 384M " + img + "; nvmet_ns_resize " + nqn_ + " 1"));
  hv1::ExpandFilesystemRequest ex;
  ex.set_volume_uuid(uuid);
  ex.set_mount_path(staging);
  ex.set_encrypted(true);
  hv1::ExpandFilesystemResponse exr;
  for (int i = 0; i < 50; ++i) {  // the new size reaches the host asynchronously
    ASSERT_RPC_OK(Call(&Stub::ExpandFilesystem, ex, &exr));
    if (exr.device_size_bytes() == 384ull << 20) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(exr.device_size_bytes(), 384ull << 20);
  EXPECT_GT(exr.decrypted_size_bytes(), 360ull << 20);
  EXPECT_LT(exr.decrypted_size_bytes(), 384ull << 20);
  EXPECT_GT(exr.filesystem_size_bytes(), 300ull << 20);
  ASSERT_RPC_OK(Call(&Stub::Stats, sreq, &stats));
  EXPECT_GT(stats.total_bytes(), before + (100ull << 20));
  EXPECT_EQ(ReadAll(staging + "/data.txt"), payload);
  Note("expanded online: device " + std::to_string(exr.device_size_bytes()) + ", mapping " +
       std::to_string(exr.decrypted_size_bytes()) + ", ext4 " +
       std::to_string(exr.filesystem_size_bytes()));
  ASSERT_RPC_OK(Unmount(staging));
  ASSERT_RPC_OK(Close(uuid));
  ASSERT_RPC_OK(Detach(uuid));

  // ---- a volume formatted the way the shipped plugin does ----
  std::string img2;
  const std::string uuid2 = AddVolume("128M", &img2);
  const std::string shipped_data = "written through cryptsetup by the shipped plugin\n";
  ASSERT_TRUE(Sh(std::string("printf '%s' '") + kShippedPass +
                 "' | cryptsetup luksFormat --batch-mode --type luks2 --cipher aes-xts-plain64 "
                 "--key-size 256 --hash sha256 --pbkdf argon2id --pbkdf-memory 32768 "
                 "--pbkdf-force-iterations 4 --pbkdf-parallel 1 --key-file - " +
                 img2 + "\n" + "printf '%s' '" + kShippedPass +
                 "' | cryptsetup open --type luks2 --key-file - " + img2 + " lbcsi-shipped-prep\n" +
                 "mkfs.ext4 -q /dev/mapper/lbcsi-shipped-prep\n"
                 "mkdir -p " +
                 dir_ + "/prep; mount /dev/mapper/lbcsi-shipped-prep " + dir_ +
                 "/prep\n"
                 "printf '" +
                 shipped_data.substr(0, shipped_data.size() - 1) + "\\n' > " + dir_ +
                 "/prep/shipped.txt\n"
                 "umount " +
                 dir_ +
                 "/prep; cryptsetup close lbcsi-shipped-prep\n"
                 "cryptsetup luksDump " +
                 img2 + " | grep -E 'Version|cipher|Cipher key|PBKDF|Hash'"))
      << "the test's own cryptsetup preparation failed";
  EXPECT_EQ(VolumeKeyBits(Capture("cryptsetup luksDump " + img2)), 256);
  Note("shipped-style volume prepared with the cryptsetup CLI");
  Export(2, uuid2, img2);
  Attach(uuid2);
  EXPECT_EQ(Probe(uuid2, false).type(), "crypto_LUKS");
  fe.set_volume_uuid(uuid2);
  fe.mutable_passphrase()->set_value(kShippedPass);
  ASSERT_RPC_OK(Call(&Stub::FormatEncrypted, fe, &fer));
  EXPECT_FALSE(fer.formatted()) << "an existing LUKS2 header is never re-formatted";
  ASSERT_RPC_OK(Open(uuid2, kShippedPass, &opened));
  EXPECT_EQ(Probe(uuid2, true).type(), "ext4");
  const std::string staging2 = Staging("vol2");
  ASSERT_RPC_OK(Mount(uuid2, staging2));
  EXPECT_EQ(ReadAll(staging2 + "/shipped.txt"), shipped_data);
  Note("shipped-style volume opened and mounted with its data");
  ASSERT_RPC_OK(Unmount(staging2));
  ASSERT_RPC_OK(Close(uuid2));
  ASSERT_RPC_OK(Detach(uuid2));

  // ---- redaction: the helper logged at trace level; no passphrase anywhere ----
  const std::string log = ReadAll(log_);
  EXPECT_NE(log.find("OpenEncrypted"), std::string::npos) << "the log was captured";
  EXPECT_EQ(log.find(kPass), std::string::npos);
  EXPECT_EQ(log.find(kWrong), std::string::npos);
  EXPECT_EQ(log.find(kShippedPass), std::string::npos);
  Note("done; helper log " + std::to_string(log.size()) + " bytes, no passphrase in it");
}

}  // namespace
