#include "tests/lightos-sim/service.h"

#include <chrono>
#include <random>
#include <thread>

#include "common/logging.h"
#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::sim {
namespace {

// Compares without an early exit, so timing does not reveal how much of a token matched.
bool SameSecret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::optional<std::string> Metadata(grpc::ServerContext* ctx, std::string_view key) {
  const auto& md = ctx->client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

double RandomUnit() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

bool SharedState::Authorized(std::string_view header) const {
  std::string_view token = header;
  if (!ConsumePrefix(&token, "Bearer ")) return false;
  bool ok = false;
  for (const auto& t : tokens_) ok |= SameSecret(token, t);
  return ok;
}

std::shared_ptr<const FaultConfig> SharedState::faults() const {
  std::lock_guard lock(mu_);
  return faults_;
}

void SharedState::SetFaults(FaultConfig faults) {
  auto next = std::make_shared<const FaultConfig>(std::move(faults));
  cluster_->SetFailPredicate([next](std::string_view name) { return next->ShouldFail(name); });
  std::lock_guard lock(mu_);
  faults_ = std::move(next);
}

absl::Status DurosService::InjectFaults(grpc::ServerContext* ctx, const std::string& rpc) {
  auto faults = shared_->faults();
  const RpcFault* f = faults->Find(rpc, endpoint_);
  if (f == nullptr) return absl::OkStatus();
  using namespace std::chrono;
  auto sleep_until = [&](steady_clock::time_point end) {
    while (steady_clock::now() < end && !ctx->IsCancelled() && !shared_->stopping) {
      std::this_thread::sleep_for(milliseconds(5));
    }
  };
  if (f->latency_ms > 0) sleep_until(steady_clock::now() + milliseconds(f->latency_ms));
  if (f->stall) {
    // Until the client gives up (bounded so that a call without a deadline ends too).
    auto limit = f->stall_ms > 0 ? milliseconds(f->stall_ms) : milliseconds(minutes(10));
    LOG(kDebug, "stalling call", {"rpc", rpc}, {"endpoint", endpoint_});
    sleep_until(steady_clock::now() + limit);
    return absl::DeadlineExceededError(Cat("injected stall in ", rpc));
  }
  if (f->error != absl::StatusCode::kOk && RandomUnit() < f->rate) {
    std::string msg = f->message.empty() ? Cat("injected fault in ", rpc) : f->message;
    return absl::Status(f->error, msg);
  }
  return absl::OkStatus();
}

template <typename Body>
grpc::Status DurosService::Handle(grpc::ServerContext* ctx, const char* rpc, Body body) {
  auto auth = Metadata(ctx, "authorization");
  if (!auth.has_value() || !shared_->Authorized(*auth)) {
    // Never log the header: it may be a real token that merely is not ours.
    LOG(kInfo, "rejected call", {"rpc", rpc}, {"endpoint", endpoint_},
        {"reason", auth.has_value() ? "unknown token" : "no authorization metadata"});
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        auth.has_value() ? "invalid token" : "missing authorization metadata");
  }
  absl::Status status = InjectFaults(ctx, rpc);
  if (status.ok()) status = body();
  LOG(kDebug, "call", {"rpc", rpc}, {"endpoint", endpoint_}, {"status", status});
  return ToGrpcStatus(status);
}

grpc::Status DurosService::GetVersion(grpc::ServerContext* ctx, const api::GetVersionRequest*,
                                      api::Version* resp) {
  return Handle(ctx, "GetVersion", [&] {
    resp->set_apiversion("v2.0");
    return absl::OkStatus();
  });
}

grpc::Status DurosService::GetClusterInfo(grpc::ServerContext* ctx, const api::GetClusterRequest*,
                                          api::ClusterInfoV2* resp) {
  return Handle(ctx, "GetClusterInfo", [&] {
    *resp = shared_->cluster()->GetClusterInfo();
    return absl::OkStatus();
  });
}

grpc::Status DurosService::GetCluster(grpc::ServerContext* ctx, const api::GetClusterRequest*,
                                      api::ClusterInfo* resp) {
  return Handle(ctx, "GetCluster", [&] {
    *resp = shared_->cluster()->GetCluster();
    return absl::OkStatus();
  });
}

grpc::Status DurosService::CreateVolume(grpc::ServerContext* ctx,
                                        const api::CreateVolumeRequest* req, api::Volume* resp) {
  return Handle(ctx, "CreateVolume", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, shared_->cluster()->CreateVolume(*req));
    return absl::OkStatus();
  });
}

grpc::Status DurosService::GetVolume(grpc::ServerContext* ctx, const api::GetVolumeRequest* req,
                                     api::Volume* resp) {
  return Handle(ctx, "GetVolume", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, shared_->cluster()->GetVolume(*req));
    return absl::OkStatus();
  });
}

grpc::Status DurosService::UpdateVolume(grpc::ServerContext* ctx,
                                        const api::UpdateVolumeRequest* req,
                                        api::UpdateVolumeResponse*) {
  return Handle(ctx, "UpdateVolume",
                [&] { return shared_->cluster()->UpdateVolume(*req, Metadata(ctx, "if-match")); });
}

grpc::Status DurosService::DeleteVolume(grpc::ServerContext* ctx,
                                        const api::DeleteVolumeRequest* req,
                                        api::DeleteVolumeResponse*) {
  return Handle(ctx, "DeleteVolume", [&] { return shared_->cluster()->DeleteVolume(*req); });
}

grpc::Status DurosService::ListVolumes(grpc::ServerContext* ctx, const api::ListVolumeRequest* req,
                                       api::ListVolumesResponse* resp) {
  return Handle(ctx, "ListVolumes", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, shared_->cluster()->ListVolumes(*req));
    return absl::OkStatus();
  });
}

grpc::Status DurosService::CreateSnapshot(grpc::ServerContext* ctx,
                                          const api::CreateSnapshotRequest* req,
                                          api::Snapshot* resp) {
  return Handle(ctx, "CreateSnapshot", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, shared_->cluster()->CreateSnapshot(*req));
    return absl::OkStatus();
  });
}

grpc::Status DurosService::GetSnapshot(grpc::ServerContext* ctx, const api::GetSnapshotRequest* req,
                                       api::Snapshot* resp) {
  return Handle(ctx, "GetSnapshot", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, shared_->cluster()->GetSnapshot(*req));
    return absl::OkStatus();
  });
}

grpc::Status DurosService::DeleteSnapshot(grpc::ServerContext* ctx,
                                          const api::DeleteSnapshotRequest* req,
                                          api::DeleteSnapshotResponse*) {
  return Handle(ctx, "DeleteSnapshot", [&] { return shared_->cluster()->DeleteSnapshot(*req); });
}

grpc::Status DurosService::ListSnapshots(grpc::ServerContext* ctx,
                                         const api::ListSnapshotsRequest* req,
                                         api::ListSnapshotsResponse* resp) {
  return Handle(ctx, "ListSnapshots", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(*resp, shared_->cluster()->ListSnapshots(*req));
    return absl::OkStatus();
  });
}

grpc::Status DurosService::ListNodes(grpc::ServerContext* ctx, const api::ListNodeRequest* req,
                                     api::ListNodesResponse* resp) {
  return Handle(ctx, "ListNodes", [&] {
    *resp = shared_->cluster()->ListNodes(*req);
    return absl::OkStatus();
  });
}

}  // namespace lbcsi::sim
