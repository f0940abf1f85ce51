#pragma once
// A plaintext gRPC server on 127.0.0.1 that answers every call UNAVAILABLE and
// records what arrived: the method and any `authorization` header. Tests name
// it as a LightOS management endpoint to prove where tokens do (not) go.
//
//   CaptureListener cap;
//   ... requests naming cap.endpoint() ...
//   EXPECT_EQ(cap.Calls(), 0u);

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

namespace lbcsi::conformance {

class CaptureListener {
 public:
  struct Call {
    std::string method;
    std::string authorization;  // empty when the header was absent
  };

  CaptureListener() : service_(this) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterCallbackGenericService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~CaptureListener() {
    if (server_) server_->Shutdown();
  }
  CaptureListener(const CaptureListener&) = delete;
  CaptureListener& operator=(const CaptureListener&) = delete;

  bool ok() const { return server_ != nullptr && port_ > 0; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  size_t Calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_.size();
  }
  // Every authorization value received (one per call that carried one).
  std::vector<std::string> Authorizations() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const Call& c : calls_) {
      if (!c.authorization.empty()) out.push_back(c.authorization);
    }
    return out;
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.clear();
  }

 private:
  class Service : public grpc::CallbackGenericService {
   public:
    explicit Service(CaptureListener* owner) : owner_(owner) {}
    grpc::ServerGenericBidiReactor* CreateReactor(
        grpc::GenericCallbackServerContext* ctx) override {
      Call call;
      call.method = ctx->method();
      for (const auto& [key, value] : ctx->client_metadata()) {
        if (key == "authorization") call.authorization.assign(value.data(), value.size());
      }
      {
        std::lock_guard<std::mutex> lock(owner_->mu_);
        owner_->calls_.push_back(std::move(call));
      }
      class Refuse : public grpc::ServerGenericBidiReactor {
       public:
        Refuse() { Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "capture listener")); }
        void OnDone() override { delete this; }
      };
      return new Refuse();
    }

   private:
    CaptureListener* owner_;
  };

  Service service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  mutable std::mutex mu_;
  std::vector<Call> calls_;
};

}  // namespace lbcsi::conformance
