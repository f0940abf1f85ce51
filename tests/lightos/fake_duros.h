#pragma once
// An in-process DurosAPI server for the client's unit tests and benchmark:
// in-memory volumes and snapshots with scripted behaviour (how many reads a
// volume stays Creating/Deleting, injected errors, stalls, ETag checks), and
// a record of the metadata each call carried.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "lightbits/api/duros/v2/durosapi.grpc.pb.h"

namespace lbcsi::lightos::testing {

namespace pb = ::lightbits::api::duros::v2;

class FakeDuros final : public pb::DurosAPI::Service {
 public:
  struct Fault {
    grpc::StatusCode code = grpc::StatusCode::OK;
    std::string message;
    int times = -1;  // -1: every call
  };

  // --- scripting (set before or between calls; guarded by mu) ---
  std::mutex mu;
  std::string api_version = "v2.0";
  std::string required_token;                    // empty: any or none accepted
  int creating_reads = 0;                        // GetVolume reads a new volume stays Creating
  int deleting_reads = 0;                        // reads a deleted volume stays Deleting
  bool create_fails = false;                     // new volumes end in Failed instead of Available
  std::map<std::string, Fault> faults;           // by RPC name
  std::map<std::string, int> calls;              // by RPC name
  std::map<std::string, std::string> last_auth;  // by RPC name: authorization header
  std::vector<std::string> if_match_seen;        // UpdateVolume if-match values in order
  int etag_conflicts = 0;                        // UpdateVolume refused for a stale ETag
  std::function<void(const std::string& rpc)> hook;   // runs (unlocked) at the start of each RPC
  std::function<void(const std::string& rpc)> after;  // runs (unlocked) once the reply is ready
  std::atomic<bool> stall{false};                     // handlers block while set
  std::atomic<int> stalled_now{0};
  std::map<std::string, pb::Volume> volumes;      // by UUID
  std::map<std::string, pb::Snapshot> snapshots;  // by UUID
  std::map<std::string, int> pending_reads;       // UUID -> reads left in a transient state
  uint64_t free_bytes = 1ull << 40;

  pb::Volume& AddVolume(const std::string& uuid, const std::string& name) {
    std::lock_guard<std::mutex> lock(mu);
    pb::Volume& v = volumes[uuid];
    v.set_uuid(uuid);
    v.set_name(name);
    v.set_state(pb::Volume::Available);
    v.set_protectionstate(pb::FullyProtected);
    v.set_size(1 << 30);
    v.mutable_acl()->add_values("ALLOW_NONE");
    v.set_etag("1");
    v.set_compression("false");
    return v;
  }

  grpc::Status GetVersion(grpc::ServerContext* ctx, const pb::GetVersionRequest*,
                          pb::Version* out) override {
    return Handle("GetVersion", ctx, [&] {
      out->set_apiversion(api_version);
      return grpc::Status::OK;
    });
  }

  grpc::Status GetClusterInfo(grpc::ServerContext* ctx, const pb::GetClusterRequest*,
                              pb::ClusterInfoV2* out) override {
    return Handle("GetClusterInfo", ctx, [&] {
      out->set_uuid("c0ffee00-0000-4000-8000-000000000001");
      out->set_subsystemnqn("nqn.2016-01.com.lightbitslabs:uuid:c0ffee");
      out->add_nvmeendpoints("10.0.0.1:4420");
      out->add_discoveryendpoints("10.0.0.1:8009");
      out->add_apiendpoints("10.0.0.1:443");
      out->set_currentmaxreplicas(3);
      out->set_clustername("fake");
      return grpc::Status::OK;
    });
  }

  grpc::Status GetCluster(grpc::ServerContext* ctx, const pb::GetClusterRequest*,
                          pb::ClusterInfo* out) override {
    return Handle("GetCluster", ctx, [&] {
      out->mutable_statistics()->set_estimatedfreelogicalstorage(free_bytes);
      return grpc::Status::OK;
    });
  }

  grpc::Status CreateVolume(grpc::ServerContext* ctx, const pb::CreateVolumeRequest* req,
                            pb::Volume* out) override {
    return Handle("CreateVolume", ctx, [&] {
      for (const auto& [id, v] : volumes) {
        if (v.name() == req->name() && v.projectname() == req->projectname()) {
          return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "volume name taken");
        }
      }
      std::string uuid = NewUuid();
      pb::Volume& v = volumes[uuid];
      v.set_uuid(uuid);
      v.set_name(req->name());
      v.set_projectname(req->projectname());
      v.set_size(ParseSize(req->size()));
      v.set_replicacount(req->replicacount());
      v.set_compression(req->compression());
      *v.mutable_acl() = req->acl();
      v.set_protectionstate(pb::FullyProtected);
      v.set_etag("1");
      v.set_sourcesnapshotuuid(req->sourcesnapshotuuid());
      *v.mutable_labels() = req->labels();
      if (creating_reads > 0) {
        v.set_state(pb::Volume::Creating);
        pending_reads[uuid] = creating_reads;
      } else {
        v.set_state(create_fails ? pb::Volume::Failed : pb::Volume::Available);
      }
      last_create = *req;
      *out = v;
      return grpc::Status::OK;
    });
  }

  grpc::Status GetVolume(grpc::ServerContext* ctx, const pb::GetVolumeRequest* req,
                         pb::Volume* out) override {
    return Handle("GetVolume", ctx, [&] {
      auto it = volumes.find(req->uuid());
      if (it == volumes.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such volume");
      pb::Volume& v = it->second;
      auto pending = pending_reads.find(req->uuid());
      if (pending != pending_reads.end() && --pending->second < 0) {
        pending_reads.erase(pending);
        if (v.state() == pb::Volume::Deleting) {
          volumes.erase(it);
          return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such volume");
        }
        v.set_state(create_fails ? pb::Volume::Failed : pb::Volume::Available);
      }
      *out = v;
      return grpc::Status::OK;
    });
  }

  grpc::Status ListVolumes(grpc::ServerContext* ctx, const pb::ListVolumeRequest* req,
                           pb::ListVolumesResponse* out) override {
    return Handle("ListVolumes", ctx, [&] {
      for (const auto& [id, v] : volumes) {
        if (!req->name().empty() && v.name() != req->name()) continue;
        *out->add_volumes() = v;
      }
      return grpc::Status::OK;
    });
  }

  grpc::Status UpdateVolume(grpc::ServerContext* ctx, const pb::UpdateVolumeRequest* req,
                            pb::UpdateVolumeResponse*) override {
    return Handle("UpdateVolume", ctx, [&] {
      auto it = volumes.find(req->uuid());
      if (it == volumes.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such volume");
      pb::Volume& v = it->second;
      std::string if_match = Header(ctx, "if-match");
      if_match_seen.push_back(if_match);
      if (!if_match.empty() && if_match != v.etag()) {
        ++etag_conflicts;
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "ETag mismatch");
      }
      if (req->has_acl()) *v.mutable_acl() = req->acl();
      if (!req->size().empty()) v.set_size(std::stoull(req->size()));
      if (req->has_qospolicyname()) v.set_qospolicyname(req->qospolicyname());
      last_update = *req;
      v.set_etag(std::to_string(std::stoull(v.etag()) + 1));
      return grpc::Status::OK;
    });
  }

  grpc::Status DeleteVolume(grpc::ServerContext* ctx, const pb::DeleteVolumeRequest* req,
                            pb::DeleteVolumeResponse*) override {
    return Handle("DeleteVolume", ctx, [&] {
      auto it = volumes.find(req->uuid());
      if (it == volumes.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such volume");
      if (deleting_reads > 0) {
        it->second.set_state(pb::Volume::Deleting);
        pending_reads[req->uuid()] = deleting_reads;
      } else {
        volumes.erase(it);
      }
      return grpc::Status::OK;
    });
  }

  grpc::Status CreateSnapshot(grpc::ServerContext* ctx, const pb::CreateSnapshotRequest* req,
                              pb::Snapshot* out) override {
    return Handle("CreateSnapshot", ctx, [&] {
      std::string uuid = NewUuid();
      pb::Snapshot& s = snapshots[uuid];
      s.set_uuid(uuid);
      s.set_name(req->name());
      s.set_sourcevolumeuuid(req->sourcevolumeuuid());
      s.set_projectname(req->projectname());
      s.set_state(pb::Snapshot::Available);
      *out = s;
      return grpc::Status::OK;
    });
  }

  grpc::Status GetSnapshot(grpc::ServerContext* ctx, const pb::GetSnapshotRequest* req,
                           pb::Snapshot* out) override {
    return Handle("GetSnapshot", ctx, [&] {
      auto it = snapshots.find(req->uuid());
      if (it == snapshots.end())
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such snapshot");
      *out = it->second;
      return grpc::Status::OK;
    });
  }

  grpc::Status DeleteSnapshot(grpc::ServerContext* ctx, const pb::DeleteSnapshotRequest* req,
                              pb::DeleteSnapshotResponse*) override {
    return Handle("DeleteSnapshot", ctx, [&] {
      if (snapshots.erase(req->uuid()) == 0) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such snapshot");
      }
      return grpc::Status::OK;
    });
  }

  grpc::Status ListSnapshots(grpc::ServerContext* ctx, const pb::ListSnapshotsRequest* req,
                             pb::ListSnapshotsResponse* out) override {
    return Handle("ListSnapshots", ctx, [&] {
      for (const auto& [id, s] : snapshots) {
        if (!req->name().empty() && s.name() != req->name()) continue;
        *out->add_snapshots() = s;
      }
      return grpc::Status::OK;
    });
  }

  int Calls(const std::string& rpc) {
    std::lock_guard<std::mutex> lock(mu);
    return calls[rpc];
  }

  pb::CreateVolumeRequest last_create;
  pb::UpdateVolumeRequest last_update;

 private:
  static std::string Header(grpc::ServerContext* ctx, const std::string& key) {
    const auto& md = ctx->client_metadata();
    auto it = md.find(key);
    if (it == md.end()) return "";
    return std::string(it->second.data(), it->second.size());
  }

  static uint64_t ParseSize(const std::string& s) {
    std::string digits = s;
    if (!digits.empty() && digits.back() == 'b') digits.pop_back();
    return digits.empty() ? 0 : std::stoull(digits);
  }

  std::string NewUuid() {
    char buf[40];
    std::snprintf(buf, sizeof(buf), "6bb3a1f0-0000-4000-8000-%012d", ++next_id_);
    return buf;
  }

  template <typename Fn>
  grpc::Status Handle(const std::string& rpc, grpc::ServerContext* ctx, Fn fn) {
    std::function<void(const std::string&)> h, a;
    {
      std::lock_guard<std::mutex> lock(mu);
      h = hook;
      a = after;
    }
    if (h) h(rpc);
    if (stall.load()) {
      ++stalled_now;
      while (stall.load() && !ctx->IsCancelled()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      --stalled_now;
      if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    grpc::Status status = Locked(rpc, ctx, fn);
    if (a) a(rpc);
    return status;
  }

  template <typename Fn>
  grpc::Status Locked(const std::string& rpc, grpc::ServerContext* ctx, Fn& fn) {
    std::lock_guard<std::mutex> lock(mu);
    ++calls[rpc];
    last_auth[rpc] = Header(ctx, "authorization");
    if (!required_token.empty() && last_auth[rpc] != "Bearer " + required_token) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "bad token: " + last_auth[rpc]);  // echoes it, as a careless server might
    }
    auto fault = faults.find(rpc);
    if (fault != faults.end() && fault->second.times != 0) {
      if (fault->second.times > 0) --fault->second.times;
      return grpc::Status(fault->second.code, fault->second.message);
    }
    return fn();
  }

  int next_id_ = 0;
};

// A FakeDuros listening on 127.0.0.1 (port chosen by the kernel).
class FakeServer {
 public:
  explicit FakeServer(std::shared_ptr<grpc::ServerCredentials> creds = nullptr)
      : service_(std::make_unique<FakeDuros>()) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", creds ? creds : grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
  }
  ~FakeServer() { Stop(); }

  void Stop() {
    if (!server_) return;
    // Stalled handlers notice the forced cancellation after the grace period.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    server_->Wait();
    server_.reset();
  }

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  FakeDuros& fake() { return *service_; }

 private:
  std::unique_ptr<FakeDuros> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace lbcsi::lightos::testing
