// Integration tests: spawn the lightos-sim binary and talk to it over real sockets
// (TLS with generated certificates, the HTTP control endpoint, restart persistence).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/lightos-sim/fileops.h"
#include "tests/lightos-sim/test_util.h"

namespace lbcsi::sim {
namespace {

using namespace lbcsi::sim::testing;
using grpc::StatusCode;

std::string SimBinary() {
  const char* build = std::getenv("LBCSI_BUILD_DIR");
  return std::string(build ? build : ".") + "/tests/lightos-sim/lightos-sim";
}

// Runs the binary to completion (gen-certs); returns its exit status.
int RunToCompletion(std::vector<std::string> args) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    std::string bin = SimBinary();
    argv.push_back(bin.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A lightos-sim process, stopped with SIGTERM (SIGKILL if it lingers) on destruction.
class SimProcess {
 public:
  SimProcess(const std::string& dir, std::vector<std::string> args) : dir_(dir) {
    std::filesystem::remove(dir + "/ready.json");
    args.push_back("--ready-file=" + dir + "/ready.json");
    log_ = dir + "/sim.log";
    pid_ = fork();
    if (pid_ == 0) {
      FILE* f = std::fopen(log_.c_str(), "a");
      if (f != nullptr) {
        dup2(fileno(f), 1);
        dup2(fileno(f), 2);
      }
      std::vector<char*> argv;
      std::string bin = SimBinary();
      argv.push_back(bin.data());
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
  }
  ~SimProcess() { Stop(); }

  // Waits (bounded) for the ready file; false if the process died or took too long.
  bool WaitReady() {
    for (int i = 0; i < 600; ++i) {
      auto text = ReadFile(dir_ + "/ready.json");
      if (text.ok()) {
        ready_ = nlohmann::json::parse(*text);
        return true;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  std::string endpoint(size_t i) const { return ready_["endpoints"][i].get<std::string>(); }
  std::string control() const { return ready_["control"].get<std::string>(); }
  const nlohmann::json& ready() const { return ready_; }
  std::string log() const { return ReadFile(log_).value_or(""); }

  int Stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 200; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return -2;
  }

 private:
  std::string dir_;
  std::string log_;
  pid_t pid_ = -1;
  nlohmann::json ready_;
};

grpc::Status Version(api::DurosAPI::Stub* stub, const std::string& token = kToken) {
  grpc::ClientContext ctx;
  Prepare(&ctx, token, 5000);
  api::Version v;
  grpc::Status st = stub->GetVersion(&ctx, {}, &v);
  if (st.ok() && v.apiversion() != "v2.0") return grpc::Status(StatusCode::INTERNAL, "bad version");
  return st;
}

std::unique_ptr<api::DurosAPI::Stub> TlsStub(const std::string& endpoint, const std::string& ca) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca;
  return api::DurosAPI::NewStub(grpc::CreateChannel(endpoint, grpc::SslCredentials(ssl)));
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST(SimBinaryTest, ServesTlsWithGeneratedCertificates) {
  TempDir dir;
  ASSERT_EQ(RunToCompletion({"gen-certs", "--dir", dir.path() + "/pki", "--ip", "127.0.0.1",
                             "--dns", "localhost"}),
            0);
  ASSERT_EQ(RunToCompletion({"gen-certs", "--dir", dir.path() + "/other"}), 0);
  auto ca = ReadFile(dir.path() + "/pki/ca.crt");
  auto other_ca = ReadFile(dir.path() + "/other/ca.crt");
  ASSERT_TRUE(ca.ok() && other_ca.ok());
  EXPECT_EQ(std::filesystem::status(dir.path() + "/pki/server.key").permissions() &
                std::filesystem::perms::others_read,
            std::filesystem::perms::none);
  WriteText(dir.path() + "/jwt", std::string(kToken) + "\n");  // trailing newline is not part

  SimProcess sim(dir.path(),
                 {"--data-dir", dir.path() + "/data", "--listen", "127.0.0.1:0", "--jwt-file",
                  dir.path() + "/jwt", "--tls-cert", dir.path() + "/pki/server.crt", "--tls-key",
                  dir.path() + "/pki/server.key"});
  ASSERT_TRUE(sim.WaitReady()) << sim.log();
  EXPECT_TRUE(sim.ready()["tls"].get<bool>());

  auto good = TlsStub(sim.endpoint(0), *ca);
  grpc::Status st = Version(good.get());
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(Version(good.get(), "wrong").error_code(), StatusCode::UNAUTHENTICATED);
  // A client trusting another CA refuses the server; a plaintext client gets nowhere.
  EXPECT_EQ(Version(TlsStub(sim.endpoint(0), *other_ca).get()).error_code(),
            StatusCode::UNAVAILABLE);
  EXPECT_FALSE(Version(PlainStub(sim.endpoint(0)).get()).ok());
  EXPECT_EQ(sim.Stop(), 0);
  EXPECT_EQ(sim.log().find(kToken), std::string::npos) << "token leaked into the log";
}

TEST(SimBinaryTest, ControlEndpointFaultsFileAndRestartPersistence) {
  TempDir dir;
  WriteText(dir.path() + "/faults.json",
            R"({"rpcs": {"ListNodes": {"error": "PERMISSION_DENIED"}}})");
  std::vector<std::string> args = {"--data-dir",
                                   dir.path() + "/data",
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--jwt",
                                   kToken,
                                   "--control-listen",
                                   "127.0.0.1:0",
                                   "--faults",
                                   dir.path() + "/faults.json",
                                   "--create-delay-ms",
                                   "100",
                                   "--log-level",
                                   "debug",
                                   "--log-format",
                                   "json"};
  std::string uuid;
  {
    SimProcess sim(dir.path(), args);
    ASSERT_TRUE(sim.WaitReady()) << sim.log();
    auto s0 = PlainStub(sim.endpoint(0));
    auto s1 = PlainStub(sim.endpoint(1));
    ASSERT_TRUE(Version(s0.get()).ok());

    grpc::ClientContext nctx;
    Prepare(&nctx);
    api::ListNodesResponse nodes;
    EXPECT_EQ(s0->ListNodes(&nctx, {}, &nodes).error_code(), StatusCode::PERMISSION_DENIED);

    std::string control = sim.control();
    auto colon = control.rfind(':');
    httplib::Client http(control.substr(0, colon), std::stoi(control.substr(colon + 1)));
    httplib::Headers auth = {{"Authorization", std::string("Bearer ") + kToken}};
    auto unauth = http.Get("/v1/endpoints");
    ASSERT_TRUE(unauth);
    EXPECT_EQ(unauth->status, 401);

    auto stop = http.Post("/v1/endpoints/0/stop", auth, "", "application/json");
    ASSERT_TRUE(stop);
    EXPECT_EQ(stop->status, 200) << stop->body;
    auto listing = nlohmann::json::parse(stop->body);
    EXPECT_FALSE(listing["endpoints"][0]["serving"].get<bool>());
    EXPECT_TRUE(listing["endpoints"][1]["serving"].get<bool>());
    EXPECT_EQ(Version(s0.get()).error_code(), StatusCode::UNAVAILABLE);
    EXPECT_TRUE(Version(s1.get()).ok());
    auto start = http.Post("/v1/endpoints/0/start", auth, "", "application/json");
    ASSERT_TRUE(start);
    EXPECT_EQ(start->status, 200) << start->body;
    bool back = false;
    for (int i = 0; i < 50 && !back; ++i) back = Version(PlainStub(sim.endpoint(0)).get()).ok();
    EXPECT_TRUE(back);

    auto put = http.Put("/v1/faults", auth,
                        R"({"rpcs": {"GetVersion": {"error": "INTERNAL", "endpoints": [1]}}})",
                        "application/json");
    ASSERT_TRUE(put);
    EXPECT_EQ(put->status, 200) << put->body;
    EXPECT_EQ(Version(s1.get()).error_code(), StatusCode::INTERNAL);
    EXPECT_TRUE(Version(s0.get()).ok());
    auto bad = http.Put("/v1/faults", auth, R"({"bogus": 1})", "application/json");
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 400);

    grpc::ClientContext cctx;
    Prepare(&cctx);
    api::CreateVolumeRequest req;
    req.set_name("survivor");
    req.set_size("64MiB");
    req.set_replicacount(1);
    api::Volume v;
    ASSERT_TRUE(s0->CreateVolume(&cctx, req, &v).ok());
    uuid = v.uuid();
    ASSERT_TRUE(WaitForVolume(s0.get(), uuid, api::Volume::Available));
    auto fail = http.Post("/v1/volumes/" + uuid + "/fail", auth, "", "application/json");
    ASSERT_TRUE(fail);
    EXPECT_EQ(fail->status, 200);
    EXPECT_TRUE(WaitForVolume(s0.get(), uuid, api::Volume::Failed));
    EXPECT_EQ(sim.Stop(), 0);
  }
  // A new process over the same data directory has the volume (new ports are fine).
  SimProcess again(dir.path(), args);
  ASSERT_TRUE(again.WaitReady()) << again.log();
  auto stub = PlainStub(again.endpoint(0));
  api::Volume v;
  EXPECT_TRUE(WaitForVolume(stub.get(), uuid, api::Volume::Failed, "", &v));
  EXPECT_EQ(v.name(), "survivor");
  EXPECT_EQ(v.size(), 64u << 20);
  EXPECT_EQ(again.Stop(), 0);
}

TEST(SimBinaryTest, RefusesToStartWithoutAToken) {
  TempDir dir;
  SimProcess sim(dir.path(), {"--data-dir", dir.path() + "/data"});
  EXPECT_FALSE(sim.WaitReady());
  EXPECT_NE(sim.log().find("JWT"), std::string::npos) << sim.log();
}

}  // namespace
}  // namespace lbcsi::sim
