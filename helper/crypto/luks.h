#pragma once
// LUKS2 through libcryptsetup, the way the helper may use it: no cryptsetup
// binary, no kernel keyring (the volume key lives in the dm-crypt table, so a
// resize needs no passphrase and seccomp keeps keyctl/add_key forbidden), no
// udev synchronisation (no SysV semaphores), no metadata lock files (the helper
// serialises each volume itself). Mappings are named lbcsi-<volume uuid>.
//
// Compatibility with the shipped plugin's `hostcrypto:luks2` volumes: any
// LUKS2 header opens (parameters are read from the header); new volumes get
// luks2 + aes-xts-plain64 + sha256 + argon2id with the configured key size and
// PBKDF cost.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include "helper/crypto/secret.h"

namespace lbcsi::helper::crypto {

// Operator configuration (helper flags). Defaults: the shipped plugin's
// parameters, a 256-bit XTS key (cryptsetup --key-size 256, i.e. AES-128-XTS);
// 512 (AES-256-XTS, cryptsetup's own default) is selectable. argon2id with
// 64 MiB, 4 threads, and iterations benchmarked for 2 s of unlock time on this node.
struct LuksConfig {
  uint32_t key_bits = 256;            // 256 (AES-128-XTS) or 512 (AES-256-XTS)
  uint32_t pbkdf_memory_kib = 65536;  // argon2id memory cost, 32 MiB .. 4 GiB
  uint32_t pbkdf_parallel = 4;        // argon2id threads, 1 .. 16
  uint32_t pbkdf_time_ms = 2000;      // benchmark target when pbkdf_iterations == 0
  uint32_t pbkdf_iterations = 0;      // > 0: fixed argon2 time cost, no benchmark (tests)
};
absl::Status ValidateLuksConfig(const LuksConfig& config);

// Process-wide libcryptsetup/libdevmapper set-up. Call once, before the
// seccomp filter is installed: it answers the library's one-time probes
// (udev, semaphores) while they are still allowed, then switches off udev
// sync, the keyring and metadata locking, and routes library messages to our log.
void InitLibraryForHelper();

// "lbcsi-<uuid>".
std::string MapperName(std::string_view volume_uuid);

// An active device-mapper device, from sysfs.
struct Mapping {
  std::string kernel_name;  // "dm-3"
  dev_t dev = 0;
  uint64_t size_bytes = 0;
  std::string dm_uuid;              // "CRYPT-LUKS2-<hex>-lbcsi-<uuid>"
  std::vector<std::string> slaves;  // kernel names of the devices underneath
};
// nullopt when no device-mapper device has this name.
absl::StatusOr<std::optional<Mapping>> FindMapping(std::string_view mapper_name);

// Does the device at `device_path` start with a LUKS2 header libcryptsetup can load?
absl::StatusOr<bool> HasLuks2Header(const std::string& device_path);

// Writes a new LUKS2 header with `passphrase` in key slot 0. The caller has
// checked rule 1 (blank probe, never-written proof, not in use).
absl::Status Format(const std::string& device_path, const SecretBytes& passphrase,
                    const LuksConfig& config);

// Activates the mapping. PERMISSION_DENIED when no key slot opens with the
// passphrase; ALREADY_EXISTS when a mapping of that name is already active.
absl::Status Open(const std::string& device_path, const std::string& mapper_name,
                  const SecretBytes& passphrase, bool read_only);

// Checks that the passphrase opens a key slot, without activating anything
// (PERMISSION_DENIED when it does not). Costs one PBKDF run.
absl::Status CheckPassphrase(const std::string& device_path, const SecretBytes& passphrase);

// Removes the mapping. Returns false when it was not active; FAILED_PRECONDITION
// while it is in use (mounted, bound, held).
absl::StatusOr<bool> Close(const std::string& mapper_name);

// Grows (or shrinks) the mapping to fill its underlying device.
absl::Status Resize(const std::string& mapper_name);

}  // namespace lbcsi::helper::crypto
