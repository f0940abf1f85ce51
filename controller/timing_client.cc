#include "controller/timing_client.h"

#include <chrono>

#include "common/strings.h"

namespace lbcsi::controller {
namespace {

using namespace lightos;  // NOLINT: the decorator repeats every Client signature

constexpr char kSeconds[] = "lbcsi_lightos_call_seconds";
constexpr char kCalls[] = "lbcsi_lightos_calls_total";

class TimingClient final : public Client {
 public:
  TimingClient(std::shared_ptr<Client> inner, metrics::Registry& registry)
      : inner_(std::move(inner)), registry_(registry) {}

  // Records latency and result code of one call.
  static const absl::Status& StatusOf(const absl::Status& s) { return s; }
  template <typename T>
  static const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
    return s.status();
  }

  template <typename F>
  auto Time(const char* op, F&& f) {
    auto start = std::chrono::steady_clock::now();
    auto result = f();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    registry_.Observe(kSeconds, {{"op", op}}, secs);
    registry_.Increment(
        kCalls,
        {{"op", op}, {"code", std::string(absl::StatusCodeToString(StatusOf(result).code()))}});
    return result;
  }

 public:
  absl::Status CheckVersion(const CallOptions& o) override {
    return Time("CheckVersion", [&] { return inner_->CheckVersion(o); });
  }
  absl::StatusOr<ClusterInfo> GetClusterInfo(const CallOptions& o) override {
    return Time("GetClusterInfo", [&] { return inner_->GetClusterInfo(o); });
  }
  absl::StatusOr<Volume> CreateVolume(const CreateVolumeSpec& s, const CallOptions& o) override {
    return Time("CreateVolume", [&] { return inner_->CreateVolume(s, o); });
  }
  absl::StatusOr<Volume> GetVolume(const std::string& u, const CallOptions& o) override {
    return Time("GetVolume", [&] { return inner_->GetVolume(u, o); });
  }
  absl::StatusOr<Volume> GetVolumeByName(const std::string& n, const CallOptions& o) override {
    return Time("GetVolumeByName", [&] { return inner_->GetVolumeByName(n, o); });
  }
  absl::Status DeleteVolume(const std::string& u, const CallOptions& o) override {
    return Time("DeleteVolume", [&] { return inner_->DeleteVolume(u, o); });
  }
  absl::StatusOr<std::vector<Volume>> ListVolumes(const Page& p, const CallOptions& o) override {
    return Time("ListVolumes", [&] { return inner_->ListVolumes(p, o); });
  }
  absl::StatusOr<Volume> UpdateVolumeAccess(const std::string& u, const AccessMutator& m,
                                            const CallOptions& o) override {
    return Time("UpdateVolumeAccess", [&] { return inner_->UpdateVolumeAccess(u, m, o); });
  }
  absl::StatusOr<Volume> ResizeVolume(const std::string& u, uint64_t s,
                                      const CallOptions& o) override {
    return Time("ResizeVolume", [&] { return inner_->ResizeVolume(u, s, o); });
  }
  absl::StatusOr<Volume> SetQosPolicy(const std::string& u, const std::string& p,
                                      const CallOptions& o) override {
    return Time("SetQosPolicy", [&] { return inner_->SetQosPolicy(u, p, o); });
  }
  absl::StatusOr<Snapshot> CreateSnapshot(const std::string& n, const std::string& v,
                                          const CallOptions& o) override {
    return Time("CreateSnapshot", [&] { return inner_->CreateSnapshot(n, v, o); });
  }
  absl::StatusOr<Snapshot> GetSnapshot(const std::string& u, const CallOptions& o) override {
    return Time("GetSnapshot", [&] { return inner_->GetSnapshot(u, o); });
  }
  absl::StatusOr<Snapshot> GetSnapshotByName(const std::string& n, const CallOptions& o) override {
    return Time("GetSnapshotByName", [&] { return inner_->GetSnapshotByName(n, o); });
  }
  absl::Status DeleteSnapshot(const std::string& u, const CallOptions& o) override {
    return Time("DeleteSnapshot", [&] { return inner_->DeleteSnapshot(u, o); });
  }
  absl::StatusOr<std::vector<Snapshot>> ListSnapshots(const Page& p, const std::string& v,
                                                      const CallOptions& o) override {
    return Time("ListSnapshots", [&] { return inner_->ListSnapshots(p, v, o); });
  }

 private:
  std::shared_ptr<Client> inner_;
  metrics::Registry& registry_;
};

}  // namespace

std::shared_ptr<lightos::Client> WithTiming(std::shared_ptr<lightos::Client> inner,
                                            metrics::Registry& registry) {
  registry.DescribeHistogram(kSeconds, "Latency of LightOS management calls, by operation");
  registry.DescribeCounter(kCalls, "LightOS management calls, by operation and result code");
  return std::make_shared<TimingClient>(std::move(inner), registry);
}

absl::StatusOr<std::shared_ptr<lightos::Client>> TimingClientFactory::GetClient(
    const lightos::ClusterTarget& target, const lightos::TokenSource& token) {
  auto client = inner_->GetClient(target, token);
  if (!client.ok()) return client.status();
  return WithTiming(*std::move(client), registry_);
}

}  // namespace lbcsi::controller
