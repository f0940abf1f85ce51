// Controller overhead: 1000 create+delete pairs at concurrency 64, once through
// the lbcsi-controller binary (CSI over its unix socket) and once with a bare
// LightOS client, both against the same lightos-sim process. Prints the ratio
// from this one run. Not a test.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <grpcpp/create_channel.h>
#include <nlohmann/json.hpp>

#include "csi/v1/csi.grpc.pb.h"
#include "lightos/client_pool.h"

namespace {

constexpr int kPairs = 1000;
constexpr int kConcurrency = 64;
constexpr char kToken[] = "bench-token";

pid_t Spawn(const std::string& bin, std::vector<std::string> args, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = freopen(log.c_str(), "w", stderr);
    (void)f;
    std::vector<char*> argv{const_cast<char*>(bin.c_str())};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

void Stop(pid_t pid) {
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
}

bool WaitFor(const std::string& path) {
  for (int i = 0; i < 400 && !std::filesystem::exists(path); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return std::filesystem::exists(path);
}

template <typename Op>
double Run(Op&& op, std::atomic<int>* errors) {
  std::atomic<int> next{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kConcurrency; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < kPairs; i = next++) {
        if (!op(i)) ++*errors;
      }
    });
  }
  for (auto& th : threads) th.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main() {
  char tmpl[] = "/tmp/lbcsi-ctrl-bench-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  pid_t sim = Spawn(LBCSI_SIM_BINARY,
                    {"--data-dir", dir + "/sim", "--listen", "127.0.0.1:0", "--jwt", kToken,
                     "--ready-file", dir + "/ready.json", "--log-level", "warn"},
                    dir + "/sim.log");
  if (!WaitFor(dir + "/ready.json")) {
    std::fprintf(stderr, "lightos-sim did not start\n");
    return 1;
  }
  std::ifstream rf(dir + "/ready.json");
  std::stringstream ss;
  ss << rf.rdbuf();
  std::string endpoint = nlohmann::json::parse(ss.str())["endpoints"][0].get<std::string>();
  { std::ofstream(dir + "/jwt") << kToken; }
  std::string sock = dir + "/csi.sock";
  pid_t ctrl = Spawn(LBCSI_CONTROLLER_BINARY,
                     {"--endpoint", "unix://" + sock, "--default-scheme", "grpc", "--jwt-file",
                      dir + "/jwt", "--trusted-cluster", endpoint + "|scheme:grpc",
                      "--metrics-address", "", "--log-level", "warn"},
                     dir + "/controller.log");
  if (!WaitFor(sock)) {
    std::fprintf(stderr, "lbcsi-controller did not start\n");
    return 1;
  }

  // Bare client.
  lbcsi::lightos::PooledClientFactory factory;
  lbcsi::lightos::ClusterTarget target;
  target.endpoints = {*lbcsi::ParseHostPort(endpoint)};
  target.scheme = lbcsi::MgmtScheme::kGrpc;
  auto client = *factory.GetClient(target, {.inline_token = kToken});
  std::atomic<int> bare_errors{0};
  double bare = Run(
      [&](int i) {
        lbcsi::lightos::CallOptions o;
        o.deadline = absl::Now() + absl::Seconds(60);
        lbcsi::lightos::CreateVolumeSpec spec;
        spec.name = "bare-" + std::to_string(i);
        spec.size_bytes = uint64_t{1} << 30;
        auto v = client->CreateVolume(spec, o);
        return v.ok() && client->DeleteVolume(v->uuid, o).ok();
      },
      &bare_errors);

  // Through the controller.
  auto stub = csi::v1::Controller::NewStub(
      grpc::CreateChannel("unix:" + sock, grpc::InsecureChannelCredentials()));
  std::atomic<int> ctrl_errors{0};
  double via = Run(
      [&](int i) {
        csi::v1::CreateVolumeRequest r;
        r.set_name("csi-" + std::to_string(i));
        auto* cap = r.add_volume_capabilities();
        cap->mutable_block();
        cap->mutable_access_mode()->set_mode(
            csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
        (*r.mutable_parameters())["mgmt-endpoint"] = endpoint;
        (*r.mutable_parameters())["replica-count"] = "1";
        (*r.mutable_secrets())["jwt"] = kToken;
        grpc::ClientContext c1;
        c1.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
        csi::v1::CreateVolumeResponse resp;
        if (!stub->CreateVolume(&c1, r, &resp).ok()) return false;
        csi::v1::DeleteVolumeRequest d;
        d.set_volume_id(resp.volume().volume_id());
        (*d.mutable_secrets())["jwt"] = kToken;
        grpc::ClientContext c2;
        c2.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
        csi::v1::DeleteVolumeResponse dr;
        return stub->DeleteVolume(&c2, d, &dr).ok();
      },
      &ctrl_errors);

  Stop(ctrl);
  Stop(sim);
  std::filesystem::remove_all(dir);
  std::printf("controller_bench: %d create+delete pairs, concurrency %d, against lightos-sim\n",
              kPairs, kConcurrency);
  std::printf("  bare client:      %.3f s (%.0f pairs/s, %d errors)\n", bare, kPairs / bare,
              bare_errors.load());
  std::printf("  via controller:   %.3f s (%.0f pairs/s, %d errors)\n", via, kPairs / via,
              ctrl_errors.load());
  std::printf("  overhead ratio (controller / bare): %.2f\n", via / bare);
  return bare_errors == 0 && ctrl_errors == 0 ? 0 : 1;
}
