#pragma once
// Conversions between the DurosAPI wire messages and the client's own types,
// and LightOS's string encodings (sizes, compression).

#include <cstdint>
#include <string>
#include <string_view>

#include "lightbits/api/duros/v2/durosapi.pb.h"
#include "lightos/client.h"
#include "lightos/state_names.h"

namespace lbcsi::lightos {

namespace pb = ::lightbits::api::duros::v2;

// CreateVolumeRequest.size: decimal bytes with a "b" suffix ("10737418240b").
std::string CreateSizeString(uint64_t bytes);
// UpdateVolumeRequest.size: plain decimal bytes.
std::string UpdateSizeString(uint64_t bytes);
// Volume.compression is a string: "true"/"false", also "enable(d)"/"disable(d)".
bool ParseCompression(std::string_view value);

VolumeState FromWire(pb::Volume::StateEnum state);
ProtectionState FromWire(pb::ProtectionStateEnum state);
SnapshotState FromWire(pb::Snapshot::StateEnum state);

Volume FromWire(const pb::Volume& v);
Snapshot FromWire(const pb::Snapshot& s);
pb::CreateVolumeRequest ToWire(const CreateVolumeSpec& spec, const std::string& project);

}  // namespace lbcsi::lightos
