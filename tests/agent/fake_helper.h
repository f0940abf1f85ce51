#pragma once
// An in-memory NodeHelper: disks (what each LightOS volume holds), attached
// volumes and mounts, with the real helper's refusals (format without proof,
// mount of a missing filesystem, detach while in use). Tests can stall or fail
// any call and read the call log.

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <absl/time/time.h>

#include "lbcsi/helper/v1/helper.grpc.pb.h"

namespace lbcsi::agent::testing {

namespace hv1 = ::lbcsi::helper::v1;

struct FakeDisk {
  hv1::ContentKind kind = hv1::CONTENT_KIND_BLANK;
  std::string type;  // fs type or other signature
  uint64_t size = 1ull << 30;
  uint64_t fs_size = 0;
  bool gone = false;  // device vanished: attach fails, stats abnormal
  bool format_in_progress = false;
  // Host encryption: a LUKS2 header opened by this passphrase (kind CRYPTO,
  // type "crypto_LUKS"); `inner` is what the decrypted device holds.
  std::string luks_passphrase;
  hv1::ContentKind inner_kind = hv1::CONTENT_KIND_BLANK;
  std::string inner_type;
};

struct FakeMount {
  std::string uuid;
  std::string fs;
  bool read_only = false;
  bool publish = false;
  bool block = false;
  std::string selinux;
  std::vector<int> options;
};

class FakeHelper final : public hv1::NodeHelper::Service {
 public:
  explicit FakeHelper(std::string host_nqn) : host_nqn_(std::move(host_nqn)) {}

  // ---- test controls (all thread-safe)
  void AddDisk(const std::string& uuid, FakeDisk disk);
  FakeDisk Disk(const std::string& uuid);
  void SetDisk(const std::string& uuid, const FakeDisk& disk);
  void RemoveDisk(const std::string& uuid);
  void StallAttach(const std::string& uuid, absl::Duration d);
  void FailNext(const std::string& method, grpc::Status status);
  void SetDown(bool down) { down_ = down; }
  // PrepareSocketDir answers with `path` for `dir`; unset dirs are "not configured".
  void SetPreparedDir(hv1::SocketDir dir, const std::string& path);
  std::vector<std::string> Calls();
  int CountCalls(const std::string& method);
  void ClearCalls();
  std::set<std::string> Attached();
  std::map<std::string, FakeMount> Mounts();
  std::vector<hv1::FormatRequest> Formats();
  std::vector<hv1::MountRequest> MountRequests();
  std::vector<hv1::PublishRequest> PublishRequests();
  std::vector<std::string> RemovedDirs();  // Unmount calls with remove_staging_path
  std::set<std::string> OpenMappings();
  std::vector<hv1::ExpandFilesystemRequest> ExpandRequests();
  std::vector<hv1::StatsRequest> StatsRequests();
  int MaxConcurrentAttaches() const { return max_concurrent_attach_; }

  // ---- service
  grpc::Status GetInfo(grpc::ServerContext*, const hv1::GetInfoRequest*,
                       hv1::GetInfoResponse*) override;
  grpc::Status PrepareSocketDir(grpc::ServerContext*, const hv1::PrepareSocketDirRequest*,
                                hv1::PrepareSocketDirResponse*) override;
  grpc::Status Attach(grpc::ServerContext*, const hv1::AttachRequest*,
                      hv1::AttachResponse*) override;
  grpc::Status Detach(grpc::ServerContext*, const hv1::DetachRequest*,
                      hv1::DetachResponse*) override;
  grpc::Status Probe(grpc::ServerContext*, const hv1::ProbeRequest*, hv1::ProbeResponse*) override;
  grpc::Status Format(grpc::ServerContext*, const hv1::FormatRequest*,
                      hv1::FormatResponse*) override;
  grpc::Status Mount(grpc::ServerContext*, const hv1::MountRequest*, hv1::MountResponse*) override;
  grpc::Status Unmount(grpc::ServerContext*, const hv1::UnmountRequest*,
                       hv1::UnmountResponse*) override;
  grpc::Status Publish(grpc::ServerContext*, const hv1::PublishRequest*,
                       hv1::PublishResponse*) override;
  grpc::Status Unpublish(grpc::ServerContext*, const hv1::UnpublishRequest*,
                         hv1::UnpublishResponse*) override;
  grpc::Status ExpandFilesystem(grpc::ServerContext*, const hv1::ExpandFilesystemRequest*,
                                hv1::ExpandFilesystemResponse*) override;
  grpc::Status Stats(grpc::ServerContext*, const hv1::StatsRequest*, hv1::StatsResponse*) override;
  grpc::Status Inventory(grpc::ServerContext*, const hv1::InventoryRequest*,
                         hv1::InventoryResponse*) override;
  // Host encryption (fake_helper_encryption.cc): the real helper's refusals
  // (rule 1, wrong passphrase, close while mounted, detach while open) and its
  // passphrase validation (INVALID_ARGUMENT when missing or over 512 bytes).
  grpc::Status FormatEncrypted(grpc::ServerContext*, const hv1::FormatEncryptedRequest*,
                               hv1::FormatEncryptedResponse*) override;
  grpc::Status OpenEncrypted(grpc::ServerContext*, const hv1::OpenEncryptedRequest*,
                             hv1::OpenEncryptedResponse*) override;
  grpc::Status CloseEncrypted(grpc::ServerContext*, const hv1::CloseEncryptedRequest*,
                              hv1::CloseEncryptedResponse*) override;

 private:
  // Logs the call and returns an injected failure, if any. Needs mu_ held.
  bool Begin(const std::string& method, const std::string& arg, grpc::Status* injected);

  const std::string host_nqn_;
  std::atomic<bool> down_{false};
  std::mutex mu_;
  std::map<std::string, FakeDisk> disks_;
  std::map<int, std::string> prepared_dirs_;
  std::set<std::string> attached_;
  std::map<std::string, FakeMount> mounts_;
  std::vector<std::string> calls_;
  std::map<std::string, absl::Duration> stalls_;
  std::map<std::string, grpc::Status> fail_next_;
  std::vector<hv1::FormatRequest> formats_;
  std::vector<hv1::MountRequest> mount_reqs_;
  std::vector<hv1::PublishRequest> publish_reqs_;
  std::vector<std::string> removed_dirs_;
  std::set<std::string> open_;  // volumes whose LUKS mapping is open
  std::vector<hv1::ExpandFilesystemRequest> expand_reqs_;
  std::vector<hv1::StatsRequest> stats_reqs_;
  std::atomic<int> concurrent_attach_{0};
  std::atomic<int> max_concurrent_attach_{0};
};

}  // namespace lbcsi::agent::testing
