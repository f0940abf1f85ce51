#pragma once
// SHA-256 as lower-case hex: the one digest the project names things with (kubelet's
// globalmount directory, state-record file names, LightOS volume and label names).
#include <string>
#include <string_view>

namespace lbcsi {

// 64 lower-case hex characters of SHA-256(data).
std::string Sha256Hex(std::string_view data);

}  // namespace lbcsi
