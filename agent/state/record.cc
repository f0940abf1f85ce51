#include "agent/state/record.h"

#include <nlohmann/json.hpp>

#include "common/strings.h"

namespace lbcsi::agent::state {
namespace {

using nlohmann::json;
constexpr int kVersion = 1;

const char* StageName(StagePhase p) {
  switch (p) {
    case StagePhase::kStaging: return "staging";
    case StagePhase::kStaged: return "staged";
    case StagePhase::kUnstaging: return "unstaging";
  }
  return "?";
}
const char* PublishName(PublishPhase p) {
  switch (p) {
    case PublishPhase::kPublishing: return "publishing";
    case PublishPhase::kPublished: return "published";
    case PublishPhase::kUnpublishing: return "unpublishing";
  }
  return "?";
}
const char* EphemeralName(EphemeralPhase p) {
  switch (p) {
    case EphemeralPhase::kCreating: return "creating";
    case EphemeralPhase::kCreated: return "created";
    case EphemeralPhase::kPublished: return "published";
    case EphemeralPhase::kDeleting: return "deleting";
  }
  return "?";
}

template <typename E>
bool ParsePhase(const std::string& s, E* out, std::initializer_list<E> all,
                const char* (*name)(E)) {
  for (E e : all) {
    if (s == name(e)) {
      *out = e;
      return true;
    }
  }
  return false;
}

}  // namespace

std::string ToJson(const VolumeRecord& r) {
  json j;
  j["version"] = kVersion;
  j["volume_id"] = r.volume_id;
  j["volume_uuid"] = r.volume_uuid;
  j["subsystem_nqn"] = r.subsystem_nqn;
  if (r.stage) {
    const StageRecord& s = *r.stage;
    j["stage"] = {{"phase", StageName(s.phase)},
                  {"path", s.path},
                  {"block", s.block},
                  {"fs_type", s.fs_type},
                  {"read_only", s.read_only},
                  {"access_mode", s.access_mode},
                  {"mount_options", s.mount_options},
                  {"selinux_context", s.selinux_context},
                  {"encrypted", s.encrypted}};
  }
  json pubs = json::object();
  for (const auto& [target, p] : r.publishes) {
    pubs[target] = {{"phase", PublishName(p.phase)},
                    {"block", p.block},
                    {"read_only", p.read_only},
                    {"access_mode", p.access_mode},
                    {"fs_type", p.fs_type},
                    {"mount_options", p.mount_options},
                    {"selinux_context", p.selinux_context}};
  }
  j["publishes"] = pubs;
  if (r.ephemeral) {
    const EphemeralRecord& e = *r.ephemeral;
    j["ephemeral"] = {{"phase", EphemeralName(e.phase)}, {"lightos_name", e.lightos_name},
                      {"staging_path", e.staging_path},  {"target_path", e.target_path},
                      {"size_bytes", e.size_bytes},      {"replica_count", e.replica_count},
                      {"compression", e.compression},    {"fs_type", e.fs_type}};
  }
  return j.dump(2);
}

absl::StatusOr<VolumeRecord> FromJson(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::DataLossError("state record is not JSON");
  try {
    if (j.value("version", 0) != kVersion) {
      return absl::DataLossError(Cat("state record has unknown version ", j.value("version", 0)));
    }
    VolumeRecord r;
    r.volume_id = j.at("volume_id").get<std::string>();
    r.volume_uuid = j.value("volume_uuid", "");
    r.subsystem_nqn = j.value("subsystem_nqn", "");
    if (j.contains("stage")) {
      const json& s = j["stage"];
      StageRecord st;
      if (!ParsePhase(s.at("phase").get<std::string>(), &st.phase,
                      {StagePhase::kStaging, StagePhase::kStaged, StagePhase::kUnstaging},
                      &StageName)) {
        return absl::DataLossError("state record: bad stage phase");
      }
      st.path = s.at("path").get<std::string>();
      st.block = s.value("block", false);
      st.fs_type = s.value("fs_type", "");
      st.read_only = s.value("read_only", false);
      st.access_mode = s.value("access_mode", 0);
      st.mount_options = s.value("mount_options", std::vector<int>{});
      st.selinux_context = s.value("selinux_context", "");
      st.encrypted = s.value("encrypted", false);
      r.stage = st;
    }
    if (j.contains("publishes")) {
      for (auto it = j["publishes"].begin(); it != j["publishes"].end(); ++it) {
        const json& p = it.value();
        PublishRecord pr;
        if (!ParsePhase(
                p.at("phase").get<std::string>(), &pr.phase,
                {PublishPhase::kPublishing, PublishPhase::kPublished, PublishPhase::kUnpublishing},
                &PublishName)) {
          return absl::DataLossError("state record: bad publish phase");
        }
        pr.block = p.value("block", false);
        pr.read_only = p.value("read_only", false);
        pr.access_mode = p.value("access_mode", 0);
        pr.fs_type = p.value("fs_type", "");
        pr.mount_options = p.value("mount_options", std::vector<int>{});
        pr.selinux_context = p.value("selinux_context", "");
        r.publishes[it.key()] = pr;
      }
    }
    if (j.contains("ephemeral")) {
      const json& e = j["ephemeral"];
      EphemeralRecord er;
      if (!ParsePhase(e.at("phase").get<std::string>(), &er.phase,
                      {EphemeralPhase::kCreating, EphemeralPhase::kCreated,
                       EphemeralPhase::kPublished, EphemeralPhase::kDeleting},
                      &EphemeralName)) {
        return absl::DataLossError("state record: bad ephemeral phase");
      }
      er.lightos_name = e.at("lightos_name").get<std::string>();
      er.staging_path = e.value("staging_path", "");
      er.target_path = e.value("target_path", "");
      er.size_bytes = e.value("size_bytes", uint64_t{0});
      er.replica_count = e.value("replica_count", 1u);
      er.compression = e.value("compression", false);
      er.fs_type = e.value("fs_type", "");
      r.ephemeral = er;
    }
    return r;
  } catch (const json::exception& e) {
    return absl::DataLossError(Cat("state record: ", e.what()));
  }
}

}  // namespace lbcsi::agent::state
