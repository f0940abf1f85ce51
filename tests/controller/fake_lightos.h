#pragma once
// An in-memory LightOS for the controller's unit tests: names unique per
// project, ETags bumped on every change (the ACL loop re-reads on a stale one),
// ACL lists, sizes rounded up to 4 KiB, snapshots, written bytes and states,
// plus hooks to inject faults and to change things behind the controller's back.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lightos/client.h"

namespace lbcsi::testing {

class FakeCluster {
 public:
  FakeCluster();

  // Returns a non-OK status to fail the named operation ("CreateVolume", ...).
  std::function<absl::Status(const std::string& op)> fault;
  // Called inside UpdateVolumeAccess between the read and the write (race injection).
  std::function<void()> before_acl_commit;
  // State new volumes end in (kAvailable by default).
  lightos::VolumeState create_state = lightos::VolumeState::kAvailable;

  lightos::ClusterInfo info;
  std::vector<std::string> qos_policies = {"gold", "silver"};

  // Direct access for tests (project "" is the default project).
  std::vector<lightos::Volume> Volumes(const std::string& project = "") const;
  std::vector<lightos::Snapshot> Snapshots(const std::string& project = "") const;
  bool MutateVolume(const std::string& uuid, const std::function<void(lightos::Volume&)>& f);
  bool MutateSnapshot(const std::string& uuid, const std::function<void(lightos::Snapshot&)>& f);
  int Calls(const std::string& op) const;

  // The operations the fake client forwards to (project-scoped).
  absl::StatusOr<lightos::Volume> CreateVolume(const std::string& project,
                                               const lightos::CreateVolumeSpec& spec);
  absl::StatusOr<lightos::Volume> GetVolume(const std::string& project, const std::string& uuid);
  absl::StatusOr<lightos::Volume> GetVolumeByName(const std::string& project,
                                                  const std::string& name);
  absl::Status DeleteVolume(const std::string& project, const std::string& uuid);
  absl::StatusOr<std::vector<lightos::Volume>> ListVolumes(const std::string& project);
  absl::StatusOr<lightos::Volume> UpdateVolumeAccess(const std::string& project,
                                                     const std::string& uuid,
                                                     const lightos::AccessMutator& mutate);
  absl::StatusOr<lightos::Volume> ResizeVolume(const std::string& project, const std::string& uuid,
                                               uint64_t size);
  absl::StatusOr<lightos::Volume> SetQosPolicy(const std::string& project, const std::string& uuid,
                                               const std::string& policy);
  absl::StatusOr<lightos::Snapshot> CreateSnapshot(const std::string& project,
                                                   const std::string& name,
                                                   const std::string& source);
  absl::StatusOr<lightos::Snapshot> GetSnapshot(const std::string& project,
                                                const std::string& uuid);
  absl::StatusOr<lightos::Snapshot> GetSnapshotByName(const std::string& project,
                                                      const std::string& name);
  absl::Status DeleteSnapshot(const std::string& project, const std::string& uuid);
  absl::StatusOr<std::vector<lightos::Snapshot>> ListSnapshots(const std::string& project,
                                                               const std::string& source);
  absl::Status Enter(const std::string& op);  // counts the call, applies `fault`

 private:
  struct Project {
    std::map<std::string, lightos::Volume> volumes;
    std::map<std::string, lightos::Snapshot> snapshots;
  };
  Project& P(const std::string& project) { return projects_[project]; }
  std::string NewUuid();
  std::string NewEtag();

  mutable std::mutex mu_;
  std::map<std::string, Project> projects_;
  std::map<std::string, int> calls_;
  uint64_t next_ = 1;
};

// Hands out clients of the cluster registered under the target's endpoints.
// Tokens: a call is UNAUTHENTICATED unless the inline token (or, when none,
// the token file's path) is in `accepted_tokens`.
class FakeFactory final : public lightos::ClientFactory {
 public:
  void AddCluster(const std::string& endpoints_csv, std::shared_ptr<FakeCluster> cluster);
  absl::StatusOr<std::shared_ptr<lightos::Client>> GetClient(
      const lightos::ClusterTarget& target, const lightos::TokenSource& token) override;
  std::vector<std::string> accepted_tokens = {"good-token", "file:/etc/lb-csi/jwt"};
  lightos::TokenSource last_token;

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<FakeCluster>> clusters_;
};

}  // namespace lbcsi::testing
