#include "tests/controller/fake_lightos.h"

#include <algorithm>

#include <absl/time/clock.h>

#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::testing {

using lightos::Snapshot;
using lightos::Volume;

namespace {
constexpr uint64_t k4K = 4096;
uint64_t Round4K(uint64_t n) {
  return (n + k4K - 1) / k4K * k4K;
}
absl::Status NoVolume(const std::string& uuid) {
  return absl::NotFoundError(Cat("volume ", uuid, " not found"));
}
absl::Status NoSnapshot(const std::string& uuid) {
  return absl::NotFoundError(Cat("snapshot ", uuid, " not found"));
}
}  // namespace

FakeCluster::FakeCluster() {
  info.uuid = "c0ffee00-0000-4000-8000-000000000001";
  info.name = "fake";
  info.subsystem_nqn = "nqn.2016-01.com.lightbitslabs:uuid:c0ffee00-0000-4000-8000-000000000001";
  info.nvme_endpoints = {"10.0.0.1:4420", "10.0.0.2:4420"};
  info.discovery_endpoints = {"10.0.0.1:8009", "10.0.0.2:8009"};
  info.current_max_replicas = 3;
  info.free_logical_bytes = uint64_t{100} << 30;
}

std::string FakeCluster::NewUuid() {
  return fmt::format("00000000-0000-4000-8000-{:012x}", next_++);
}
std::string FakeCluster::NewEtag() {
  return Cat("etag-", next_++);
}

absl::Status FakeCluster::Enter(const std::string& op) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_[op];
  }
  return fault ? fault(op) : absl::OkStatus();
}

int FakeCluster::Calls(const std::string& op) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = calls_.find(op);
  return it == calls_.end() ? 0 : it->second;
}

std::vector<Volume> FakeCluster::Volumes(const std::string& project) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Volume> out;
  auto it = projects_.find(project);
  if (it != projects_.end()) {
    for (const auto& [u, v] : it->second.volumes) out.push_back(v);
  }
  return out;
}

std::vector<Snapshot> FakeCluster::Snapshots(const std::string& project) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Snapshot> out;
  auto it = projects_.find(project);
  if (it != projects_.end()) {
    for (const auto& [u, s] : it->second.snapshots) out.push_back(s);
  }
  return out;
}

bool FakeCluster::MutateVolume(const std::string& uuid, const std::function<void(Volume&)>& f) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [name, p] : projects_) {
    auto it = p.volumes.find(uuid);
    if (it != p.volumes.end()) {
      f(it->second);
      it->second.etag = NewEtag();
      return true;
    }
  }
  return false;
}

bool FakeCluster::MutateSnapshot(const std::string& uuid, const std::function<void(Snapshot&)>& f) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [name, p] : projects_) {
    auto it = p.snapshots.find(uuid);
    if (it != p.snapshots.end()) {
      f(it->second);
      it->second.etag = NewEtag();
      return true;
    }
  }
  return false;
}

absl::StatusOr<Volume> FakeCluster::CreateVolume(const std::string& project,
                                                 const lightos::CreateVolumeSpec& spec) {
  RETURN_IF_ERROR(Enter("CreateVolume"));
  std::lock_guard<std::mutex> lock(mu_);
  Project& p = P(project);
  for (const auto& [u, v] : p.volumes) {
    if (v.name == spec.name)
      return absl::AlreadyExistsError(Cat("volume name ", spec.name, " taken"));
  }
  if (spec.replica_count < 1 || spec.replica_count > info.current_max_replicas) {
    return absl::InvalidArgumentError("bad replica count");
  }
  Volume v;
  v.uuid = NewUuid();
  v.name = spec.name;
  v.project = project;
  v.state = create_state;
  v.protection = lightos::ProtectionState::kFullyProtected;
  v.size_bytes = Round4K(spec.size_bytes);
  v.replica_count = spec.replica_count;
  v.compression = spec.compression;
  v.acl = spec.acl;
  v.etag = NewEtag();
  v.qos_policy_name = spec.qos_policy_name.empty() ? "default" : spec.qos_policy_name;
  v.labels = spec.labels;
  v.creation_time = absl::Now();
  if (!spec.source_snapshot_uuid.empty()) {
    auto s = p.snapshots.find(spec.source_snapshot_uuid);
    if (s == p.snapshots.end()) return NoSnapshot(spec.source_snapshot_uuid);
    // LightOS creates a volume from a snapshot at the snapshot's size.
    if (v.size_bytes != s->second.size_bytes) {
      return absl::InvalidArgumentError("a volume from a snapshot must have the snapshot's size");
    }
    v.source_snapshot_uuid = spec.source_snapshot_uuid;
    v.written_bytes = 4096;  // it holds the snapshot's data
  }
  p.volumes[v.uuid] = v;
  return v;
}

absl::StatusOr<Volume> FakeCluster::GetVolume(const std::string& project, const std::string& uuid) {
  RETURN_IF_ERROR(Enter("GetVolume"));
  std::lock_guard<std::mutex> lock(mu_);
  auto& vols = P(project).volumes;
  auto it = vols.find(uuid);
  if (it == vols.end()) return NoVolume(uuid);
  return it->second;
}

absl::StatusOr<Volume> FakeCluster::GetVolumeByName(const std::string& project,
                                                    const std::string& name) {
  RETURN_IF_ERROR(Enter("GetVolumeByName"));
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [u, v] : P(project).volumes) {
    if (v.name == name) return v;
  }
  return absl::NotFoundError(Cat("no volume named ", name));
}

absl::Status FakeCluster::DeleteVolume(const std::string& project, const std::string& uuid) {
  RETURN_IF_ERROR(Enter("DeleteVolume"));
  std::lock_guard<std::mutex> lock(mu_);
  if (P(project).volumes.erase(uuid) == 0) return NoVolume(uuid);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Volume>> FakeCluster::ListVolumes(const std::string& project) {
  RETURN_IF_ERROR(Enter("ListVolumes"));
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Volume> out;
  for (const auto& [u, v] : P(project).volumes) out.push_back(v);
  std::reverse(out.begin(), out.end());  // the controller must not rely on the order
  return out;
}

absl::StatusOr<Volume> FakeCluster::UpdateVolumeAccess(const std::string& project,
                                                       const std::string& uuid,
                                                       const lightos::AccessMutator& mutate) {
  RETURN_IF_ERROR(Enter("UpdateVolumeAccess"));
  for (int attempt = 0; attempt < 10; ++attempt) {
    Volume copy;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& vols = P(project).volumes;
      auto it = vols.find(uuid);
      if (it == vols.end()) return NoVolume(uuid);
      copy = it->second;
    }
    std::vector<std::string> acl = copy.acl;
    lightos::Labels labels = copy.labels;
    if (!mutate(acl, labels)) return copy;
    if (before_acl_commit) before_acl_commit();
    std::lock_guard<std::mutex> lock(mu_);
    auto& vols = P(project).volumes;
    auto it = vols.find(uuid);
    if (it == vols.end()) return NoVolume(uuid);
    if (it->second.etag != copy.etag) continue;  // stale ETag: re-read and retry
    it->second.acl = acl;
    it->second.labels = labels;
    it->second.etag = NewEtag();
    return it->second;
  }
  return absl::AbortedError("ETag kept changing");
}

absl::StatusOr<Volume> FakeCluster::ResizeVolume(const std::string& project,
                                                 const std::string& uuid, uint64_t size) {
  RETURN_IF_ERROR(Enter("ResizeVolume"));
  std::lock_guard<std::mutex> lock(mu_);
  auto& vols = P(project).volumes;
  auto it = vols.find(uuid);
  if (it == vols.end()) return NoVolume(uuid);
  if (it->second.size_bytes < Round4K(size)) {
    it->second.size_bytes = Round4K(size);
    it->second.etag = NewEtag();
  }
  return it->second;
}

absl::StatusOr<Volume> FakeCluster::SetQosPolicy(const std::string& project,
                                                 const std::string& uuid,
                                                 const std::string& policy) {
  RETURN_IF_ERROR(Enter("SetQosPolicy"));
  std::lock_guard<std::mutex> lock(mu_);
  auto& vols = P(project).volumes;
  auto it = vols.find(uuid);
  if (it == vols.end()) return NoVolume(uuid);
  if (std::find(qos_policies.begin(), qos_policies.end(), policy) == qos_policies.end()) {
    return absl::NotFoundError(Cat("qos policy ", policy, " not found"));
  }
  it->second.qos_policy_name = policy;
  it->second.etag = NewEtag();
  return it->second;
}

absl::StatusOr<Snapshot> FakeCluster::CreateSnapshot(const std::string& project,
                                                     const std::string& name,
                                                     const std::string& source) {
  RETURN_IF_ERROR(Enter("CreateSnapshot"));
  std::lock_guard<std::mutex> lock(mu_);
  Project& p = P(project);
  for (const auto& [u, s] : p.snapshots) {
    if (s.name == name) return absl::AlreadyExistsError(Cat("snapshot name ", name, " taken"));
  }
  auto v = p.volumes.find(source);
  if (v == p.volumes.end()) return NoVolume(source);
  Snapshot s;
  s.uuid = NewUuid();
  s.name = name;
  s.project = project;
  s.state = lightos::SnapshotState::kAvailable;
  s.source_volume_uuid = source;
  s.size_bytes = v->second.size_bytes;
  s.creation_time = absl::Now();
  s.etag = NewEtag();
  p.snapshots[s.uuid] = s;
  return s;
}

absl::StatusOr<Snapshot> FakeCluster::GetSnapshot(const std::string& project,
                                                  const std::string& uuid) {
  RETURN_IF_ERROR(Enter("GetSnapshot"));
  std::lock_guard<std::mutex> lock(mu_);
  auto& snaps = P(project).snapshots;
  auto it = snaps.find(uuid);
  if (it == snaps.end()) return NoSnapshot(uuid);
  return it->second;
}

absl::StatusOr<Snapshot> FakeCluster::GetSnapshotByName(const std::string& project,
                                                        const std::string& name) {
  RETURN_IF_ERROR(Enter("GetSnapshotByName"));
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [u, s] : P(project).snapshots) {
    if (s.name == name) return s;
  }
  return absl::NotFoundError(Cat("no snapshot named ", name));
}

absl::Status FakeCluster::DeleteSnapshot(const std::string& project, const std::string& uuid) {
  RETURN_IF_ERROR(Enter("DeleteSnapshot"));
  std::lock_guard<std::mutex> lock(mu_);
  if (P(project).snapshots.erase(uuid) == 0) return NoSnapshot(uuid);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Snapshot>> FakeCluster::ListSnapshots(const std::string& project,
                                                                 const std::string& source) {
  RETURN_IF_ERROR(Enter("ListSnapshots"));
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Snapshot> out;
  for (const auto& [u, s] : P(project).snapshots) {
    if (source.empty() || s.source_volume_uuid == source) out.push_back(s);
  }
  return out;
}

namespace {

class FakeClient final : public lightos::Client {
 public:
  FakeClient(std::shared_ptr<FakeCluster> c, std::string project, absl::Status auth)
      : c_(std::move(c)), project_(std::move(project)), auth_(std::move(auth)) {}
  using O = lightos::CallOptions;

  absl::Status CheckVersion(const O&) override { return auth_; }
  absl::StatusOr<lightos::ClusterInfo> GetClusterInfo(const O&) override {
    RETURN_IF_ERROR(auth_);
    RETURN_IF_ERROR(c_->Enter("GetClusterInfo"));
    return c_->info;
  }
  absl::StatusOr<Volume> CreateVolume(const lightos::CreateVolumeSpec& s, const O&) override {
    RETURN_IF_ERROR(auth_);
    return c_->CreateVolume(project_, s);
  }
  absl::StatusOr<Volume> GetVolume(const std::string& u, const O&) override {
    RETURN_IF_ERROR(auth_);
    return c_->GetVolume(project_, u);
  }
  absl::StatusOr<Volume> GetVolumeByName(const std::string& n, const O&) override {
    RETURN_IF_ERROR(auth_);
    return c_->GetVolumeByName(project_, n);
  }
  absl::Status DeleteVolume(const std::string& u, const O&) override {
    RETURN_IF_ERROR(auth_);
    return c_->DeleteVolume(project_, u);
  }
  absl::StatusOr<std::vector<Volume>> ListVolumes(const lightos::Page&, const O&) override {
    RETURN_IF_ERROR(auth_);
    return c_->ListVolumes(project_);
  }
  absl::StatusOr<Volume> UpdateVolumeAccess(const std::string& u, const lightos::AccessMutator& m,
                                            const O&) override {
    RETURN_IF_ERROR(auth_);
    return c_->UpdateVolumeAccess(project_, u, m);
  }
  absl::StatusOr<Volume> ResizeVolume(const std::string& u, uint64_t s, const O&) override {
    RETURN_IF_ERROR(auth_);
    return c_->ResizeVolume(project_, u, s);
  }
  absl::StatusOr<Volume> SetQosPolicy(const std::string& u, const std::string& p,
                                      const O&) override {
    RETURN_IF_ERROR(auth_);
    return c_->SetQosPolicy(project_, u, p);
  }
  absl::StatusOr<Snapshot> CreateSnapshot(const std::string& n, const std::string& v,
                                          const O&) override {
    RETURN_IF_ERROR(auth_);
    return c_->CreateSnapshot(project_, n, v);
  }
  absl::StatusOr<Snapshot> GetSnapshot(const std::string& u, const O&) override {
    RETURN_IF_ERROR(auth_);
    return c_->GetSnapshot(project_, u);
  }
  absl::StatusOr<Snapshot> GetSnapshotByName(const std::string& n, const O&) override {
    RETURN_IF_ERROR(auth_);
    return c_->GetSnapshotByName(project_, n);
  }
  absl::Status DeleteSnapshot(const std::string& u, const O&) override {
    RETURN_IF_ERROR(auth_);
    return c_->DeleteSnapshot(project_, u);
  }
  absl::StatusOr<std::vector<Snapshot>> ListSnapshots(const lightos::Page&, const std::string& v,
                                                      const O&) override {
    RETURN_IF_ERROR(auth_);
    return c_->ListSnapshots(project_, v);
  }

 private:
  std::shared_ptr<FakeCluster> c_;
  std::string project_;
  absl::Status auth_;
};

}  // namespace

void FakeFactory::AddCluster(const std::string& endpoints_csv,
                             std::shared_ptr<FakeCluster> cluster) {
  std::lock_guard<std::mutex> lock(mu_);
  clusters_[endpoints_csv] = std::move(cluster);
}

absl::StatusOr<std::shared_ptr<lightos::Client>> FakeFactory::GetClient(
    const lightos::ClusterTarget& target, const lightos::TokenSource& token) {
  std::lock_guard<std::mutex> lock(mu_);
  last_token = token;
  auto it = clusters_.find(JoinEndpoints(target.endpoints));
  if (it == clusters_.end()) {
    return absl::UnavailableError(Cat("no cluster answers at ", JoinEndpoints(target.endpoints)));
  }
  std::string presented =
      token.inline_token.empty() ? Cat("file:", token.token_file) : token.inline_token;
  absl::Status auth =
      std::find(accepted_tokens.begin(), accepted_tokens.end(), presented) != accepted_tokens.end()
          ? absl::OkStatus()
          : absl::UnauthenticatedError("LightOS rejected the token");
  return std::shared_ptr<lightos::Client>(
      std::make_shared<FakeClient>(it->second, target.project, auth));
}

}  // namespace lbcsi::testing
