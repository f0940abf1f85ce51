#pragma once
// LightOS state names as the API spells them, for messages and logs. Header-only: the
// controller uses them without linking the client library.

#include <string_view>

#include "lightos/client.h"

namespace lbcsi::lightos {

constexpr std::string_view VolumeStateName(VolumeState state) {
  switch (state) {
    case VolumeState::kCreating: return "Creating";
    case VolumeState::kAvailable: return "Available";
    case VolumeState::kDeleting: return "Deleting";
    case VolumeState::kDeleted: return "Deleted";
    case VolumeState::kFailed: return "Failed";
    case VolumeState::kUpdating: return "Updating";
    case VolumeState::kRollback: return "Rollback";
    case VolumeState::kMigrating: return "Migrating";
    case VolumeState::kUnknown: break;
  }
  return "Unknown";
}

constexpr std::string_view SnapshotStateName(SnapshotState state) {
  switch (state) {
    case SnapshotState::kCreating: return "Creating";
    case SnapshotState::kAvailable: return "Available";
    case SnapshotState::kDeleting: return "Deleting";
    case SnapshotState::kDeleted: return "Deleted";
    case SnapshotState::kFailed: return "Failed";
    case SnapshotState::kUnknown: break;
  }
  return "Unknown";
}

constexpr std::string_view ProtectionStateName(ProtectionState state) {
  switch (state) {
    case ProtectionState::kFullyProtected: return "FullyProtected";
    case ProtectionState::kDegraded: return "Degraded";
    case ProtectionState::kReadOnly: return "ReadOnly";
    case ProtectionState::kNotAvailable: return "NotAvailable";
    default: break;
  }
  return "Unknown";
}

}  // namespace lbcsi::lightos
