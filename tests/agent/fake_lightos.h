#pragma once
// A LightOS client for the agent's ephemeral and fallback paths: volumes in a
// map, names unique, new volumes appear as blank disks in the fake helper.

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "lightos/client.h"
#include "tests/agent/fake_helper.h"

namespace lbcsi::agent::testing {

inline constexpr char kSubsysNqn[] = "nqn.2016-01.com.lightbitslabs:uuid:0b7d1c24-test";

class FakeLightos final : public lightos::Client, public lightos::ClientFactory {
 public:
  explicit FakeLightos(FakeHelper* helper) : helper_(helper) {}

  std::mutex mu;
  std::map<std::string, lightos::Volume> volumes;  // by uuid
  std::vector<lightos::TokenSource> tokens_seen;
  std::vector<lightos::ClusterTarget> targets_seen;
  absl::Status fail_all;  // when not OK, every call returns it
  int creates = 0;
  int deletes = 0;

  absl::StatusOr<std::shared_ptr<lightos::Client>> GetClient(
      const lightos::ClusterTarget& t, const lightos::TokenSource& tok) override {
    std::lock_guard<std::mutex> l(mu);
    tokens_seen.push_back(tok);
    targets_seen.push_back(t);
    return std::shared_ptr<lightos::Client>(this, [](lightos::Client*) {});
  }

  absl::Status CheckVersion(const lightos::CallOptions&) override { return absl::OkStatus(); }
  absl::StatusOr<lightos::ClusterInfo> GetClusterInfo(const lightos::CallOptions&) override {
    std::lock_guard<std::mutex> l(mu);
    if (!fail_all.ok()) return fail_all;
    lightos::ClusterInfo info;
    info.subsystem_nqn = kSubsysNqn;
    info.nvme_endpoints = {"127.0.0.1:4420", "127.0.0.2:4420"};
    info.discovery_endpoints = {"127.0.0.1:8009"};
    return info;
  }
  absl::StatusOr<lightos::Volume> CreateVolume(const lightos::CreateVolumeSpec& spec,
                                               const lightos::CallOptions&) override {
    std::lock_guard<std::mutex> l(mu);
    if (!fail_all.ok()) return fail_all;
    for (const auto& [u, v] : volumes) {
      if (v.name == spec.name) return absl::AlreadyExistsError("name taken");
    }
    ++creates;
    lightos::Volume v;
    char buf[64];
    std::snprintf(buf, sizeof(buf), "6a1b2c3d-0000-4000-8000-%012d", 100 + creates);
    v.uuid = buf;
    v.name = spec.name;
    v.size_bytes = spec.size_bytes;
    v.replica_count = spec.replica_count;
    v.compression = spec.compression;
    v.acl = spec.acl;
    v.labels = spec.labels;
    v.state = lightos::VolumeState::kAvailable;
    volumes[v.uuid] = v;
    FakeDisk d;
    d.size = spec.size_bytes;
    helper_->AddDisk(v.uuid, d);
    return v;
  }
  absl::StatusOr<lightos::Volume> GetVolume(const std::string& uuid,
                                            const lightos::CallOptions&) override {
    std::lock_guard<std::mutex> l(mu);
    if (!fail_all.ok()) return fail_all;
    auto it = volumes.find(uuid);
    if (it == volumes.end()) return absl::NotFoundError("no such volume");
    return it->second;
  }
  absl::StatusOr<lightos::Volume> GetVolumeByName(const std::string& name,
                                                  const lightos::CallOptions&) override {
    std::lock_guard<std::mutex> l(mu);
    if (!fail_all.ok()) return fail_all;
    for (const auto& [u, v] : volumes) {
      if (v.name == name) return v;
    }
    return absl::NotFoundError("no such name");
  }
  absl::Status DeleteVolume(const std::string& uuid, const lightos::CallOptions&) override {
    std::lock_guard<std::mutex> l(mu);
    if (!fail_all.ok()) return fail_all;
    if (volumes.erase(uuid) == 0) return absl::NotFoundError("no such volume");
    ++deletes;
    helper_->RemoveDisk(uuid);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<lightos::Volume>> ListVolumes(const lightos::Page&,
                                                           const lightos::CallOptions&) override {
    std::lock_guard<std::mutex> l(mu);
    std::vector<lightos::Volume> out;
    for (const auto& [u, v] : volumes) out.push_back(v);
    return out;
  }
  absl::StatusOr<lightos::Volume> UpdateVolumeAccess(const std::string&,
                                                     const lightos::AccessMutator&,
                                                     const lightos::CallOptions&) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<lightos::Volume> ResizeVolume(const std::string&, uint64_t,
                                               const lightos::CallOptions&) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<lightos::Volume> SetQosPolicy(const std::string&, const std::string&,
                                               const lightos::CallOptions&) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<lightos::Snapshot> CreateSnapshot(const std::string&, const std::string&,
                                                   const lightos::CallOptions&) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<lightos::Snapshot> GetSnapshot(const std::string&,
                                                const lightos::CallOptions&) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<lightos::Snapshot> GetSnapshotByName(const std::string&,
                                                      const lightos::CallOptions&) override {
    return absl::UnimplementedError("fake");
  }
  absl::Status DeleteSnapshot(const std::string&, const lightos::CallOptions&) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<std::vector<lightos::Snapshot>> ListSnapshots(
      const lightos::Page&, const std::string&, const lightos::CallOptions&) override {
    return absl::UnimplementedError("fake");
  }

 private:
  FakeHelper* helper_;
};

}  // namespace lbcsi::agent::testing
