#include "volumeid/resource_id.h"

#include <algorithm>
#include "common/strings.h"

#include <cctype>

namespace lbcsi {
namespace {

absl::Status Malformed(std::string_view id, std::string_view why) {
  return absl::InvalidArgumentError(Cat("malformed id \"", Excerpt(id), "\": ", why));
}

bool IsLenientProjectName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string_view MgmtSchemeName(MgmtScheme scheme) {
  return scheme == MgmtScheme::kGrpc ? "grpc" : "grpcs";
}

absl::StatusOr<MgmtScheme> ParseMgmtScheme(std::string_view name) {
  if (name == "grpcs") return MgmtScheme::kGrpcs;
  if (name == "grpc") return MgmtScheme::kGrpc;
  return absl::InvalidArgumentError(Cat("scheme \"", Excerpt(name), "\" is not grpcs or grpc"));
}

absl::StatusOr<std::string> NormalizeUuid(std::string_view uuid) {
  static constexpr int kGroups[] = {8, 4, 4, 4, 12};
  if (uuid.size() != 36)
    return absl::InvalidArgumentError(Cat("\"", Excerpt(uuid), "\" is not a UUID"));
  size_t pos = 0;
  bool all_zero = true;
  for (int g = 0; g < 5; ++g) {
    for (int i = 0; i < kGroups[g]; ++i, ++pos) {
      if (!std::isxdigit(static_cast<unsigned char>(uuid[pos]))) {
        return absl::InvalidArgumentError(Cat("\"", Excerpt(uuid), "\" is not a UUID"));
      }
      if (uuid[pos] != '0') all_zero = false;
    }
    if (g < 4) {
      if (uuid[pos] != '-')
        return absl::InvalidArgumentError(Cat("\"", Excerpt(uuid), "\" is not a UUID"));
      ++pos;
    }
  }
  if (all_zero) return absl::InvalidArgumentError("the nil UUID is not a volume");
  return ToLower(uuid);
}

bool IsValidProjectName(std::string_view name) {
  if (!IsLenientProjectName(name)) return false;
  auto alnum = [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c));
  };
  return alnum(name.front()) && alnum(name.back());
}

absl::StatusOr<ResourceId> ParseResourceId(std::string_view id) {
  if (id.empty()) return absl::InvalidArgumentError("id is empty");
  if (id.size() > 4096) return Malformed(id.substr(0, 64), "longer than 4096 bytes");
  std::vector<std::string_view> parts = Split(id, '|');
  if (parts.size() < 2) return Malformed(id, "want mgmt:<endpoints>|nguid:<uuid>");

  ResourceId out;
  if (!ConsumePrefix(&parts[0], "mgmt:")) return Malformed(id, "must start with mgmt:");
  absl::StatusOr<std::vector<HostPort>> eps = ParseEndpointList(parts[0]);
  if (!eps.ok()) return Malformed(id, StdView(eps.status().message()));
  out.mgmt_endpoints = *std::move(eps);

  if (!ConsumePrefix(&parts[1], "nguid:")) return Malformed(id, "second field must be nguid:");
  absl::StatusOr<std::string> uuid = NormalizeUuid(parts[1]);
  if (!uuid.ok()) return Malformed(id, StdView(uuid.status().message()));
  out.uuid = *std::move(uuid);

  bool seen_proj = false, seen_scheme = false, seen_crypto = false;
  for (size_t i = 2; i < parts.size(); ++i) {
    std::string_view part = parts[i];
    if (ConsumePrefix(&part, "proj:")) {
      if (seen_proj) return Malformed(id, "proj: given twice");
      if (!IsLenientProjectName(part)) return Malformed(id, Cat("bad project name \"", part, "\""));
      out.project = std::string(part);
      seen_proj = true;
    } else if (ConsumePrefix(&part, "scheme:")) {
      if (seen_scheme) return Malformed(id, "scheme: given twice");
      absl::StatusOr<MgmtScheme> scheme = ParseMgmtScheme(part);
      if (!scheme.ok()) return Malformed(id, StdView(scheme.status().message()));
      out.scheme = *scheme;
      seen_scheme = true;
    } else if (ConsumePrefix(&part, "hostcrypto:")) {
      if (seen_crypto) return Malformed(id, "hostcrypto: given twice");
      if (part != "luks2") return Malformed(id, Cat("unknown hostcrypto \"", part, "\""));
      out.host_encryption = true;
      seen_crypto = true;
    } else {
      return Malformed(id, Cat("unknown field \"", parts[i], "\""));
    }
  }
  return out;
}

absl::StatusOr<std::string> FormatResourceId(const ResourceId& id) {
  if (id.mgmt_endpoints.empty())
    return absl::InvalidArgumentError("id needs at least one management endpoint");
  absl::StatusOr<std::string> uuid = NormalizeUuid(id.uuid);
  if (!uuid.ok()) return uuid.status();
  if (!id.project.empty() && !IsValidProjectName(id.project)) {
    return absl::InvalidArgumentError(Cat("project name \"", id.project, "\" is invalid"));
  }
  std::vector<HostPort> eps = id.mgmt_endpoints;
  std::sort(eps.begin(), eps.end(),
            [](const HostPort& a, const HostPort& b) { return a.ToString() < b.ToString(); });
  eps.erase(std::unique(eps.begin(), eps.end()), eps.end());

  std::string out = Cat("mgmt:", JoinEndpoints(eps), "|nguid:", *uuid);
  if (!id.project.empty()) out += Cat("|proj:", id.project);
  if (id.scheme) out += Cat("|scheme:", MgmtSchemeName(*id.scheme));
  if (id.host_encryption) out += "|hostcrypto:luks2";
  if (out.size() > kCsiMaxIdBytes) {
    return absl::InvalidArgumentError(
        Cat("the volume id would be ", out.size(), " bytes, over CSI's limit of ", kCsiMaxIdBytes,
            ": use fewer management endpoints (mgmt-endpoint) or a shorter project name"));
  }
  return out;
}

}  // namespace lbcsi
