#include "lightos/client.h"

namespace lbcsi::lightos {

bool Volume::Usable() const {
  bool state_ok = state == VolumeState::kAvailable || state == VolumeState::kUpdating ||
                  state == VolumeState::kMigrating;
  bool protection_ok =
      protection == ProtectionState::kFullyProtected || protection == ProtectionState::kDegraded;
  return state_ok && protection_ok;
}

}  // namespace lbcsi::lightos
