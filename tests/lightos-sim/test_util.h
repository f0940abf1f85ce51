#pragma once
// Helpers shared by lightos-sim's own tests: temp dirs, stubs, authenticated contexts.

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include "lightbits/api/duros/v2/durosapi.grpc.pb.h"

namespace lbcsi::sim::testing {

namespace api = ::lightbits::api::duros::v2;

inline constexpr char kToken[] = "eyJhbGciOi.test-token.sig";
inline constexpr char kOtherToken[] = "eyJhbGciOi.second-token.sig";

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/lbcsi-sim-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::unique_ptr<api::DurosAPI::Stub> PlainStub(const std::string& endpoint) {
  return api::DurosAPI::NewStub(grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials()));
}

// Sets the bearer token (none when empty) and a deadline.
inline void Prepare(grpc::ClientContext* ctx, const std::string& token = kToken,
                    int timeout_ms = 5000) {
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
}

// Polls GetVolume until the volume reaches `state` (or is gone, for Deleted); bounded.
inline ::testing::AssertionResult WaitForVolume(api::DurosAPI::Stub* stub, const std::string& uuid,
                                                api::Volume::StateEnum state,
                                                const std::string& project = "",
                                                api::Volume* out = nullptr) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::string last;
  while (std::chrono::steady_clock::now() < end) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    api::GetVolumeRequest req;
    req.set_uuid(uuid);
    req.set_projectname(project);
    api::Volume v;
    grpc::Status st = stub->GetVolume(&ctx, req, &v);
    if (state == api::Volume::Deleted && st.error_code() == grpc::StatusCode::NOT_FOUND) {
      return ::testing::AssertionSuccess();
    }
    if (st.ok() && v.state() == state) {
      if (out != nullptr) *out = v;
      return ::testing::AssertionSuccess();
    }
    last = st.ok() ? api::Volume::StateEnum_Name(v.state()) : st.error_message();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return ::testing::AssertionFailure() << "volume " << uuid << " never reached "
                                       << api::Volume::StateEnum_Name(state) << "; last: " << last;
}

}  // namespace lbcsi::sim::testing
