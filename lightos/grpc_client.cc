#include "lightos/grpc_client.h"

#include <algorithm>
#include <random>

#include "common/redact.h"
#include "common/status.h"
#include "common/strings.h"
#include "lightos/wire.h"

namespace lbcsi::lightos {
namespace {

constexpr char kApiVersion[] = "v2.0";

// Codes CSI callers act on pass through; anything else means the cluster broke.
absl::StatusCode MapCode(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::ABORTED: return static_cast<absl::StatusCode>(code);
    case grpc::StatusCode::CANCELLED:  // the server gave up on us: worth a retry
      return absl::StatusCode::kUnavailable;
    default: return absl::StatusCode::kInternal;
  }
}

// "not found" for NOT_FOUND: used when the server sent no message.
std::string CodeWords(grpc::StatusCode code) {
  std::string words = ToLower(absl::StatusCodeToString(static_cast<absl::StatusCode>(code)));
  std::replace(words.begin(), words.end(), '_', ' ');
  return words;
}

bool IsReady(VolumeState s) {
  return s == VolumeState::kAvailable || s == VolumeState::kUpdating ||
         s == VolumeState::kMigrating;
}

bool IsTransient(VolumeState s) {
  return s == VolumeState::kCreating || s == VolumeState::kUpdating ||
         s == VolumeState::kRollback || s == VolumeState::kMigrating;
}

// LightOS ACL rules: ALLOW_NONE stands alone and an empty list means ALLOW_NONE.
void NormalizeAcl(std::vector<std::string>& acl) {
  std::vector<std::string> out;
  for (auto& entry : acl) {
    if (std::find(out.begin(), out.end(), entry) == out.end()) out.push_back(std::move(entry));
  }
  if (out.size() > 1) std::erase(out, std::string(kAclAllowNone));
  if (out.empty()) out.push_back(kAclAllowNone);
  acl = std::move(out);
}

absl::Duration Jitter(absl::Duration d) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> dist(0.5, 1.5);
  return d * dist(rng);
}

}  // namespace

absl::StatusOr<std::shared_ptr<GrpcClient>> GrpcClient::Create(const ClusterTarget& target,
                                                               const TokenSource& token,
                                                               const GrpcClientOptions& options) {
  ASSIGN_OR_RETURN(auto connection,
                   Connection::Create(target.endpoints, target.scheme, options.connection));
  ASSIGN_OR_RETURN(auto provider, TokenProvider::Create(token));
  return std::make_shared<GrpcClient>(std::move(connection), target.project, std::move(provider),
                                      options);
}

GrpcClient::GrpcClient(std::shared_ptr<Connection> connection, std::string project,
                       std::shared_ptr<TokenProvider> token, GrpcClientOptions options)
    : connection_(std::move(connection)),
      project_(std::move(project)),
      token_(std::move(token)),
      options_(std::move(options)) {}

template <typename Req, typename Resp>
absl::Status GrpcClient::Rpc(std::string_view rpc, std::string_view object,
                             Method<Req, Resp> method, const Req& request, Resp* response,
                             absl::Time deadline, std::string_view if_match) {
  auto named = [&](absl::StatusCode code, std::string_view endpoint, std::string_view what) {
    return absl::Status(code, ScrubSecrets(Cat("LightOS ", endpoint, ": ", rpc,
                                               object.empty() ? "" : " ", object, ": ", what)));
  };
  auto token = token_->Token();
  if (!token.ok()) {
    return named(token.status().code(), connection_->EndpointList(),
                 StdView(token.status().message()));
  }
  if (absl::Now() >= deadline) {
    return named(absl::StatusCode::kDeadlineExceeded, connection_->LastGoodEndpoint(),
                 "deadline exceeded before the call");
  }
  std::vector<std::pair<std::string, std::string>> metadata;
  if (!token->empty()) metadata.emplace_back("authorization", Cat("Bearer ", *token));
  if (!if_match.empty()) metadata.emplace_back("if-match", std::string(if_match));

  auto outcome =
      connection_->Call(deadline, metadata, [&](DurosStub& stub, grpc::ClientContext& ctx) {
        response->Clear();
        return (stub.*method)(&ctx, request, response);
      });
  if (outcome.status.ok()) return absl::OkStatus();
  const auto& st = outcome.status;
  std::string what = st.error_message().empty() ? CodeWords(st.error_code()) : st.error_message();
  return named(MapCode(st.error_code()), outcome.endpoint, what);
}

bool GrpcClient::Backoff(absl::Duration* delay, absl::Time deadline) const {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return false;
  absl::SleepFor(std::min(*delay, left));
  *delay = std::min(*delay * options_.poll_multiplier, options_.poll_max);
  return absl::Now() < deadline;
}

absl::Status GrpcClient::Timeout(std::string_view what, std::string_view object) const {
  return absl::DeadlineExceededError(Cat("LightOS ", connection_->LastGoodEndpoint(), ": ", object,
                                         ": ", what, " at the deadline"));
}

absl::Status GrpcClient::CheckVersion(const CallOptions& opts) {
  pb::Version version;
  RETURN_IF_ERROR(Rpc("GetVersion", "", &DurosStub::GetVersion, pb::GetVersionRequest(), &version,
                      opts.deadline));
  if (version.apiversion() != kApiVersion) {
    return absl::FailedPreconditionError(
        Cat("LightOS ", connection_->LastGoodEndpoint(), ": management API version \"",
            version.apiversion(), "\" is not supported; this driver needs ", kApiVersion));
  }
  return absl::OkStatus();
}

absl::StatusOr<ClusterInfo> GrpcClient::GetClusterInfo(const CallOptions& opts) {
  pb::ClusterInfoV2 info;
  RETURN_IF_ERROR(Rpc("GetClusterInfo", "", &DurosStub::GetClusterInfo, pb::GetClusterRequest(),
                      &info, opts.deadline));
  pb::ClusterInfo cluster;
  RETURN_IF_ERROR(Rpc("GetCluster", "", &DurosStub::GetCluster, pb::GetClusterRequest(), &cluster,
                      opts.deadline));
  ClusterInfo out;
  out.uuid = info.uuid();
  out.name = info.clustername();
  out.subsystem_nqn = info.subsystemnqn();
  out.nvme_endpoints.assign(info.nvmeendpoints().begin(), info.nvmeendpoints().end());
  out.discovery_endpoints.assign(info.discoveryendpoints().begin(),
                                 info.discoveryendpoints().end());
  out.api_endpoints.assign(info.apiendpoints().begin(), info.apiendpoints().end());
  out.current_max_replicas = info.currentmaxreplicas();
  out.free_logical_bytes = cluster.statistics().estimatedfreelogicalstorage();
  return out;
}

absl::StatusOr<pb::Volume> GrpcClient::ReadVolume(const std::string& uuid, absl::Time deadline) {
  pb::GetVolumeRequest req;
  req.set_uuid(uuid);
  req.set_projectname(project_);
  pb::Volume volume;
  RETURN_IF_ERROR(Rpc("GetVolume", uuid, &DurosStub::GetVolume, req, &volume, deadline));
  return volume;
}

absl::StatusOr<pb::Snapshot> GrpcClient::ReadSnapshot(const std::string& uuid,
                                                      absl::Time deadline) {
  pb::GetSnapshotRequest req;
  req.set_uuid(uuid);
  req.set_projectname(project_);
  pb::Snapshot snapshot;
  RETURN_IF_ERROR(Rpc("GetSnapshot", uuid, &DurosStub::GetSnapshot, req, &snapshot, deadline));
  return snapshot;
}

absl::StatusOr<Volume> GrpcClient::AwaitVolumeReady(pb::Volume volume, absl::Time deadline) {
  const std::string uuid = volume.uuid();
  const std::string label = Cat("volume ", volume.name(), " (", uuid, ")");
  absl::Duration delay = options_.poll_initial;
  while (true) {
    VolumeState state = FromWire(volume.state());
    if (IsReady(state)) return FromWire(volume);
    if (state == VolumeState::kFailed) {
      return absl::InternalError(
          Cat("LightOS ", connection_->LastGoodEndpoint(), ": ", label, " ended in state Failed"));
    }
    if (state == VolumeState::kDeleting || state == VolumeState::kDeleted) {
      return absl::AbortedError(
          Cat("LightOS ", connection_->LastGoodEndpoint(), ": ", label, " is being deleted"));
    }
    if (!Backoff(&delay, deadline)) {
      return Timeout(Cat("still ", VolumeStateName(state)), label);
    }
    auto next = ReadVolume(uuid, deadline);
    if (absl::IsNotFound(next.status())) {
      return absl::AbortedError(Cat("LightOS ", connection_->LastGoodEndpoint(), ": ", label,
                                    " disappeared while being created"));
    }
    // The poll itself ran into the deadline: the state seen last is the useful answer.
    if (absl::IsDeadlineExceeded(next.status())) {
      return Timeout(Cat("still ", VolumeStateName(state)), label);
    }
    if (!next.ok()) return next.status();
    volume = *std::move(next);
  }
}

absl::StatusOr<Snapshot> GrpcClient::AwaitSnapshotReady(pb::Snapshot snapshot,
                                                        absl::Time deadline) {
  const std::string uuid = snapshot.uuid();
  const std::string label = Cat("snapshot ", snapshot.name(), " (", uuid, ")");
  absl::Duration delay = options_.poll_initial;
  while (true) {
    SnapshotState state = FromWire(snapshot.state());
    if (state == SnapshotState::kAvailable) return FromWire(snapshot);
    if (state == SnapshotState::kFailed) {
      return absl::InternalError(
          Cat("LightOS ", connection_->LastGoodEndpoint(), ": ", label, " ended in state Failed"));
    }
    if (state == SnapshotState::kDeleting || state == SnapshotState::kDeleted) {
      return absl::AbortedError(
          Cat("LightOS ", connection_->LastGoodEndpoint(), ": ", label, " is being deleted"));
    }
    if (!Backoff(&delay, deadline)) return Timeout(Cat("still ", SnapshotStateName(state)), label);
    auto next = ReadSnapshot(uuid, deadline);
    if (absl::IsNotFound(next.status())) {
      return absl::AbortedError(Cat("LightOS ", connection_->LastGoodEndpoint(), ": ", label,
                                    " disappeared while being created"));
    }
    if (absl::IsDeadlineExceeded(next.status())) {
      return Timeout(Cat("still ", SnapshotStateName(state)), label);
    }
    if (!next.ok()) return next.status();
    snapshot = *std::move(next);
  }
}

absl::StatusOr<Volume> GrpcClient::CreateVolume(const CreateVolumeSpec& spec,
                                                const CallOptions& opts) {
  pb::Volume created;
  RETURN_IF_ERROR(Rpc("CreateVolume", spec.name, &DurosStub::CreateVolume, ToWire(spec, project_),
                      &created, opts.deadline));
  if (created.uuid().empty()) {
    // Some servers answer with an empty record; the name finds it.
    ASSIGN_OR_RETURN(Volume found, GetVolumeByName(spec.name, opts));
    ASSIGN_OR_RETURN(created, ReadVolume(found.uuid, opts.deadline));
  }
  if (created.name().empty()) created.set_name(spec.name);
  return AwaitVolumeReady(std::move(created), opts.deadline);
}

absl::StatusOr<Volume> GrpcClient::GetVolume(const std::string& uuid, const CallOptions& opts) {
  ASSIGN_OR_RETURN(pb::Volume volume, ReadVolume(uuid, opts.deadline));
  return FromWire(volume);
}

absl::StatusOr<Volume> GrpcClient::GetVolumeByName(const std::string& name,
                                                   const CallOptions& opts) {
  pb::ListVolumeRequest req;
  req.set_name(name);
  req.set_projectname(project_);
  pb::ListVolumesResponse resp;
  RETURN_IF_ERROR(
      Rpc("ListVolumes", Cat("name=", name), &DurosStub::ListVolumes, req, &resp, opts.deadline));
  // Filter here too: the name filter is an exact match only on some servers.
  for (const auto& v : resp.volumes()) {
    if (v.name() == name) return FromWire(v);
  }
  return absl::NotFoundError(Cat("LightOS ", connection_->LastGoodEndpoint(), ": volume ", name,
                                 ": not found", project_.empty() ? "" : " in project ", project_));
}

absl::Status GrpcClient::DeleteVolume(const std::string& uuid, const CallOptions& opts) {
  const absl::Time deadline = opts.deadline;
  pb::DeleteVolumeRequest req;
  req.set_uuid(uuid);
  req.set_projectname(project_);
  absl::Duration delay = options_.poll_initial;
  while (true) {
    pb::DeleteVolumeResponse resp;
    absl::Status st = Rpc("DeleteVolume", uuid, &DurosStub::DeleteVolume, req, &resp, deadline);
    if (st.ok()) break;
    if (st.code() != absl::StatusCode::kInternal) return st;
    // LightOS reports most refusals as INTERNAL; the volume's state tells why.
    auto volume = ReadVolume(uuid, deadline);
    if (!volume.ok()) return absl::IsNotFound(volume.status()) ? volume.status() : st;
    VolumeState state = FromWire(volume->state());
    if (state == VolumeState::kDeleting || state == VolumeState::kDeleted) break;
    if (!IsTransient(state)) {
      return absl::InternalError(
          Cat(StdView(st.message()), " (volume state ", VolumeStateName(state), ")"));
    }
    // Busy (e.g. still Creating): retry the delete once it settles.
    if (!Backoff(&delay, deadline)) {
      return Timeout(Cat("delete refused while ", VolumeStateName(state)), Cat("volume ", uuid));
    }
  }
  delay = options_.poll_initial;
  while (true) {
    auto volume = ReadVolume(uuid, deadline);
    if (absl::IsNotFound(volume.status())) return absl::OkStatus();
    if (!volume.ok()) return volume.status();
    VolumeState state = FromWire(volume->state());
    if (state == VolumeState::kDeleted) return absl::OkStatus();
    if (state == VolumeState::kFailed) {
      return absl::InternalError(Cat("LightOS ", connection_->LastGoodEndpoint(), ": volume ", uuid,
                                     " ended in state Failed while being deleted"));
    }
    if (!Backoff(&delay, deadline)) {
      return Timeout(Cat("still ", VolumeStateName(state)), Cat("volume ", uuid));
    }
  }
}

absl::StatusOr<std::vector<Volume>> GrpcClient::ListVolumes(const Page& page,
                                                            const CallOptions& opts) {
  pb::ListVolumeRequest req;
  req.set_projectname(project_);
  req.set_offsetuuid(page.offset_uuid);
  req.set_limit(page.limit);
  pb::ListVolumesResponse resp;
  RETURN_IF_ERROR(Rpc("ListVolumes", "", &DurosStub::ListVolumes, req, &resp, opts.deadline));
  std::vector<Volume> out;
  out.reserve(resp.volumes_size());
  for (const auto& v : resp.volumes()) out.push_back(FromWire(v));
  return out;
}

absl::StatusOr<Volume> GrpcClient::UpdateWithEtag(
    const std::string& uuid, std::string_view what,
    const std::function<bool(const pb::Volume&, pb::UpdateVolumeRequest&)>& mutate,
    absl::Time deadline) {
  absl::Duration delay = options_.etag_retry_initial;
  // The last refusal, so that a deadline met in a later attempt's RPC reports why the earlier
  // attempts failed rather than a bare "Deadline Exceeded".
  absl::Status refused;
  auto still_refused = [&](int attempts) {
    return absl::FailedPreconditionError(Cat(StdView(refused.message()), " (", what,
                                             ": still refused after ", attempts,
                                             " attempts when the deadline came)"));
  };
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<pb::Volume> read = ReadVolume(uuid, deadline);
    if (!read.ok()) {
      if (!refused.ok() && read.status().code() == absl::StatusCode::kDeadlineExceeded) {
        return still_refused(attempt - 1);
      }
      return read.status();
    }
    pb::Volume volume = *std::move(read);
    pb::UpdateVolumeRequest req;
    req.set_uuid(uuid);
    req.set_projectname(project_);
    if (!mutate(volume, req)) return FromWire(volume);
    pb::UpdateVolumeResponse resp;
    absl::Status st =
        Rpc("UpdateVolume", uuid, &DurosStub::UpdateVolume, req, &resp, deadline, volume.etag());
    if (st.ok()) {
      ASSIGN_OR_RETURN(pb::Volume after, ReadVolume(uuid, deadline));
      return FromWire(after);
    }
    if (st.code() == absl::StatusCode::kDeadlineExceeded && !refused.ok()) {
      return still_refused(attempt - 1);
    }
    if (st.code() != absl::StatusCode::kFailedPrecondition) return st;
    // A stale ETag: another writer got there first. Re-read and try again.
    refused = st;
    absl::Duration pause = Jitter(delay);
    if (absl::Now() + pause >= deadline) return still_refused(attempt);
    absl::SleepFor(pause);
    delay = std::min(delay * 2, options_.poll_max);
  }
}

absl::StatusOr<Volume> GrpcClient::UpdateVolumeAccess(const std::string& uuid,
                                                      const AccessMutator& mutate,
                                                      const CallOptions& opts) {
  return UpdateWithEtag(
      uuid, "ACL update",
      [&](const pb::Volume& volume, pb::UpdateVolumeRequest& req) {
        std::vector<std::string> before(volume.acl().values().begin(), volume.acl().values().end());
        Labels labels_before;
        for (const auto& label : volume.labels()) labels_before[label.key()] = label.value();
        std::vector<std::string> acl = before;
        Labels labels = labels_before;
        if (!mutate(acl, labels)) return false;
        NormalizeAcl(acl);
        bool acl_changed = acl != before;
        bool labels_changed = labels != labels_before;
        if (!acl_changed && !labels_changed) return false;
        if (acl_changed) {
          for (const auto& entry : acl) req.mutable_acl()->add_values(entry);
        }
        // LightOS takes the labels of an update as the whole new set.
        if (labels_changed) {
          for (const auto& [key, value] : labels) {
            auto* label = req.add_labels();
            label->set_key(key);
            label->set_value(value);
          }
        }
        return true;
      },
      opts.deadline);
}

absl::StatusOr<Volume> GrpcClient::ResizeVolume(const std::string& uuid, uint64_t size_bytes,
                                                const CallOptions& opts) {
  ASSIGN_OR_RETURN(Volume volume, UpdateWithEtag(
                                      uuid, "resize",
                                      [&](const pb::Volume& v, pb::UpdateVolumeRequest& req) {
                                        if (v.size() >= size_bytes) return false;
                                        req.set_size(UpdateSizeString(size_bytes));
                                        return true;
                                      },
                                      opts.deadline));
  // The new size may show up only once the cluster has applied it.
  absl::Duration delay = options_.poll_initial;
  while (volume.size_bytes < size_bytes) {
    if (volume.state == VolumeState::kFailed) {
      return absl::InternalError(Cat("LightOS ", connection_->LastGoodEndpoint(), ": volume ", uuid,
                                     " ended in state Failed while growing"));
    }
    if (!Backoff(&delay, opts.deadline)) {
      return Timeout(Cat("size still ", volume.size_bytes, " bytes, want ", size_bytes),
                     Cat("volume ", uuid));
    }
    ASSIGN_OR_RETURN(volume, GetVolume(uuid, opts));
  }
  return volume;
}

absl::StatusOr<Volume> GrpcClient::SetQosPolicy(const std::string& uuid,
                                                const std::string& policy_name,
                                                const CallOptions& opts) {
  return UpdateWithEtag(
      uuid, "QoS policy update",
      [&](const pb::Volume& v, pb::UpdateVolumeRequest& req) {
        if (v.qospolicyname() == policy_name) return false;
        req.set_qospolicyname(policy_name);
        return true;
      },
      opts.deadline);
}

absl::StatusOr<Snapshot> GrpcClient::CreateSnapshot(const std::string& name,
                                                    const std::string& source_volume_uuid,
                                                    const CallOptions& opts) {
  pb::CreateSnapshotRequest req;
  req.set_name(name);
  req.set_sourcevolumeuuid(source_volume_uuid);
  req.set_projectname(project_);
  pb::Snapshot created;
  RETURN_IF_ERROR(
      Rpc("CreateSnapshot", name, &DurosStub::CreateSnapshot, req, &created, opts.deadline));
  if (created.uuid().empty()) {
    ASSIGN_OR_RETURN(Snapshot found, GetSnapshotByName(name, opts));
    ASSIGN_OR_RETURN(created, ReadSnapshot(found.uuid, opts.deadline));
  }
  if (created.name().empty()) created.set_name(name);
  return AwaitSnapshotReady(std::move(created), opts.deadline);
}

absl::StatusOr<Snapshot> GrpcClient::GetSnapshot(const std::string& uuid, const CallOptions& opts) {
  ASSIGN_OR_RETURN(pb::Snapshot snapshot, ReadSnapshot(uuid, opts.deadline));
  return FromWire(snapshot);
}

absl::StatusOr<Snapshot> GrpcClient::GetSnapshotByName(const std::string& name,
                                                       const CallOptions& opts) {
  pb::ListSnapshotsRequest req;
  req.set_name(name);
  req.set_projectname(project_);
  pb::ListSnapshotsResponse resp;
  RETURN_IF_ERROR(Rpc("ListSnapshots", Cat("name=", name), &DurosStub::ListSnapshots, req, &resp,
                      opts.deadline));
  for (const auto& s : resp.snapshots()) {
    if (s.name() == name) return FromWire(s);
  }
  return absl::NotFoundError(Cat("LightOS ", connection_->LastGoodEndpoint(), ": snapshot ", name,
                                 ": not found", project_.empty() ? "" : " in project ", project_));
}

absl::Status GrpcClient::DeleteSnapshot(const std::string& uuid, const CallOptions& opts) {
  pb::DeleteSnapshotRequest req;
  req.set_uuid(uuid);
  req.set_projectname(project_);
  pb::DeleteSnapshotResponse resp;
  RETURN_IF_ERROR(
      Rpc("DeleteSnapshot", uuid, &DurosStub::DeleteSnapshot, req, &resp, opts.deadline));
  absl::Duration delay = options_.poll_initial;
  while (true) {
    auto snapshot = ReadSnapshot(uuid, opts.deadline);
    if (absl::IsNotFound(snapshot.status())) return absl::OkStatus();
    if (!snapshot.ok()) return snapshot.status();
    SnapshotState state = FromWire(snapshot->state());
    if (state == SnapshotState::kDeleted) return absl::OkStatus();
    if (state == SnapshotState::kFailed) {
      return absl::InternalError(Cat("LightOS ", connection_->LastGoodEndpoint(), ": snapshot ",
                                     uuid, " ended in state Failed while being deleted"));
    }
    if (!Backoff(&delay, opts.deadline)) {
      return Timeout(Cat("still ", SnapshotStateName(state)), Cat("snapshot ", uuid));
    }
  }
}

absl::StatusOr<std::vector<Snapshot>> GrpcClient::ListSnapshots(
    const Page& page, const std::string& source_volume_uuid, const CallOptions& opts) {
  pb::ListSnapshotsRequest req;
  req.set_projectname(project_);
  req.set_offsetuuid(page.offset_uuid);
  req.set_limit(page.limit);
  pb::ListSnapshotsResponse resp;
  RETURN_IF_ERROR(Rpc("ListSnapshots", "", &DurosStub::ListSnapshots, req, &resp, opts.deadline));
  std::vector<Snapshot> out;
  // The API has no source filter: applied here, within the page.
  for (const auto& s : resp.snapshots()) {
    if (source_volume_uuid.empty() ||
        ToLower(s.sourcevolumeuuid()) == ToLower(source_volume_uuid)) {
      out.push_back(FromWire(s));
    }
  }
  return out;
}

}  // namespace lbcsi::lightos
