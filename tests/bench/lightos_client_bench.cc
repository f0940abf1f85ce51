// Client overhead: N create+delete cycles through GrpcClient vs the same RPCs
// sent with a bare generated stub, against lightos-sim (or the in-process fake
// when the emulator binary was not built). Prints both times and their ratio,
// measured in one run; not a test.
//
//   lightos_client_bench [cycles]      (default 200)

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "common/strings.h"
#include "lightbits/api/duros/v2/durosapi.grpc.pb.h"
#include "lightos/grpc_client.h"
#include "tests/lightos/fake_duros.h"
#include "tests/lightos/sim_process.h"

namespace {

namespace pb = ::lightbits::api::duros::v2;
using Clock = std::chrono::steady_clock;
constexpr char kToken[] = "bench-token";

void Fail(const std::string& what) {
  std::fprintf(stderr, "lightos_client_bench: %s\n", what.c_str());
  std::exit(1);
}

// The library: CreateVolume waits for Available, DeleteVolume waits for NOT_FOUND.
double RunLibrary(lbcsi::lightos::Client& client, int cycles, int offset) {
  auto start = Clock::now();
  for (int i = 0; i < cycles; ++i) {
    lbcsi::lightos::CallOptions opts{absl::Now() + absl::Seconds(30)};
    auto v =
        client.CreateVolume({.name = lbcsi::Cat("lib-", offset + i), .size_bytes = 1 << 30}, opts);
    if (!v.ok()) Fail(v.status().ToString());
    absl::Status st = client.DeleteVolume(v->uuid, opts);
    if (!st.ok()) Fail(st.ToString());
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The same protocol by hand: create, read until Available, delete, read until gone.
double RunBare(pb::DurosAPI::Stub& stub, const std::string& project, int cycles, int offset) {
  auto call = [](auto fn) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return fn(ctx);
  };
  auto start = Clock::now();
  for (int i = 0; i < cycles; ++i) {
    pb::CreateVolumeRequest create;
    create.set_name(lbcsi::Cat("bare-", offset + i));
    create.set_size("1073741824b");
    create.mutable_acl()->add_values("ALLOW_NONE");
    create.set_compression("false");
    create.set_replicacount(1);
    create.set_projectname(project);
    pb::Volume volume;
    grpc::Status st = call([&](auto& ctx) { return stub.CreateVolume(&ctx, create, &volume); });
    if (!st.ok()) Fail("bare create: " + st.error_message());
    pb::GetVolumeRequest get;
    get.set_uuid(volume.uuid());
    get.set_projectname(project);
    while (volume.state() != pb::Volume::Available) {
      st = call([&](auto& ctx) { return stub.GetVolume(&ctx, get, &volume); });
      if (!st.ok()) Fail("bare get: " + st.error_message());
    }
    pb::DeleteVolumeRequest del;
    del.set_uuid(volume.uuid());
    del.set_projectname(project);
    pb::DeleteVolumeResponse del_resp;
    st = call([&](auto& ctx) { return stub.DeleteVolume(&ctx, del, &del_resp); });
    if (!st.ok()) Fail("bare delete: " + st.error_message());
    while (true) {
      st = call([&](auto& ctx) { return stub.GetVolume(&ctx, get, &volume); });
      if (st.error_code() == grpc::StatusCode::NOT_FOUND) break;
      if (!st.ok()) Fail("bare get after delete: " + st.error_message());
    }
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int cycles = argc > 1 ? std::atoi(argv[1]) : 200;
  std::unique_ptr<lbcsi::lightos::testing::SimProcess> sim;
  std::unique_ptr<lbcsi::lightos::testing::FakeServer> fake;
  std::string dir =
      (std::filesystem::temp_directory_path() / lbcsi::Cat("lbcsi-client-bench-", ::getpid()))
          .string();
  int port = 0;
  std::string against;
#ifdef LBCSI_SIM_BINARY
  sim = std::make_unique<lbcsi::lightos::testing::SimProcess>(
      LBCSI_SIM_BINARY, dir,
      std::vector<std::string>{"--listen=127.0.0.1:0", "--data-dir=" + dir + "/data",
                               lbcsi::Cat("--jwt=", kToken), "--log-level=warn"});
  if (!sim->WaitReady()) Fail("lightos-sim did not start: " + sim->Log());
  port = sim->Ports().at(0);
  against = "lightos-sim";
#else
  fake = std::make_unique<lbcsi::lightos::testing::FakeServer>();
  port = fake->port();
  against = "in-process fake DurosAPI";
#endif
  const std::string project = "default";
  lbcsi::lightos::ClusterTarget target;
  target.endpoints = {lbcsi::HostPort{"127.0.0.1", static_cast<uint16_t>(port)}};
  target.scheme = lbcsi::MgmtScheme::kGrpc;
  target.project = project;
  lbcsi::lightos::GrpcClientOptions options;
  options.poll_initial = absl::Milliseconds(1);  // no artificial sleeps in the comparison
  options.poll_max = absl::Milliseconds(1);
  auto client = lbcsi::lightos::GrpcClient::Create(target, {.inline_token = kToken}, options);
  if (!client.ok()) Fail(client.status().ToString());
  auto stub = pb::DurosAPI::NewStub(
      grpc::CreateChannel(lbcsi::Cat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));

  // Warm both paths (connections, allocator), then alternate halves to even out drift.
  RunLibrary(**client, 10, 1000000);
  RunBare(*stub, project, 10, 1000000);
  double lib = 0, bare = 0;
  const int half = cycles / 2;
  lib += RunLibrary(**client, half, 0);
  bare += RunBare(*stub, project, half, 0);
  bare += RunBare(*stub, project, cycles - half, half);
  lib += RunLibrary(**client, cycles - half, half);

  std::printf("against: %s, cycles: %d (create + wait Available + delete + wait gone)\n",
              against.c_str(), cycles);
  std::printf("library: %.3f s (%.3f ms/cycle)\n", lib, lib * 1000 / cycles);
  std::printf("bare stub: %.3f s (%.3f ms/cycle)\n", bare, bare * 1000 / cycles);
  std::printf("ratio library/bare: %.3f\n", lib / bare);
  sim.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
