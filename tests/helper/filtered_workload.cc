// A stand-in for the helper's start-up and work, run under the real filter:
// spawner -> drop capabilities -> gRPC server -> seccomp -> serve a call,
// loop device, BLKGETSIZE64, libblkid, mkfs through the spawner, libmount
// mount via /proc/self/fd/N, statvfs, unmount. Exit 0 when every step worked.
//
//   helper_confinement_workload enforce|log|off
// Sanitizer builds: run with ASAN_OPTIONS=detect_leaks=0 unless "off".

#include <errno.h>
#include <fcntl.h>
#include <libmount/libmount.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <grpcpp/create_channel.h>

#include "common/grpc_server.h"
#include "common/unix_endpoint.h"
#include "csi/v1/csi.grpc.pb.h"
#include "helper/confinement/capabilities.h"
#include "helper/confinement/seccomp_policy.h"
#include "helper/spawner/spawner.h"
#include "tests/helper/confine_test_util.h"

namespace lbcsi::helper {
namespace {

class Identity final : public csi::v1::Identity::Service {
  grpc::Status GetPluginInfo(grpc::ServerContext*, const csi::v1::GetPluginInfoRequest*,
                             csi::v1::GetPluginInfoResponse* resp) override {
    resp->set_name("filtered.workload");
    return grpc::Status::OK;
  }
};

int Fail(int code, const std::string& what) {
  fprintf(stderr, "workload step failed (%d): %s: %s\n", code, what.c_str(), strerror(errno));
  return code;
}

bool Mounted(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" " + path + " ") != std::string::npos) return true;
  }
  return false;
}

int Run(SeccompMode mode) {
  char tmpl[] = "/tmp/lbcsi-workload-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return Fail(2, "mkdtemp");
  const std::string dir = tmpl;

  auto spawner = Spawner::Start({});
  if (!spawner.ok()) return Fail(3, spawner.status().ToString());
  if (auto s = DropCapabilities(HelperCapabilities()); !s.ok()) return Fail(4, s.ToString());

  Identity identity;
  UnixServerOptions opts;
  opts.endpoint = "unix://" + dir + "/helper.sock";
  auto server = UnixGrpcServer::Start(std::move(opts), {&identity});
  if (!server.ok()) return Fail(5, server.status().ToString());

  // The loop devices below stand for NVMe namespaces: the development transport's rules.
  if (auto s = InstallHelperSeccomp(mode, /*loop_transport=*/true); !s.ok()) {
    return Fail(6, s.ToString());
  }
  fprintf(stderr, "workload: filter loaded (%s), effective caps %s\n",
          std::string(SeccompModeName(mode)).c_str(), EffectiveCapabilitiesText().c_str());

  {  // serve one call over the unix socket
    auto stub = csi::v1::Identity::NewStub(grpc::CreateChannel(GrpcUnixTarget(dir + "/helper.sock"),
                                                               grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    csi::v1::GetPluginInfoResponse resp;
    const grpc::Status st = stub->GetPluginInfo(&ctx, {}, &resp);
    if (!st.ok() || resp.name() != "filtered.workload") return Fail(7, st.error_message());
  }

  if (socket(AF_INET, SOCK_STREAM, 0) >= 0 || errno != EAFNOSUPPORT) {
    if (mode == SeccompMode::kEnforce) return Fail(8, "IPv4 socket was not refused");
  }

  {
    // libcryptsetup's crypt_safe_alloc/free (every LUKS format and open) lock
    // their buffers. Raw syscalls: ASan's mlock interceptor never reaches the
    // kernel, and the filter must let the real one through (else SIGSYS).
    alignas(4096) static char key_buffer[4096];
    if (syscall(SYS_mlock, key_buffer, sizeof(key_buffer)) != 0 && errno != ENOMEM &&
        errno != EPERM) {
      return Fail(22, "mlock");
    }
    syscall(SYS_munlock, key_buffer, sizeof(key_buffer));
  }

  int rc = 0;
  {
    testing::TempLoopDevice dev(64 << 20);  // the development transport's ioctls
    if (dev.fd() < 0) return Fail(9, dev.error());
    uint64_t size = 0;
    if (ioctl(dev.fd(), BLKGETSIZE64, &size) != 0 || size != (64u << 20)) return Fail(10, "size");
    if (testing::ProbeType(dev.fd()) != "") return Fail(11, "probe of a blank device");
    auto mkfs = (*spawner)->RunMkfs(MkfsFs::kExt4, dev.fd());
    if (!mkfs.ok() || mkfs->exit_code != 0) return Fail(12, "mkfs through the spawner");
    if (testing::ProbeType(dev.fd()) != "ext4") return Fail(13, "probe after mkfs");

    const std::string target = dir + "/mnt";
    if (mkdir(target.c_str(), 0750) != 0) return Fail(14, "mkdir");
    const int dirfd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    const int target_fd = openat(dirfd, "mnt", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dirfd < 0 || target_fd < 0) return Fail(15, "open target");

    libmnt_context* cxt = mnt_new_context();
    const std::string source = "/proc/self/fd/" + std::to_string(dev.fd());
    const std::string target_proc = "/proc/self/fd/" + std::to_string(target_fd);
    mnt_context_disable_canonicalize(cxt, 1);
    mnt_context_disable_helpers(cxt, 1);
    mnt_context_disable_mtab(cxt, 1);
    mnt_context_set_source(cxt, source.c_str());
    mnt_context_set_target(cxt, target_proc.c_str());
    mnt_context_set_fstype(cxt, "ext4");
    mnt_context_set_options(cxt, "noatime");
    const int mrc = mnt_context_mount(cxt);
    const int syscall_errno = mnt_context_get_syscall_errno(cxt);
    mnt_free_context(cxt);
    if (mrc != 0) {
      errno = syscall_errno;
      return Fail(16, "libmount mount rc " + std::to_string(mrc));
    }
    if (!Mounted(target)) rc = Fail(17, "mount not in mountinfo");

    // The mounted root, reached without following symlinks.
    const int root = openat(dirfd, "mnt", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct statvfs vfs {};
    if (root < 0 || fstatvfs(root, &vfs) != 0 || vfs.f_blocks == 0) rc = Fail(18, "statvfs");
    const int file = openat(root, "written-under-filter", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (file < 0 || write(file, "ok", 2) != 2 || fsync(file) != 0) rc = Fail(19, "write a file");
    close(file);

    // An fd inside the mount pins it (EBUSY): unmount by the parent's fd + name.
    close(root);
    const std::string unmount_path = "/proc/self/fd/" + std::to_string(dirfd) + "/mnt";
    if (umount2(unmount_path.c_str(), UMOUNT_NOFOLLOW) != 0) rc = Fail(20, "umount2");
    if (Mounted(target)) rc = Fail(21, "still mounted");
    close(target_fd);
    close(dirfd);
  }
  (*server)->Shutdown(absl::Seconds(1));
  server->reset();
  spawner->reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  if (rc == 0) fprintf(stderr, "workload: all steps passed\n");
  return rc;
}

}  // namespace
}  // namespace lbcsi::helper

int main(int argc, char** argv) {
  auto mode = lbcsi::helper::ParseSeccompMode(argc > 1 ? argv[1] : "enforce");
  if (!mode.ok()) return 64;
  return lbcsi::helper::Run(*mode);
}
