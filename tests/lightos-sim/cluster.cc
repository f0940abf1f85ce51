#include "tests/lightos-sim/cluster.h"

#include <unistd.h>

#include <filesystem>
#include <random>

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "common/status.h"
#include "common/strings.h"
#include "tests/lightos-sim/fileops.h"
#include "tests/lightos-sim/rules.h"

namespace lbcsi::sim {
namespace {

namespace fs = std::filesystem;
using google::protobuf::util::TimeUtil;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             Cluster::Clock::now().time_since_epoch())
      .count();
}

const char* VolumeStateName(api::Volume::StateEnum s) {
  return api::Volume::StateEnum_Name(s).c_str();
}

absl::StatusOr<nlohmann::json> ProtoToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  auto st = google::protobuf::util::MessageToJsonString(m, &out, opts);
  if (!st.ok()) return absl::InternalError(Cat("encode state: ", st.ToString()));
  return nlohmann::json::parse(out);
}

absl::Status JsonToProto(const nlohmann::json& j, google::protobuf::Message* m) {
  auto st = google::protobuf::util::JsonStringToMessage(j.dump(), m);
  if (!st.ok()) return absl::DataLossError(Cat("decode state: ", st.ToString()));
  return absl::OkStatus();
}

std::vector<std::string> Values(const api::StringList& list) {
  return {list.values().begin(), list.values().end()};
}

}  // namespace

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::Open(ClusterOptions options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("data dir is required");
  if (options.max_replicas == 0) return absl::InvalidArgumentError("max replicas must be >= 1");
  std::error_code ec;
  for (const char* sub : {"volumes", "snapshots"}) {
    fs::create_directories(fs::path(options.data_dir) / sub, ec);
    if (ec)
      return absl::InternalError(Cat("create ", options.data_dir, "/", sub, ": ", ec.message()));
  }
  std::unique_ptr<Cluster> cluster(new Cluster(std::move(options)));
  RETURN_IF_ERROR(cluster->Load());
  return cluster;
}

void Cluster::SetFailPredicate(FailPredicate predicate) {
  std::lock_guard lock(mu_);
  should_fail_ = std::move(predicate);
}

void Cluster::SetApiEndpoints(std::vector<std::string> endpoints) {
  std::lock_guard lock(mu_);
  api_endpoints_ = std::move(endpoints);
}

std::string Cluster::VolumePath(const std::string& uuid) const {
  return Cat(opts_.data_dir, "/volumes/", uuid, ".img");
}
std::string Cluster::AclPath(const std::string& uuid) const {
  return Cat(opts_.data_dir, "/volumes/", uuid, ".acl");
}
std::string Cluster::SnapshotPath(const std::string& uuid) const {
  return Cat(opts_.data_dir, "/snapshots/", uuid, ".img");
}

// ---- persistence ----

absl::Status Cluster::Load() {
  std::string path = Cat(opts_.data_dir, "/state.json");
  if (!fs::exists(path)) {
    cluster_uuid_ = NewUuidLocked();
    return SaveLocked();
  }
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) return absl::DataLossError(Cat(path, " is not valid JSON"));
  try {
    cluster_uuid_ = doc.at("cluster_uuid").get<std::string>();
    etag_counter_ = doc.at("etag_counter").get<uint64_t>();
    next_nsid_ = doc.at("next_nsid").get<uint32_t>();
    for (const auto& j : doc.at("volumes")) {
      VolumeRec rec;
      RETURN_IF_ERROR(JsonToProto(j.at("volume"), &rec.v));
      rec.due_ms = j.at("due_ms").get<int64_t>();
      rec.will_fail = j.at("will_fail").get<bool>();
      if (!fs::exists(VolumePath(rec.v.uuid()))) {
        LOG(kWarn, "volume file missing, recreating it empty", {"uuid", rec.v.uuid()});
        RETURN_IF_ERROR(CreateSparseFile(VolumePath(rec.v.uuid()), rec.v.size()));
      }
      volumes_[rec.v.uuid()] = std::move(rec);
    }
    for (const auto& j : doc.at("snapshots")) {
      SnapshotRec rec;
      RETURN_IF_ERROR(JsonToProto(j.at("snapshot"), &rec.s));
      rec.due_ms = j.at("due_ms").get<int64_t>();
      rec.will_fail = j.at("will_fail").get<bool>();
      snapshots_[rec.s.uuid()] = std::move(rec);
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(Cat(path, ": ", e.what()));
  }
  // Data files are written before state.json: a kill in between leaves files
  // of objects that never existed (or were already deleted). Drop them.
  for (const char* dir : {"volumes", "snapshots"}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(Cat(opts_.data_dir, "/", dir), ec)) {
      const std::string uuid = entry.path().stem().string();
      const bool known = dir[0] == 'v' ? volumes_.count(uuid) > 0 : snapshots_.count(uuid) > 0;
      if (known) continue;
      LOG(kWarn, "removing a data file no object owns", {"path", entry.path().string()});
      fs::remove(entry.path(), ec);
    }
  }
  LOG(kInfo, "cluster state loaded", {"volumes", volumes_.size()},
      {"snapshots", snapshots_.size()});
  return absl::OkStatus();
}

absl::Status Cluster::SaveLocked() {
  nlohmann::json doc;
  doc["cluster_uuid"] = cluster_uuid_;
  doc["etag_counter"] = etag_counter_;
  doc["next_nsid"] = next_nsid_;
  doc["volumes"] = nlohmann::json::array();
  for (const auto& [uuid, rec] : volumes_) {
    ASSIGN_OR_RETURN(auto v, ProtoToJson(rec.v));
    doc["volumes"].push_back({{"volume", v}, {"due_ms", rec.due_ms}, {"will_fail", rec.will_fail}});
  }
  doc["snapshots"] = nlohmann::json::array();
  for (const auto& [uuid, rec] : snapshots_) {
    ASSIGN_OR_RETURN(auto s, ProtoToJson(rec.s));
    doc["snapshots"].push_back(
        {{"snapshot", s}, {"due_ms", rec.due_ms}, {"will_fail", rec.will_fail}});
  }
  return AtomicWriteFile(Cat(opts_.data_dir, "/state.json"), doc.dump(1));
}

// ---- helpers ----

std::string Cluster::NewEtagLocked() {
  return Cat(++etag_counter_);
}

std::string Cluster::NewUuidLocked() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^
                                          (static_cast<uint64_t>(getpid()) << 32));
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xffff,
                     hi & 0xffff, lo >> 48, lo & 0xffffffffffffULL);
}

absl::StatusOr<std::string> Cluster::ProjectLocked(const std::string& name) const {
  RETURN_IF_ERROR(ValidateProjectName(name));
  std::string project = ProjectOrDefault(name);
  if (!opts_.projects.empty() && project != "default" &&
      std::find(opts_.projects.begin(), opts_.projects.end(), project) == opts_.projects.end()) {
    return absl::NotFoundError(Cat("project '", project, "' not found"));
  }
  return project;
}

absl::StatusOr<Cluster::VolumeRec*> Cluster::FindVolumeLocked(const std::string& project,
                                                              const std::string& uuid,
                                                              const std::string& name) {
  if (uuid.empty() && name.empty()) return InvalidField("UUID", "UUID or name is required");
  for (auto& [id, rec] : volumes_) {
    if (rec.v.projectname() != project) continue;
    if (!uuid.empty() && id != uuid) continue;
    if (!name.empty() && rec.v.name() != name) continue;
    return &rec;
  }
  return absl::NotFoundError(
      Cat("volume ", uuid.empty() ? name : uuid, " not found in project ", project));
}

absl::StatusOr<Cluster::SnapshotRec*> Cluster::FindSnapshotLocked(const std::string& project,
                                                                  const std::string& uuid,
                                                                  const std::string& name) {
  if (uuid.empty() && name.empty()) return InvalidField("UUID", "UUID or name is required");
  for (auto& [id, rec] : snapshots_) {
    if (rec.s.projectname() != project) continue;
    if (!uuid.empty() && id != uuid) continue;
    if (!name.empty() && rec.s.name() != name) continue;
    return &rec;
  }
  return absl::NotFoundError(
      Cat("snapshot ", uuid.empty() ? name : uuid, " not found in project ", project));
}

absl::Status Cluster::PublishAclLocked(const VolumeRec& rec) {
  std::string content;
  for (const auto& v : rec.v.acl().values()) content += v + "\n";
  return AtomicWriteFile(AclPath(rec.v.uuid()), content);
}

void Cluster::UnpublishAclLocked(const std::string& uuid) {
  std::error_code ec;
  fs::remove(AclPath(uuid), ec);
}

std::vector<std::string> Cluster::NodeUuids() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < opts_.nvme_endpoints.size(); ++i) {
    out.push_back(fmt::format("{}{:012x}", cluster_uuid_.substr(0, 24), i + 1));
  }
  return out;
}

std::vector<std::string> Cluster::DiscoveryEndpoints() const {
  if (!opts_.discovery_endpoints.empty()) return opts_.discovery_endpoints;
  std::vector<std::string> out;
  for (const auto& ep : opts_.nvme_endpoints) {
    out.push_back(Cat(ep.substr(0, ep.rfind(':')), ":8009"));
  }
  return out;
}

api::Volume Cluster::RenderVolume(const VolumeRec& rec) const {
  api::Volume v = rec.v;
  switch (v.state()) {
    case api::Volume::Available:
    case api::Volume::Updating:
    case api::Volume::Migrating: v.set_protectionstate(api::FullyProtected); break;
    case api::Volume::Failed: v.set_protectionstate(api::NotAvailable); break;
    default: break;  // Creating/Deleting keep what they had
  }
  auto written = WrittenBytes(VolumePath(v.uuid()));
  uint64_t bytes = written.ok() ? *written : 0;
  auto* stats = v.mutable_statistics();
  stats->set_userwritten(bytes);
  stats->set_logicalusedstorage(bytes);
  stats->set_physicalusedstorage(bytes * v.replicacount());
  stats->set_physicalcapacity(bytes * v.replicacount());
  stats->set_physicalownedcapacity(bytes * v.replicacount());
  stats->set_compressionratio(1.0);
  stats->set_totalcompressionratio(1.0);
  return v;
}

api::Snapshot Cluster::RenderSnapshot(const SnapshotRec& rec) const {
  api::Snapshot s = rec.s;
  auto written = WrittenBytes(SnapshotPath(s.uuid()));
  uint64_t bytes = written.ok() ? *written : 0;
  s.mutable_statistics()->set_userwritten(bytes);
  s.mutable_statistics()->set_physicalcapacity(bytes * s.replicacount());
  return s;
}

// ---- time ----

void Cluster::AdvanceLocked(int64_t now_ms) {
  bool changed = false;
  for (auto it = volumes_.begin(); it != volumes_.end();) {
    VolumeRec& rec = it->second;
    if (rec.due_ms > now_ms) {
      ++it;
      continue;
    }
    if (rec.v.state() == api::Volume::Creating) {
      rec.v.set_state(rec.will_fail ? api::Volume::Failed : api::Volume::Available);
      rec.v.set_etag(NewEtagLocked());
      if (rec.will_fail) UnpublishAclLocked(rec.v.uuid());
      LOG(kDebug, "volume settled", {"uuid", rec.v.uuid()},
          {"state", VolumeStateName(rec.v.state())});
      changed = true;
    } else if (rec.v.state() == api::Volume::Deleting) {
      UnpublishAclLocked(it->first);
      std::error_code ec;
      fs::remove(VolumePath(it->first), ec);
      LOG(kDebug, "volume gone", {"uuid", it->first});
      it = volumes_.erase(it);
      changed = true;
      continue;
    }
    ++it;
  }
  for (auto it = snapshots_.begin(); it != snapshots_.end();) {
    SnapshotRec& rec = it->second;
    if (rec.due_ms > now_ms) {
      ++it;
      continue;
    }
    if (rec.s.state() == api::Snapshot::Creating) {
      rec.s.set_state(rec.will_fail ? api::Snapshot::Failed : api::Snapshot::Available);
      rec.s.set_etag(NewEtagLocked());
      changed = true;
    } else if (rec.s.state() == api::Snapshot::Deleting) {
      std::error_code ec;
      fs::remove(SnapshotPath(it->first), ec);
      it = snapshots_.erase(it);
      changed = true;
      continue;
    }
    ++it;
  }
  if (changed) {
    if (auto st = SaveLocked(); !st.ok()) LOG(kError, "persisting state failed", {"error", st});
  }
}

void Cluster::Tick() {
  std::lock_guard lock(mu_);
  AdvanceLocked(NowMs());
}

// ---- volumes ----

absl::StatusOr<api::Volume> Cluster::CreateVolume(const api::CreateVolumeRequest& req) {
  std::lock_guard lock(mu_);
  int64_t now = NowMs();
  AdvanceLocked(now);
  ASSIGN_OR_RETURN(std::string project, ProjectLocked(req.projectname()));
  RETURN_IF_ERROR(ValidateObjectName("name", req.name()));
  for (const auto& [id, rec] : volumes_) {
    if (rec.v.projectname() == project && rec.v.name() == req.name()) {
      return absl::AlreadyExistsError(
          Cat("volume '", req.name(), "' already exists in project ", project, " (", id, ")"));
    }
  }
  if (req.replicacount() < 1 || req.replicacount() > opts_.max_replicas) {
    return InvalidField("replicaCount", "must be 1..", opts_.max_replicas, ", got ",
                        req.replicacount());
  }
  ASSIGN_OR_RETURN(std::string compression, NormalizeCompression(req.compression()));
  ASSIGN_OR_RETURN(auto acl, NormalizeAcl(Values(req.acl())));
  uint32_t sector = 4096;
  if (req.sectorsize() == api::CreateVolumeRequest::sectorSize_512B) {
    sector = 512;
  } else if (req.sectorsize() != api::CreateVolumeRequest::sectorSize_Default &&
             req.sectorsize() != api::CreateVolumeRequest::sectorSize_4K) {
    return InvalidField("sectorSize", "unsupported value ", static_cast<int>(req.sectorsize()));
  }
  for (const auto& label : req.labels()) {
    if (label.key().empty()) return InvalidField("labels", "empty key");
  }

  const SnapshotRec* source = nullptr;
  uint64_t size = 0;
  if (!req.sourcesnapshotuuid().empty() || !req.sourcesnapshotname().empty()) {
    ASSIGN_OR_RETURN(SnapshotRec * snap, FindSnapshotLocked(project, req.sourcesnapshotuuid(),
                                                            req.sourcesnapshotname()));
    if (snap->s.state() != api::Snapshot::Available) {
      return absl::FailedPreconditionError(
          Cat("snapshot ", snap->s.uuid(), " is ", api::Snapshot::StateEnum_Name(snap->s.state())));
    }
    source = snap;
    size = snap->s.size();
    if (!req.size().empty()) {
      ASSIGN_OR_RETURN(uint64_t wanted, ParseSize(req.size()));
      if (wanted < size) {
        return InvalidField("size", wanted, " is smaller than snapshot size ", size);
      }
    }
  } else {
    ASSIGN_OR_RETURN(size, ParseSize(req.size()));
  }
  if (opts_.capacity_bytes != 0 && size > opts_.capacity_bytes) {
    // What a cluster says about a volume larger than all of it (and the sim's
    // sparse file could not be that large anyway).
    return absl::OutOfRangeError(
        Cat("size ", size, " exceeds the cluster's capacity of ", opts_.capacity_bytes, " bytes"));
  }

  VolumeRec rec;
  api::Volume& v = rec.v;
  std::string uuid = NewUuidLocked();
  v.set_uuid(uuid);
  v.set_name(req.name());
  v.set_projectname(project);
  v.set_state(api::Volume::Creating);
  v.set_protectionstate(api::ProtectionStateEnum::Unknown);
  v.set_replicacount(req.replicacount());
  auto nodes = NodeUuids();
  for (size_t i = 0; i < nodes.size() && i < req.replicacount(); ++i) v.add_nodelist(nodes[i]);
  if (!nodes.empty()) v.set_primarynodeuuid(nodes[0]);
  v.set_nsid(next_nsid_++);
  for (const auto& a : acl) v.mutable_acl()->add_values(a);
  *v.mutable_ipacl() = req.ipacl();
  v.set_compression(compression);
  v.set_size(size);
  v.set_sectorsize(sector);
  if (source != nullptr) {
    v.set_sourcesnapshotuuid(source->s.uuid());
    v.set_sourcesnapshotname(source->s.name());
  }
  *v.mutable_placementrestrictions() = req.placementrestrictions();
  v.set_qospolicyuuid(req.qospolicyuuid());
  v.set_qospolicyname(req.qospolicyname());
  *v.mutable_creationtime() = TimeUtil::MillisecondsToTimestamp(now);
  *v.mutable_labels() = req.labels();
  v.set_clusterid(cluster_uuid_);
  v.set_etag(NewEtagLocked());
  rec.due_ms = now + opts_.create_delay.count();
  rec.will_fail = should_fail_ && should_fail_(req.name());

  absl::Status file = source != nullptr
                          ? SparseCopy(SnapshotPath(source->s.uuid()), VolumePath(uuid), size)
                          : CreateSparseFile(VolumePath(uuid), size);
  if (!file.ok()) return Annotate(file, "creating volume data file");
  if (auto st = PublishAclLocked(rec); !st.ok()) return st;
  volumes_[uuid] = rec;
  if (auto st = SaveLocked(); !st.ok()) {
    volumes_.erase(uuid);
    return st;
  }
  LOG(kInfo, "volume created", {"uuid", uuid}, {"name", req.name()}, {"project", project},
      {"size", size});
  return RenderVolume(rec);
}

absl::StatusOr<api::Volume> Cluster::GetVolume(const api::GetVolumeRequest& req) {
  std::lock_guard lock(mu_);
  AdvanceLocked(NowMs());
  ASSIGN_OR_RETURN(std::string project, ProjectLocked(req.projectname()));
  ASSIGN_OR_RETURN(VolumeRec * rec, FindVolumeLocked(project, req.uuid(), req.name()));
  return RenderVolume(*rec);
}

absl::Status Cluster::UpdateVolume(const api::UpdateVolumeRequest& req,
                                   const std::optional<std::string>& if_match) {
  std::lock_guard lock(mu_);
  AdvanceLocked(NowMs());
  ASSIGN_OR_RETURN(std::string project, ProjectLocked(req.projectname()));
  ASSIGN_OR_RETURN(VolumeRec * rec, FindVolumeLocked(project, req.uuid(), req.name()));
  api::Volume& v = rec->v;
  if (if_match.has_value() && *if_match != v.etag()) {
    return absl::FailedPreconditionError(
        Cat("volume ", v.uuid(), ": ETag ", *if_match, " is stale (current ", v.etag(), ")"));
  }
  if (v.state() != api::Volume::Available && v.state() != api::Volume::Updating &&
      v.state() != api::Volume::Migrating) {
    return absl::FailedPreconditionError(
        Cat("volume ", v.uuid(), " is ", api::Volume::StateEnum_Name(v.state())));
  }
  // Validate everything before changing anything.
  std::optional<std::vector<std::string>> acl;
  if (req.has_acl()) {
    ASSIGN_OR_RETURN(acl, NormalizeAcl(Values(req.acl())));
  }
  std::optional<uint64_t> size;
  if (!req.size().empty()) {
    ASSIGN_OR_RETURN(size, ParseSize(req.size()));
    if (*size < v.size()) {
      return InvalidField("size", "volumes cannot shrink: ", *size, " < ", v.size());
    }
  }
  std::optional<std::string> compression;
  if (!req.compression().empty()) {
    ASSIGN_OR_RETURN(compression, NormalizeCompression(req.compression()));
  }
  for (const auto& label : req.labels()) {
    if (label.key().empty()) return InvalidField("labels", "empty key");
  }
  if (!req.newname().empty()) {
    RETURN_IF_ERROR(ValidateObjectName("newName", req.newname()));
    for (const auto& [id, other] : volumes_) {
      if (id != v.uuid() && other.v.projectname() == project && other.v.name() == req.newname()) {
        return absl::AlreadyExistsError(Cat("volume '", req.newname(), "' already exists"));
      }
    }
  }

  if (size.has_value() && *size != v.size()) {
    RETURN_IF_ERROR(GrowFile(VolumePath(v.uuid()), *size));
    v.set_size(*size);
  }
  if (acl.has_value()) {
    v.mutable_acl()->clear_values();
    for (const auto& a : *acl) v.mutable_acl()->add_values(a);
  }
  if (req.has_ipacl()) *v.mutable_ipacl() = req.ipacl();
  if (compression.has_value()) v.set_compression(*compression);
  if (req.labels_size() > 0) *v.mutable_labels() = req.labels();
  if (!req.newname().empty()) v.set_name(req.newname());
  if (req.has_qospolicyuuid()) v.set_qospolicyuuid(req.qospolicyuuid());
  if (req.has_qospolicyname()) v.set_qospolicyname(req.qospolicyname());
  v.set_etag(NewEtagLocked());
  if (acl.has_value()) RETURN_IF_ERROR(PublishAclLocked(*rec));
  RETURN_IF_ERROR(SaveLocked());
  LOG(kInfo, "volume updated", {"uuid", v.uuid()}, {"etag", v.etag()});
  return absl::OkStatus();
}

absl::Status Cluster::DeleteVolume(const api::DeleteVolumeRequest& req) {
  std::lock_guard lock(mu_);
  int64_t now = NowMs();
  AdvanceLocked(now);
  ASSIGN_OR_RETURN(std::string project, ProjectLocked(req.projectname()));
  ASSIGN_OR_RETURN(VolumeRec * rec, FindVolumeLocked(project, req.uuid(), req.name()));
  if (rec->v.state() == api::Volume::Deleting) return absl::OkStatus();
  rec->v.set_state(api::Volume::Deleting);
  rec->v.set_etag(NewEtagLocked());
  rec->due_ms = now + opts_.delete_delay.count();
  UnpublishAclLocked(rec->v.uuid());
  LOG(kInfo, "volume deleting", {"uuid", rec->v.uuid()});
  RETURN_IF_ERROR(SaveLocked());
  AdvanceLocked(now);  // a zero delay removes it at once
  return absl::OkStatus();
}

absl::StatusOr<api::ListVolumesResponse> Cluster::ListVolumes(const api::ListVolumeRequest& req) {
  std::lock_guard lock(mu_);
  AdvanceLocked(NowMs());
  ASSIGN_OR_RETURN(std::string project, ProjectLocked(req.projectname()));
  if (req.limit() < 0) return InvalidField("limit", "must not be negative");
  api::ListVolumesResponse resp;
  // UUID order is stable; offsetUUID is exclusive (the last UUID of the previous page).
  for (auto it = volumes_.upper_bound(req.offsetuuid()); it != volumes_.end(); ++it) {
    const api::Volume& v = it->second.v;
    if (v.projectname() != project) continue;
    if (!req.uuid().empty() && v.uuid() != req.uuid()) continue;
    if (!req.name().empty() && v.name() != req.name()) continue;
    if (!req.snapshotuuid().empty() && v.sourcesnapshotuuid() != req.snapshotuuid()) continue;
    if (req.limit() > 0 && resp.volumes_size() >= req.limit()) break;
    *resp.add_volumes() = RenderVolume(it->second);
  }
  return resp;
}

absl::Status Cluster::FailVolume(const std::string& uuid) {
  std::lock_guard lock(mu_);
  auto it = volumes_.find(uuid);
  if (it == volumes_.end()) return absl::NotFoundError(Cat("volume ", uuid, " not found"));
  it->second.v.set_state(api::Volume::Failed);
  it->second.v.set_etag(NewEtagLocked());
  UnpublishAclLocked(uuid);
  return SaveLocked();
}

// ---- snapshots ----

absl::StatusOr<api::Snapshot> Cluster::CreateSnapshot(const api::CreateSnapshotRequest& req) {
  std::lock_guard lock(mu_);
  int64_t now = NowMs();
  AdvanceLocked(now);
  ASSIGN_OR_RETURN(std::string project, ProjectLocked(req.projectname()));
  RETURN_IF_ERROR(ValidateObjectName("name", req.name()));
  for (const auto& [id, rec] : snapshots_) {
    if (rec.s.projectname() == project && rec.s.name() == req.name()) {
      return absl::AlreadyExistsError(
          Cat("snapshot '", req.name(), "' already exists in project ", project, " (", id, ")"));
    }
  }
  ASSIGN_OR_RETURN(VolumeRec * vol,
                   FindVolumeLocked(project, req.sourcevolumeuuid(), req.sourcevolumename()));
  if (vol->v.state() != api::Volume::Available && vol->v.state() != api::Volume::Updating &&
      vol->v.state() != api::Volume::Migrating) {
    return absl::FailedPreconditionError(
        Cat("volume ", vol->v.uuid(), " is ", api::Volume::StateEnum_Name(vol->v.state())));
  }
  SnapshotRec rec;
  api::Snapshot& s = rec.s;
  std::string uuid = NewUuidLocked();
  s.set_uuid(uuid);
  s.set_name(req.name());
  s.set_description(req.description());
  s.set_projectname(project);
  s.set_state(api::Snapshot::Creating);
  *s.mutable_creationtime() = TimeUtil::MillisecondsToTimestamp(now);
  if (req.has_retentiontime()) *s.mutable_retentiontime() = req.retentiontime();
  s.set_sourcevolumeuuid(vol->v.uuid());
  s.set_sourcevolumename(vol->v.name());
  s.set_replicacount(vol->v.replicacount());
  *s.mutable_nodelist() = vol->v.nodelist();
  s.set_primarynodeuuid(vol->v.primarynodeuuid());
  s.set_compression(vol->v.compression() == "true");
  s.set_size(vol->v.size());
  s.set_sectorsize(vol->v.sectorsize());
  *s.mutable_labels() = vol->v.labels();
  s.set_clusterid(cluster_uuid_);
  s.set_etag(NewEtagLocked());
  rec.due_ms = now + opts_.create_delay.count();
  rec.will_fail = should_fail_ && should_fail_(req.name());
  // The copy is taken now: later writes to the volume do not reach the snapshot.
  if (auto st = SparseCopy(VolumePath(vol->v.uuid()), SnapshotPath(uuid), vol->v.size());
      !st.ok()) {
    return Annotate(st, "copying volume data into snapshot");
  }
  snapshots_[uuid] = rec;
  if (auto st = SaveLocked(); !st.ok()) {
    snapshots_.erase(uuid);
    return st;
  }
  LOG(kInfo, "snapshot created", {"uuid", uuid}, {"volume", vol->v.uuid()});
  return RenderSnapshot(rec);
}

absl::StatusOr<api::Snapshot> Cluster::GetSnapshot(const api::GetSnapshotRequest& req) {
  std::lock_guard lock(mu_);
  AdvanceLocked(NowMs());
  ASSIGN_OR_RETURN(std::string project, ProjectLocked(req.projectname()));
  ASSIGN_OR_RETURN(SnapshotRec * rec, FindSnapshotLocked(project, req.uuid(), req.name()));
  return RenderSnapshot(*rec);
}

absl::Status Cluster::DeleteSnapshot(const api::DeleteSnapshotRequest& req) {
  std::lock_guard lock(mu_);
  int64_t now = NowMs();
  AdvanceLocked(now);
  ASSIGN_OR_RETURN(std::string project, ProjectLocked(req.projectname()));
  ASSIGN_OR_RETURN(SnapshotRec * rec, FindSnapshotLocked(project, req.uuid(), req.name()));
  if (rec->s.state() == api::Snapshot::Deleting) return absl::OkStatus();
  rec->s.set_state(api::Snapshot::Deleting);
  rec->s.set_etag(NewEtagLocked());
  rec->due_ms = now + opts_.delete_delay.count();
  RETURN_IF_ERROR(SaveLocked());
  AdvanceLocked(now);
  return absl::OkStatus();
}

absl::StatusOr<api::ListSnapshotsResponse> Cluster::ListSnapshots(
    const api::ListSnapshotsRequest& req) {
  std::lock_guard lock(mu_);
  AdvanceLocked(NowMs());
  ASSIGN_OR_RETURN(std::string project, ProjectLocked(req.projectname()));
  if (req.limit() < 0) return InvalidField("limit", "must not be negative");
  api::ListSnapshotsResponse resp;
  for (auto it = snapshots_.upper_bound(req.offsetuuid()); it != snapshots_.end(); ++it) {
    const api::Snapshot& s = it->second.s;
    if (s.projectname() != project) continue;
    if (!req.uuid().empty() && s.uuid() != req.uuid()) continue;
    if (!req.name().empty() && s.name() != req.name()) continue;
    if (req.limit() > 0 && resp.snapshots_size() >= req.limit()) break;
    *resp.add_snapshots() = RenderSnapshot(it->second);
  }
  return resp;
}

// ---- cluster ----

api::ClusterStatisticsApi Cluster::StatisticsLocked() const {
  uint64_t logical = 0, provisioned = 0, written = 0;
  for (const auto& [id, rec] : volumes_) {
    logical += rec.v.size();
    provisioned += rec.v.size() * rec.v.replicacount();
    auto w = WrittenBytes(VolumePath(id));
    if (w.ok()) written += *w;
  }
  uint64_t cap = opts_.capacity_bytes;
  api::ClusterStatisticsApi st;
  st.set_installedphysicalstorage(cap);
  st.set_managedphysicalstorage(cap);
  st.set_effectivephysicalstorage(cap);
  st.set_logicalstorage(logical);
  st.set_logicalusedstorage(written);
  st.set_physicalusedstorage(provisioned);
  st.set_physicalusedstorageincludingparity(provisioned);
  st.set_freephysicalstorage(cap > provisioned ? cap - provisioned : 0);
  st.set_estimatedlogicalstorage(cap);
  st.set_estimatedfreelogicalstorage(cap > logical ? cap - logical : 0);
  st.set_compressionratio(1.0);
  return st;
}

api::ClusterInfo Cluster::GetCluster() {
  std::lock_guard lock(mu_);
  AdvanceLocked(NowMs());
  api::ClusterInfo info;
  info.set_uuid(cluster_uuid_);
  info.set_subsystemnqn(opts_.subsystem_nqn);
  info.set_currentmaxreplicas(opts_.max_replicas);
  info.set_supportedmaxreplicas(opts_.max_replicas);
  *info.mutable_statistics() = StatisticsLocked();
  info.set_etag(Cat(etag_counter_));
  uint32_t healthy = 0, unavailable = 0;
  for (const auto& [id, rec] : volumes_) {
    (rec.v.state() == api::Volume::Available ? healthy : unavailable)++;
  }
  info.mutable_health()->set_state(api::ClusterHealth::OK);
  info.mutable_health()->set_numhealthyvolumes(healthy);
  info.mutable_health()->set_numnotavailablevolumes(unavailable);
  info.set_minversionincluster("lightos-sim");
  for (const auto& ep : api_endpoints_) info.add_apiendpoints(ep);
  for (const auto& ep : DiscoveryEndpoints()) info.add_discoveryendpoints(ep);
  info.set_clustername(opts_.cluster_name);
  info.set_inbandauthmode(api::ClusterInfo::Disabled);
  return info;
}

api::ClusterInfoV2 Cluster::GetClusterInfo() {
  std::lock_guard lock(mu_);
  api::ClusterInfoV2 info;
  info.set_uuid(cluster_uuid_);
  info.set_subsystemnqn(opts_.subsystem_nqn);
  info.set_currentmaxreplicas(opts_.max_replicas);
  info.set_supportedmaxreplicas(opts_.max_replicas);
  info.set_etag(Cat(etag_counter_));
  for (const auto& ep : api_endpoints_) info.add_apiendpoints(ep);
  for (const auto& ep : DiscoveryEndpoints()) info.add_discoveryendpoints(ep);
  for (const auto& ep : opts_.nvme_endpoints) info.add_nvmeendpoints(ep);
  info.set_clustername(opts_.cluster_name);
  info.set_inbandauthmode(api::ClusterInfo::Disabled);
  return info;
}

api::ListNodesResponse Cluster::ListNodes(const api::ListNodeRequest& req) {
  std::lock_guard lock(mu_);
  api::ListNodesResponse resp;
  auto uuids = NodeUuids();
  for (size_t i = 0; i < opts_.nvme_endpoints.size(); ++i) {
    std::string name = Cat("server", i, "-0");
    if (!req.name().empty() && req.name() != name) continue;
    if (!req.uuid().empty() && req.uuid() != uuids[i]) continue;
    auto* n = resp.add_nodes();
    n->set_name(name);
    n->set_uuid(uuids[i]);
    n->set_state(api::DurosNodeInfo::Active);
    n->set_status(api::DurosNodeInfo::ConnectivityOK);
    n->set_nvmeendpoint(opts_.nvme_endpoints[i]);
    n->add_failuredomains(Cat("fd-", i));
    n->set_hostname(Cat("server", i));
    n->set_serveruuid(uuids[i]);
    n->set_etag("1");
  }
  return resp;
}

}  // namespace lbcsi::sim
