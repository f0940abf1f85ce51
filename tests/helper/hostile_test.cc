// Hostile input against the real binary: every path field with "..", paths
// outside the roots, symlinks, a symlink swapped in a loop during 10,000
// requests, a bind mount over a component; bad ids; oversized requests; a
// client with the wrong uid. Afterwards nothing is mounted outside the roots
// and the file outside them is unchanged.

#include <linux/fs.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>

#include "tests/helper/helper_fixture.h"

namespace lbcsi::helper::testing {
namespace {

using Stub = v1::NodeHelper::Stub;

class Hostile : public HelperProcess {
 protected:
  // A staged ext4 volume to use as a legitimate source.
  void Stage() {
    MakeVolume(uuid_, 64 << 20);
    Attach(uuid_);
    v1::FormatRequest f;
    f.set_volume_uuid(uuid_);
    f.set_fs_type(v1::FS_TYPE_EXT4);
    f.set_proof(v1::NEVER_WRITTEN_PROOF_CREATED_EMPTY);
    v1::FormatResponse fr;
    ASSERT_TRUE(Call(&Stub::Format, f, &fr, 120).ok());
    staging_ = StagingPath("staging");
    v1::MountRequest m;
    m.set_volume_uuid(uuid_);
    m.set_staging_path(staging_);
    m.set_fs_type(v1::FS_TYPE_EXT4);
    v1::MountResponse mr;
    ASSERT_TRUE(Call(&Stub::Mount, m, &mr).ok());
  }
  void ExpectOutsideUntouched() {
    EXPECT_TRUE(MountsUnder(outside_).empty());
    size_t n = 0;
    for (auto it = std::filesystem::recursive_directory_iterator(outside_);
         it != std::filesystem::recursive_directory_iterator(); ++it) {
      ++n;
    }
    EXPECT_EQ(n, outside_entries_) << "something was created outside the roots";
    std::ifstream in(outside_ + "/sentinel");
    std::string s;
    std::getline(in, s);
    EXPECT_EQ(s, "do not touch");
  }
  const std::string uuid_ = "0d000000-0000-4000-8000-000000000004";
  std::string staging_;
  size_t outside_entries_ = 0;
};

TEST_F(Hostile, EveryPathFieldRefusesEscapes) {
  if (dir_.empty()) return;
  Stage();
  std::filesystem::create_directories(outside_ + "/x");
  // Layout-conformant paths through a symlinked component and onto a symlinked leaf: the
  // layouts accept them, the path guard must not follow the links.
  const std::string valid_target = PublishPath("pd", "t");
  std::filesystem::create_directories(root_ + "/pods");
  std::filesystem::create_directory_symlink(outside_, root_ + "/pods/link");
  const std::string leaflink = PublishPath("pd", "leaflink");
  std::filesystem::create_directory_symlink(outside_ + "/x", leaflink);
  outside_entries_ = 2;  // sentinel + x
  const std::vector<std::string> bad = {"relative/path",
                                        root_ + "/../outside/x",
                                        root_ + "/d/../../outside/x",
                                        outside_ + "/x",
                                        "/etc",
                                        root_,
                                        root_ + "/pods/link/volumes/kubernetes.io~csi/x/mount",
                                        leaflink,
                                        root_ + "//d",
                                        root_ + "/" + std::string(5000, 'a'),
                                        root_ + std::string("/d\0x", 4)};
  for (const std::string& p : bad) {
    SCOPED_TRACE(p.substr(0, 120));
    v1::MountRequest m;
    m.set_volume_uuid(uuid_);
    m.set_staging_path(p);
    m.set_fs_type(v1::FS_TYPE_EXT4);
    v1::MountResponse mr;
    EXPECT_FALSE(Call(&Stub::Mount, m, &mr).ok());
    v1::PublishRequest pub;
    pub.set_volume_uuid(uuid_);
    pub.set_target_path(p);
    pub.set_staging_path(staging_);
    v1::PublishResponse pr;
    EXPECT_FALSE(Call(&Stub::Publish, pub, &pr).ok());
    pub.set_target_path(valid_target);
    pub.set_staging_path(p);
    EXPECT_FALSE(Call(&Stub::Publish, pub, &pr).ok());
    v1::PublishRequest bpub;
    bpub.set_volume_uuid(uuid_);
    bpub.set_target_path(p);
    bpub.set_block_device(true);
    EXPECT_FALSE(Call(&Stub::Publish, bpub, &pr).ok());
    v1::StatsRequest s;
    s.set_volume_uuid(uuid_);
    s.set_path(p);
    v1::StatsResponse sr;
    EXPECT_FALSE(Call(&Stub::Stats, s, &sr).ok());
    v1::ExpandFilesystemRequest e;
    e.set_volume_uuid(uuid_);
    e.set_mount_path(p);
    v1::ExpandFilesystemResponse er;
    EXPECT_FALSE(Call(&Stub::ExpandFilesystem, e, &er).ok());
    // Unmount/Unpublish: refused, or "nothing there" — but never acting outside.
    v1::UnmountRequest u;
    u.set_staging_path(p);
    v1::UnmountResponse ur;
    grpc::Status st = Call(&Stub::Unmount, u, &ur);
    if (st.ok()) {
      EXPECT_FALSE(ur.was_mounted());
    }
    v1::UnpublishRequest up;
    up.set_target_path(p);
    v1::UnpublishResponse upr;
    st = Call(&Stub::Unpublish, up, &upr);
    if (st.ok()) {
      EXPECT_FALSE(upr.target_removed());
    }
  }
  EXPECT_TRUE(std::filesystem::is_symlink(root_ + "/pods/link"));
  // A bind mount over a component of the target's parent chain.
  std::filesystem::create_directories(root_ + "/pods/bm");
  ASSERT_EQ(
      mount((outside_ + "/x").c_str(), (root_ + "/pods/bm").c_str(), nullptr, MS_BIND, nullptr), 0);
  v1::PublishRequest pub;
  pub.set_volume_uuid(uuid_);
  pub.set_target_path(root_ + "/pods/bm/volumes/kubernetes.io~csi/t/mount");
  pub.set_staging_path(staging_);
  v1::PublishResponse pr;
  grpc::Status st = Call(&Stub::Publish, pub, &pr);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  umount2((root_ + "/pods/bm").c_str(), MNT_DETACH);
  ExpectOutsideUntouched();
}

TEST_F(Hostile, SymlinkSwappedDuringTenThousandRequests) {
  if (dir_.empty()) return;
  Stage();
  outside_entries_ = 1;
  const std::string target = PublishPath("race", "t");
  std::filesystem::create_directory_symlink(outside_, root_ + "/pods/race-link");
  std::atomic<bool> stop{false};
  std::atomic<int> swaps{0};
  std::thread swapper([&] {
    std::string a = root_ + "/pods/race", b = root_ + "/pods/race-link";
    while (!stop) {
      if (renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0) ++swaps;
    }
  });
  int ok = 0, refused = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10000; ++i) {
    v1::PublishRequest pub;
    pub.set_volume_uuid(uuid_);
    pub.set_target_path(target);
    pub.set_staging_path(staging_);
    v1::PublishResponse pr;
    if (Call(&Stub::Publish, pub, &pr).ok()) {
      ++ok;
      v1::UnpublishRequest up;
      up.set_target_path(target);
      v1::UnpublishResponse upr;
      Call(&Stub::Unpublish, up, &upr);
    } else {
      ++refused;
    }
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(60)) break;
  }
  stop = true;
  swapper.join();
  std::printf("symlink race: %d published, %d refused, %d swaps\n", ok, refused, swaps.load());
  EXPECT_GT(swaps.load(), 100);
  EXPECT_GT(refused, 0);
  EXPECT_EQ(ok + refused >= 1000, true);
  ExpectOutsideUntouched();
}

TEST_F(Hostile, BadIdsAndOversizedRequests) {
  if (dir_.empty()) return;
  for (std::string uuid : {std::string(""), std::string("not-a-uuid"),
                           std::string("0D000000-0000-4000-8000-000000000004"),
                           std::string("../../../../dev/sda"), std::string(100000, 'a')}) {
    v1::AttachRequest a;
    a.set_volume_uuid(uuid);
    a.set_subsystem_nqn("nqn.2016-01.com.lightbitslabs:uuid:sim");
    v1::AttachResponse ar;
    grpc::Status st = Call(&Stub::Attach, a, &ar, 5);
    EXPECT_TRUE(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED)
        << st.error_code() << " " << st.error_message();
    v1::ProbeRequest p;
    p.set_volume_uuid(uuid);
    v1::ProbeResponse pr;
    EXPECT_FALSE(Call(&Stub::Probe, p, &pr).ok());
  }
  for (std::string nqn :
       {std::string(""), std::string("nqn"), std::string("nqn.2014-08.a:b,hostnqn=x"),
        "nqn.2014-08.a:" + std::string(300, 'b')}) {
    v1::AttachRequest a;
    a.set_volume_uuid(uuid_);
    a.set_subsystem_nqn(nqn);
    v1::AttachResponse ar;
    EXPECT_EQ(Call(&Stub::Attach, a, &ar, 5).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  v1::AttachRequest a;
  a.set_volume_uuid(uuid_);
  a.set_subsystem_nqn("nqn.2016-01.com.lightbitslabs:uuid:sim");
  a.add_nvme_endpoints()->set_ip("evil.example.com");
  v1::AttachResponse ar;
  EXPECT_EQ(Call(&Stub::Attach, a, &ar, 5).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::InventoryResponse inv;
  ASSERT_TRUE(Call(&Stub::Inventory, v1::InventoryRequest(), &inv).ok());
  EXPECT_EQ(inv.attached_size(), 0);
}

TEST_F(Hostile, WrongUidIsRefusedBeforeGrpc) {
  if (dir_.empty()) return;
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);  // let uid 65534 reach the socket
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    signal(SIGPIPE, SIG_IGN);  // the helper may close before our write
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_.c_str());
    // The socket is 0660 root:<allowed gid>: nobody may not even connect.
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) _exit(0);
    const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    (void)!write(fd, preface, sizeof(preface) - 1);
    char buf[64];
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = read(fd, buf, sizeof(buf));
    _exit(n <= 0 ? 0 : 20);  // refused: closed without a single byte of HTTP/2
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // Also when the socket mode would let it connect: make it world-connectable.
  ASSERT_EQ(chmod(socket_.c_str(), 0666), 0);
  child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    signal(SIGPIPE, SIG_IGN);  // the helper may close before our write
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_.c_str());
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) _exit(11);
    const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    (void)!write(fd, preface, sizeof(preface) - 1);
    char buf[64];
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = read(fd, buf, sizeof(buf));
    _exit(n == 0 || (n < 0 && errno == ECONNRESET) ? 0 : 20);  // closed after SO_PEERCRED
  }
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << WEXITSTATUS(status);
  v1::GetInfoResponse info;
  EXPECT_TRUE(Call(&Stub::GetInfo, v1::GetInfoRequest(), &info).ok()) << "still serving";
}

}  // namespace
}  // namespace lbcsi::helper::testing
