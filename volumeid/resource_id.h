#pragma once
// Volume and snapshot ids in the shipped Go plugin's format, so that existing
// PVs and VolumeSnapshotContents keep working after a switch:
//
//   mgmt:<host:port>[,<host:port>...]|nguid:<uuid>[|proj:<project>][|scheme:grpc|grpcs][|hostcrypto:luks2]
//
// Generation is canonical (fields in this order, endpoints de-duplicated and
// sorted, lowercase) and limited to CSI's 128 bytes. Parsing is lenient about
// length: the shipped plugin produced longer ids (many endpoints, long project
// names) and those volumes must stay manageable.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <absl/status/statusor.h>

#include "volumeid/endpoints.h"

namespace lbcsi {

enum class MgmtScheme { kGrpcs, kGrpc };
std::string_view MgmtSchemeName(MgmtScheme scheme);
absl::StatusOr<MgmtScheme> ParseMgmtScheme(std::string_view name);

inline constexpr size_t kCsiMaxIdBytes = 128;

struct ResourceId {
  std::vector<HostPort> mgmt_endpoints;  // canonical: sorted, unique
  std::string uuid;                      // LightOS UUID, lowercase, 36 chars
  std::string project;                   // empty: no proj field (single-tenant cluster)
  std::optional<MgmtScheme> scheme;      // absent in old ids, which meant grpcs
  bool host_encryption = false;          // |hostcrypto:luks2

  MgmtScheme EffectiveScheme() const { return scheme.value_or(MgmtScheme::kGrpcs); }
  friend bool operator==(const ResourceId&, const ResourceId&) = default;
};

// INVALID_ARGUMENT naming what is wrong; never accepts the nil UUID.
absl::StatusOr<ResourceId> ParseResourceId(std::string_view id);

// INVALID_ARGUMENT when a part is malformed or the id would exceed 128 bytes.
absl::StatusOr<std::string> FormatResourceId(const ResourceId& id);

// Checks a LightOS UUID (8-4-4-4-12 hex) and returns it lowercased.
absl::StatusOr<std::string> NormalizeUuid(std::string_view uuid);

// LightOS project names: ^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$ (the shipped plugin also
// accepted a leading or trailing '-' or '.', which we accept when parsing ids).
bool IsValidProjectName(std::string_view name);

}  // namespace lbcsi
