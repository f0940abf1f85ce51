#include "tests/agent/fake_helper.h"

#include <thread>

namespace lbcsi::agent::testing {
namespace {

grpc::Status Err(grpc::StatusCode code, const std::string& msg) {
  return grpc::Status(code, msg);
}

std::string FsName(hv1::FsType t) {
  switch (t) {
    case hv1::FS_TYPE_EXT4: return "ext4";
    case hv1::FS_TYPE_XFS: return "xfs";
    default: return "";
  }
}

}  // namespace

void FakeHelper::AddDisk(const std::string& uuid, FakeDisk disk) {
  std::lock_guard<std::mutex> l(mu_);
  disks_[uuid] = disk;
}
FakeDisk FakeHelper::Disk(const std::string& uuid) {
  std::lock_guard<std::mutex> l(mu_);
  return disks_[uuid];
}
void FakeHelper::SetDisk(const std::string& uuid, const FakeDisk& disk) {
  std::lock_guard<std::mutex> l(mu_);
  disks_[uuid] = disk;
}
void FakeHelper::RemoveDisk(const std::string& uuid) {
  std::lock_guard<std::mutex> l(mu_);
  disks_.erase(uuid);
}
void FakeHelper::StallAttach(const std::string& uuid, absl::Duration d) {
  std::lock_guard<std::mutex> l(mu_);
  stalls_[uuid] = d;
}
void FakeHelper::FailNext(const std::string& method, grpc::Status status) {
  std::lock_guard<std::mutex> l(mu_);
  fail_next_[method] = status;
}
std::vector<std::string> FakeHelper::Calls() {
  std::lock_guard<std::mutex> l(mu_);
  return calls_;
}
int FakeHelper::CountCalls(const std::string& method) {
  std::lock_guard<std::mutex> l(mu_);
  int n = 0;
  for (const auto& c : calls_) n += c.rfind(method + " ", 0) == 0 || c == method;
  return n;
}
void FakeHelper::ClearCalls() {
  std::lock_guard<std::mutex> l(mu_);
  calls_.clear();
}
std::set<std::string> FakeHelper::Attached() {
  std::lock_guard<std::mutex> l(mu_);
  return attached_;
}
std::map<std::string, FakeMount> FakeHelper::Mounts() {
  std::lock_guard<std::mutex> l(mu_);
  return mounts_;
}
std::vector<hv1::FormatRequest> FakeHelper::Formats() {
  std::lock_guard<std::mutex> l(mu_);
  return formats_;
}
std::vector<hv1::MountRequest> FakeHelper::MountRequests() {
  std::lock_guard<std::mutex> l(mu_);
  return mount_reqs_;
}
std::set<std::string> FakeHelper::OpenMappings() {
  std::lock_guard<std::mutex> l(mu_);
  return open_;
}
std::vector<hv1::ExpandFilesystemRequest> FakeHelper::ExpandRequests() {
  std::lock_guard<std::mutex> l(mu_);
  return expand_reqs_;
}
std::vector<hv1::StatsRequest> FakeHelper::StatsRequests() {
  std::lock_guard<std::mutex> l(mu_);
  return stats_reqs_;
}
std::vector<std::string> FakeHelper::RemovedDirs() {
  std::lock_guard<std::mutex> l(mu_);
  return removed_dirs_;
}
std::vector<hv1::PublishRequest> FakeHelper::PublishRequests() {
  std::lock_guard<std::mutex> l(mu_);
  return publish_reqs_;
}

bool FakeHelper::Begin(const std::string& method, const std::string& arg, grpc::Status* injected) {
  calls_.push_back(arg.empty() ? method : method + " " + arg);
  auto it = fail_next_.find(method);
  if (it == fail_next_.end()) return false;
  *injected = it->second;
  fail_next_.erase(it);
  return true;
}

grpc::Status FakeHelper::GetInfo(grpc::ServerContext*, const hv1::GetInfoRequest*,
                                 hv1::GetInfoResponse* resp) {
  if (down_) return Err(grpc::StatusCode::UNAVAILABLE, "helper down");
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("GetInfo", "", &inj)) return inj;
  resp->set_host_nqn(host_nqn_);
  resp->set_version("fake");
  resp->set_development_transport(true);
  return grpc::Status::OK;
}

void FakeHelper::SetPreparedDir(hv1::SocketDir dir, const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  prepared_dirs_[dir] = path;
}

grpc::Status FakeHelper::PrepareSocketDir(grpc::ServerContext*,
                                          const hv1::PrepareSocketDirRequest* req,
                                          hv1::PrepareSocketDirResponse* resp) {
  if (down_) return Err(grpc::StatusCode::UNAVAILABLE, "helper down");
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("PrepareSocketDir", hv1::SocketDir_Name(req->dir()), &inj)) return inj;
  auto it = prepared_dirs_.find(req->dir());
  if (it == prepared_dirs_.end()) {
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "this socket directory is not configured");
  }
  resp->set_path(it->second);
  return grpc::Status::OK;
}

grpc::Status FakeHelper::Attach(grpc::ServerContext*, const hv1::AttachRequest* req,
                                hv1::AttachResponse* resp) {
  absl::Duration stall;
  {
    std::lock_guard<std::mutex> l(mu_);
    grpc::Status inj;
    if (Begin("Attach", req->volume_uuid(), &inj)) return inj;
    if (req->subsystem_nqn().empty()) return Err(grpc::StatusCode::INVALID_ARGUMENT, "no nqn");
    if (req->nvme_endpoints().empty() && req->discovery_endpoints().empty()) {
      return Err(grpc::StatusCode::INVALID_ARGUMENT, "no endpoints");
    }
    auto s = stalls_.find(req->volume_uuid());
    stall = s == stalls_.end() ? absl::ZeroDuration() : s->second;
  }
  int now = ++concurrent_attach_;
  int prev = max_concurrent_attach_.load();
  while (now > prev && !max_concurrent_attach_.compare_exchange_weak(prev, now)) {
  }
  if (stall > absl::ZeroDuration()) absl::SleepFor(stall);
  --concurrent_attach_;
  std::lock_guard<std::mutex> l(mu_);
  auto it = disks_.find(req->volume_uuid());
  if (it == disks_.end() || it->second.gone) {
    return Err(grpc::StatusCode::NOT_FOUND, "namespace never appeared");
  }
  attached_.insert(req->volume_uuid());
  resp->set_device_name("loop7");
  resp->set_size_bytes(it->second.size);
  resp->set_paths_total(1);
  resp->set_paths_live(1);
  return grpc::Status::OK;
}

grpc::Status FakeHelper::Detach(grpc::ServerContext*, const hv1::DetachRequest* req,
                                hv1::DetachResponse* resp) {
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("Detach", req->volume_uuid(), &inj)) return inj;
  for (const auto& [path, m] : mounts_) {
    if (m.uuid == req->volume_uuid()) {
      return Err(grpc::StatusCode::FAILED_PRECONDITION, "volume in use at " + path);
    }
  }
  if (open_.count(req->volume_uuid())) {
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "volume in use: held by dm-0");
  }
  resp->set_was_attached(attached_.erase(req->volume_uuid()) > 0);
  return grpc::Status::OK;
}

grpc::Status FakeHelper::Probe(grpc::ServerContext*, const hv1::ProbeRequest* req,
                               hv1::ProbeResponse* resp) {
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("Probe", req->volume_uuid(), &inj)) return inj;
  if (!attached_.count(req->volume_uuid()))
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "not attached");
  const FakeDisk& d = disks_[req->volume_uuid()];
  if (req->encrypted()) {
    if (!open_.count(req->volume_uuid()))
      return Err(grpc::StatusCode::FAILED_PRECONDITION, "not open");
    resp->set_kind(d.inner_kind);
    resp->set_type(d.inner_type);
    resp->set_size_bytes(d.size - (16 << 20));
    return grpc::Status::OK;
  }
  resp->set_kind(d.kind);
  resp->set_type(d.type);
  resp->set_size_bytes(d.size);
  resp->set_format_in_progress(d.format_in_progress);
  return grpc::Status::OK;
}

grpc::Status FakeHelper::Format(grpc::ServerContext*, const hv1::FormatRequest* req,
                                hv1::FormatResponse* resp) {
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("Format", req->volume_uuid(), &inj)) return inj;
  formats_.push_back(*req);
  if (!attached_.count(req->volume_uuid()))
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "not attached");
  if (req->proof() == hv1::NEVER_WRITTEN_PROOF_UNSPECIFIED) {
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "no proof");
  }
  FakeDisk& d = disks_[req->volume_uuid()];
  std::string fs = FsName(req->fs_type());
  if (req->encrypted()) {
    if (!open_.count(req->volume_uuid()))
      return Err(grpc::StatusCode::FAILED_PRECONDITION, "not open");
    if (d.inner_kind == hv1::CONTENT_KIND_FILESYSTEM && d.inner_type == fs) return grpc::Status::OK;
    if (d.inner_kind != hv1::CONTENT_KIND_BLANK) {
      return Err(grpc::StatusCode::FAILED_PRECONDITION, "decrypted device not blank");
    }
    d.inner_kind = hv1::CONTENT_KIND_FILESYSTEM;
    d.inner_type = fs;
    d.fs_size = d.size - (16 << 20);
    resp->set_formatted(true);
    return grpc::Status::OK;
  }
  if (d.kind == hv1::CONTENT_KIND_FILESYSTEM && !d.format_in_progress) {
    if (d.type == fs) return grpc::Status::OK;  // formatted=false
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "holds another filesystem");
  }
  if (d.kind != hv1::CONTENT_KIND_BLANK && !d.format_in_progress) {
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "not blank");
  }
  d.kind = hv1::CONTENT_KIND_FILESYSTEM;
  d.type = fs;
  d.fs_size = d.size;
  d.format_in_progress = false;
  resp->set_formatted(true);
  return grpc::Status::OK;
}

grpc::Status FakeHelper::Mount(grpc::ServerContext*, const hv1::MountRequest* req,
                               hv1::MountResponse* resp) {
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("Mount", req->volume_uuid(), &inj)) return inj;
  mount_reqs_.push_back(*req);
  if (!attached_.count(req->volume_uuid()))
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "not attached");
  const FakeDisk& d = disks_[req->volume_uuid()];
  std::string fs = FsName(req->fs_type());
  if (req->encrypted() && !open_.count(req->volume_uuid())) {
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "not open");
  }
  if (req->encrypted() ? d.inner_kind != hv1::CONTENT_KIND_FILESYSTEM || d.inner_type != fs
                       : d.kind != hv1::CONTENT_KIND_FILESYSTEM || d.type != fs) {
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "no " + fs + " filesystem");
  }
  auto it = mounts_.find(req->staging_path());
  if (it != mounts_.end()) {
    if (it->second.uuid != req->volume_uuid()) {
      return Err(grpc::StatusCode::ALREADY_EXISTS, "another volume is mounted there");
    }
    resp->set_already_mounted(true);
    return grpc::Status::OK;
  }
  FakeMount m;
  m.uuid = req->volume_uuid();
  m.fs = fs;
  m.read_only = req->read_only();
  m.selinux = req->selinux_context();
  for (int o : req->options()) m.options.push_back(o);
  mounts_[req->staging_path()] = m;
  return grpc::Status::OK;
}

grpc::Status FakeHelper::Unmount(grpc::ServerContext*, const hv1::UnmountRequest* req,
                                 hv1::UnmountResponse* resp) {
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("Unmount", req->staging_path(), &inj)) return inj;
  resp->set_was_mounted(mounts_.erase(req->staging_path()) > 0);
  resp->set_staging_path_removed(req->remove_staging_path());
  if (req->remove_staging_path()) removed_dirs_.push_back(req->staging_path());
  return grpc::Status::OK;
}

grpc::Status FakeHelper::Publish(grpc::ServerContext*, const hv1::PublishRequest* req,
                                 hv1::PublishResponse* resp) {
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("Publish", req->volume_uuid(), &inj)) return inj;
  publish_reqs_.push_back(*req);
  FakeMount m;
  m.uuid = req->volume_uuid();
  m.publish = true;
  m.read_only = req->read_only();
  m.selinux = req->selinux_context();
  if (req->has_block_device()) {
    if (!attached_.count(req->volume_uuid()))
      return Err(grpc::StatusCode::FAILED_PRECONDITION, "not attached");
    if (req->encrypted() && !open_.count(req->volume_uuid()))
      return Err(grpc::StatusCode::FAILED_PRECONDITION, "not open");
    m.block = true;
  } else {
    auto src = mounts_.find(req->staging_path());
    if (src == mounts_.end() || src->second.uuid != req->volume_uuid()) {
      return Err(grpc::StatusCode::FAILED_PRECONDITION, "staging path not mounted");
    }
    m.fs = src->second.fs;
  }
  auto it = mounts_.find(req->target_path());
  if (it != mounts_.end()) {
    if (it->second.uuid != m.uuid) return Err(grpc::StatusCode::ALREADY_EXISTS, "busy target");
    resp->set_already_published(true);
    return grpc::Status::OK;
  }
  mounts_[req->target_path()] = m;
  return grpc::Status::OK;
}

grpc::Status FakeHelper::Unpublish(grpc::ServerContext*, const hv1::UnpublishRequest* req,
                                   hv1::UnpublishResponse* resp) {
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("Unpublish", req->target_path(), &inj)) return inj;
  bool was = mounts_.erase(req->target_path()) > 0;
  resp->set_was_mounted(was);
  resp->set_target_removed(true);
  return grpc::Status::OK;
}

grpc::Status FakeHelper::ExpandFilesystem(grpc::ServerContext*,
                                          const hv1::ExpandFilesystemRequest* req,
                                          hv1::ExpandFilesystemResponse* resp) {
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("ExpandFilesystem", req->volume_uuid(), &inj)) return inj;
  expand_reqs_.push_back(*req);
  if (req->encrypted() && !open_.count(req->volume_uuid())) {
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "not open");
  }
  if (!attached_.count(req->volume_uuid())) return Err(grpc::StatusCode::NOT_FOUND, "not attached");
  FakeDisk& d = disks_[req->volume_uuid()];
  if (!req->mount_path().empty() && d.fs_size < d.size) {
    d.fs_size = d.size;
    resp->set_grown(true);
  }
  resp->set_device_size_bytes(d.size);
  resp->set_filesystem_size_bytes(req->mount_path().empty() ? 0 : d.fs_size);
  return grpc::Status::OK;
}

grpc::Status FakeHelper::Stats(grpc::ServerContext*, const hv1::StatsRequest* req,
                               hv1::StatsResponse* resp) {
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("Stats", req->volume_uuid(), &inj)) return inj;
  stats_reqs_.push_back(*req);
  auto it = mounts_.find(req->path());
  const FakeDisk& d = disks_[req->volume_uuid()];
  bool block = it != mounts_.end() ? it->second.block : false;
  if (it == mounts_.end() && !attached_.count(req->volume_uuid())) {
    return Err(grpc::StatusCode::NOT_FOUND, "nothing at path");
  }
  if (it == mounts_.end()) block = true;  // a block stage path: the device itself
  resp->set_is_block(block);
  if (block) {
    resp->set_total_bytes(d.size);
  } else {
    resp->set_total_bytes(d.fs_size);
    resp->set_used_bytes(d.fs_size / 4);
    resp->set_available_bytes(d.fs_size - d.fs_size / 4);
    resp->set_total_inodes(1000);
    resp->set_used_inodes(10);
    resp->set_free_inodes(990);
  }
  if (d.gone) {
    resp->mutable_condition()->set_abnormal(true);
    resp->mutable_condition()->set_message("device gone");
  }
  return grpc::Status::OK;
}

grpc::Status FakeHelper::Inventory(grpc::ServerContext*, const hv1::InventoryRequest*,
                                   hv1::InventoryResponse* resp) {
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("Inventory", "", &inj)) return inj;
  for (const auto& uuid : attached_) {
    auto* a = resp->add_attached();
    a->set_volume_uuid(uuid);
    a->set_size_bytes(disks_[uuid].size);
    a->set_encrypted_open(open_.count(uuid) > 0);
  }
  for (const auto& [path, m] : mounts_) {
    auto* mp = resp->add_mounts();
    mp->set_path(path);
    mp->set_volume_uuid(m.uuid);
    mp->set_fs_type(m.fs);
    mp->set_read_only(m.read_only);
  }
  return grpc::Status::OK;
}

}  // namespace lbcsi::agent::testing
