// vm_bench_node_stage: the cost of staging a volume on real NVMe/TCP, in the VM guest
// (tests/vm/bench-node-stage.sh runs it). Not a test: it prints times and a ratio.
//
//   helper: Attach (both ports) + Probe + Format ext4 + Mount over lbcsi-helper's socket,
//           i.e. what NodeStageVolume asks of the helper;
//   bare:   libnvme connect of both ports in-process, wait for the namespace by UUID,
//           mkfs.ext4 (the helper's options), mount(2): the least any driver must do.
//
// Every iteration uses fresh volumes (Format needs a blank one); the runs alternate so
// that both see the same machine load. Set-up and clean-up are not timed.
//
//   vm_bench_node_stage --helper PATH [--iterations N]

#include <fcntl.h>
#include <libnvme.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "lbcsi/helper/v1/helper.grpc.pb.h"
#include "tests/vm/guest_util.h"

namespace {

using namespace lbcsi::vmtest;
namespace fs = std::filesystem;
namespace hv1 = ::lbcsi::helper::v1;
using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}
pid_t g_helper_pid = -1;
[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "vm_bench_node_stage: %s\n", why.c_str());
  if (g_helper_pid > 0) {
    kill(g_helper_pid, SIGKILL);
    waitpid(g_helper_pid, nullptr, 0);
  }
  std::exit(1);
}
void NvmetOrDie(const std::string& script) {
  if (!Nvmet(script)) Die("nvmet.sh: " + script);
}
int Run(std::vector<std::string> args) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// ---- bare libnvme ----

void BareConnect(const std::string& nqn, const std::string& hostnqn, const std::string& port) {
  nvme_root_t root = nvme_create_root(nullptr, LOG_ERR);
  nvme_host_t host = nvme_lookup_host(root, hostnqn.c_str(), nullptr);
  nvme_ctrl_t c =
      nvme_create_ctrl(root, nqn.c_str(), "tcp", "127.0.0.1", nullptr, nullptr, port.c_str());
  nvme_fabrics_config cfg;
  nvmf_default_config(&cfg);
  cfg.ctrl_loss_tmo = 5;
  if (!host || !c || nvmf_add_ctrl(host, c, &cfg) != 0) Die("bare connect to port " + port);
  nvme_free_tree(root);
}

std::string BareFindDevice(const std::string& uuid) {
  for (auto end = Clock::now() + std::chrono::seconds(60); Clock::now() < end;) {
    std::error_code ec;
    for (const auto& b : fs::directory_iterator("/sys/block", ec)) {
      std::string name = b.path().filename().string();
      if (name.rfind("nvme", 0) != 0 || ReadLine(b.path() / "uuid") != uuid) continue;
      if (access(("/dev/" + name).c_str(), F_OK) == 0) return "/dev/" + name;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Die("namespace " + uuid + " never appeared");
}

// ---- helper ----

struct Helper {
  pid_t pid = -1;
  std::unique_ptr<hv1::NodeHelper::Stub> stub;
  std::string host_nqn;

  template <typename Req, typename Resp>
  void Call(grpc::Status (hv1::NodeHelper::Stub::*m)(grpc::ClientContext*, const Req&, Resp*),
            const Req& req, Resp* resp, const char* what) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    grpc::Status st = (stub.get()->*m)(&ctx, req, resp);
    if (!st.ok()) Die(std::string(what) + ": " + st.error_message());
  }
};

Helper StartHelper(const std::string& bin, const std::string& dir) {
  Helper h;
  const std::string socket = dir + "/helper.sock";
  std::vector<std::string> args = {bin,
                                   "--socket",
                                   socket,
                                   "--allowed-uid",
                                   "0",
                                   "--allowed-gid",
                                   "0",
                                   "--allow-root-client",
                                   "--root",
                                   dir + "/root",
                                   "--state-dir",
                                   dir + "/state",
                                   "--host-nqn-file",
                                   dir + "/hostnqn",
                                   "--transport",
                                   "nvme",
                                   "--ctrl-loss-tmo",
                                   "5",
                                   "--seccomp",  // as deployed
                                   "enforce"};
  h.pid = fork();
  if (h.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // a dying bench takes the helper with it
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  for (auto end = Clock::now() + std::chrono::seconds(60); !fs::exists(socket);) {
    if (Clock::now() > end || waitpid(h.pid, nullptr, WNOHANG) != 0) Die("helper did not start");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  g_helper_pid = h.pid;
  h.stub = hv1::NodeHelper::NewStub(
      grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
  hv1::GetInfoResponse info;
  h.Call(&hv1::NodeHelper::Stub::GetInfo, hv1::GetInfoRequest{}, &info, "GetInfo");
  h.host_nqn = info.host_nqn();
  return h;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress survives a killed guest
  std::string helper_bin;
  int iterations = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--helper") helper_bin = argv[i + 1];
    if (k == "--iterations") iterations = std::max(1, std::atoi(argv[i + 1]));
  }
  if (helper_bin.empty() || Env("LBCSI_IN_VM") != "1") {
    std::fprintf(stderr,
                 "usage (in the VM guest): vm_bench_node_stage --helper PATH [--iterations N]\n");
    return 2;
  }
  char tmpl[] = "/var/tmp/bench-stage.XXXXXX";
  if (!mkdtemp(tmpl)) Die("mkdtemp");
  const std::string dir = tmpl;
  fs::create_directories(dir + "/root");
  fs::create_directories(dir + "/state");
  const std::string bare_host = "nqn.2014-08.org.nvmexpress:uuid:" + NewUuid();

  const auto t_helper = Clock::now();
  Helper helper = StartHelper(helper_bin, dir);
  std::printf("helper start-up (not counted): %.0f ms\n", MsSince(t_helper));

  std::vector<double> bare_ms, helper_ms;
  for (int it = 0; it < 2 * iterations; ++it) {
    const bool use_helper = (it % 2 == 1) == (it / 2 % 2 == 0);  // ABBA order
    const std::string nqn = "nqn.2016-01.com.lightbitslabs:uuid:" + NewUuid();
    const std::string uuid = NewUuid();
    const std::string img = dir + "/" + uuid + ".img";
    const std::string mnt = dir + "/root/mnt" + std::to_string(it);
    fs::create_directories(mnt);
    NvmetOrDie("truncate -s 256M " + img + "; nvmet_need_cfg; nvmet_subsys " + nqn +
               "; nvmet_ns_add " + nqn + " 1 " + uuid + " " + img + "; nvmet_port_add " + nqn +
               " 1 127.0.0.1 4420; nvmet_port_add " + nqn + " 2 127.0.0.1 4421");

    const auto t0 = Clock::now();
    if (use_helper) {
      hv1::AttachRequest a;
      a.set_volume_uuid(uuid);
      a.set_subsystem_nqn(nqn);
      for (uint32_t port : {4420u, 4421u}) {
        auto* ep = a.add_nvme_endpoints();
        ep->set_ip("127.0.0.1");
        ep->set_port(port);
      }
      hv1::AttachResponse ar;
      helper.Call(&hv1::NodeHelper::Stub::Attach, a, &ar, "Attach");
      hv1::ProbeRequest p;
      p.set_volume_uuid(uuid);
      hv1::ProbeResponse pr;
      helper.Call(&hv1::NodeHelper::Stub::Probe, p, &pr, "Probe");
      hv1::FormatRequest f;
      f.set_volume_uuid(uuid);
      f.set_fs_type(hv1::FS_TYPE_EXT4);
      f.set_proof(hv1::NEVER_WRITTEN_PROOF_CREATED_EMPTY);
      hv1::FormatResponse fr;
      helper.Call(&hv1::NodeHelper::Stub::Format, f, &fr, "Format");
      hv1::MountRequest m;
      m.set_volume_uuid(uuid);
      m.set_staging_path(mnt);
      m.set_fs_type(hv1::FS_TYPE_EXT4);
      hv1::MountResponse mr;
      helper.Call(&hv1::NodeHelper::Stub::Mount, m, &mr, "Mount");
      helper_ms.push_back(MsSince(t0));
      std::printf("helper  %2d: %7.0f ms (%s)\n", it, helper_ms.back(), ar.device_name().c_str());
      hv1::UnmountRequest u;
      u.set_staging_path(mnt);
      hv1::UnmountResponse ur;
      helper.Call(&hv1::NodeHelper::Stub::Unmount, u, &ur, "Unmount");
      hv1::DetachRequest d;
      d.set_volume_uuid(uuid);
      d.set_subsystem_nqn(nqn);
      hv1::DetachResponse dr;
      helper.Call(&hv1::NodeHelper::Stub::Detach, d, &dr, "Detach");
    } else {
      BareConnect(nqn, bare_host, "4420");
      BareConnect(nqn, bare_host, "4421");
      const std::string dev = BareFindDevice(uuid);
      if (Run({"/usr/sbin/mkfs.ext4", "-q", "-E", "nodiscard,lazy_itable_init=1", dev}) != 0) {
        Die("mkfs.ext4 " + dev);
      }
      if (mount(dev.c_str(), mnt.c_str(), "ext4", 0, nullptr) != 0) {
        Die("mount " + dev + ": " + std::strerror(errno));
      }
      bare_ms.push_back(MsSince(t0));
      std::printf("bare    %2d: %7.0f ms (%s)\n", it, bare_ms.back(), dev.c_str());
      umount2(mnt.c_str(), 0);
      DeleteControllers(nqn);
    }
    // Let the controllers go before the target does.
    for (auto end = Clock::now() + std::chrono::seconds(20); Clock::now() < end;) {
      if (ControllersOf(nqn).empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    NvmetOrDie("nvmet_teardown");
    fs::remove(img);
  }

  kill(helper.pid, SIGTERM);
  waitpid(helper.pid, nullptr, 0);
  std::error_code ec;
  fs::remove_all(dir, ec);
  const double b = Median(bare_ms), h = Median(helper_ms);
  std::printf(
      "NodeStage-equivalent, median of %d: helper %.0f ms, bare libnvme+mkfs+mount %.0f ms, "
      "ratio helper/bare %.2f\n",
      iterations, h, b, b > 0 ? h / b : 0.0);
  return 0;
}
