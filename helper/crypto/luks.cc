#include "helper/crypto/luks.h"

#include <dirent.h>
#include <libcryptsetup.h>
#include <libdevmapper.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include "common/logging.h"
#include "common/redact.h"
#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::helper::crypto {
namespace {

struct CdDeleter {
  void operator()(crypt_device* cd) const { crypt_free(cd); }
};
using Cd = std::unique_ptr<crypt_device, CdDeleter>;

// libcryptsetup's messages never carry a passphrase; scrubbed all the same.
void LogFromLibrary(int level, const char* msg, void*) {
  std::string text = ScrubSecrets(msg == nullptr ? "" : msg);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.empty()) return;
  if (level == CRYPT_LOG_ERROR) {
    LOG(kWarn, "libcryptsetup", {"message", text});
  } else {
    LOG(kDebug, "libcryptsetup", {"message", text});
  }
}

// A negative errno from libcryptsetup as a status about `what`.
absl::Status LibError(int r, std::string_view what) {
  const int e = -r;
  std::string msg = Cat(what, ": ", std::strerror(e));
  switch (e) {
    case EPERM: return absl::PermissionDeniedError(msg);
    case EBUSY: return absl::FailedPreconditionError(Cat(msg, " (in use)"));
    case ENOMEM: return absl::ResourceExhaustedError(msg);
    case EINVAL:
    case ENOTSUP:
    case ENODEV:
    case ENXIO: return absl::FailedPreconditionError(msg);
    default: return absl::InternalError(msg);
  }
}

absl::StatusOr<Cd> InitDevice(const std::string& device_path) {
  crypt_device* raw = nullptr;
  int r = crypt_init(&raw, device_path.c_str());
  if (r < 0) return LibError(r, Cat("libcryptsetup cannot use ", device_path));
  Cd cd(raw);
  crypt_volume_key_keyring(cd.get(), 0);
  return cd;
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

absl::Status ValidateLuksConfig(const LuksConfig& c) {
  if (c.key_bits != 256 && c.key_bits != 512) {
    return InvalidField("luks key bits", "must be 256 or 512 (aes-xts-plain64)");
  }
  if (c.pbkdf_memory_kib < 32 * 1024 || c.pbkdf_memory_kib > 4 * 1024 * 1024) {
    return InvalidField("luks pbkdf memory", "must be 32768..4194304 KiB");
  }
  if (c.pbkdf_parallel < 1 || c.pbkdf_parallel > 16) {
    return InvalidField("luks pbkdf parallel", "must be 1..16");
  }
  if (c.pbkdf_iterations == 0 && (c.pbkdf_time_ms < 100 || c.pbkdf_time_ms > 60000)) {
    return InvalidField("luks pbkdf time", "must be 100..60000 ms");
  }
  if (c.pbkdf_iterations > 1000) return InvalidField("luks pbkdf iterations", "must be 0..1000");
  return absl::OkStatus();
}

void InitLibraryForHelper() {
  // The first query runs libdevmapper's one-time probes (a SysV semaphore
  // call, a look at udev); answered now, before seccomp, they are cached.
  (void)dm_udev_get_sync_support();
  // No udev cookies: no semaphores; libdevmapper manages nodes itself (and
  // the helper never needs /dev/mapper/<name>: it opens /dev/dm-N, checked).
  dm_udev_set_sync_support(0);
  crypt_set_log_callback(nullptr, LogFromLibrary, nullptr);
  crypt_set_debug_level(CRYPT_DEBUG_NONE);
  // Process-wide: no lock files under /run/cryptsetup (the helper holds each
  // volume's in-flight slot), no volume key in the kernel keyring.
  crypt_metadata_locking(nullptr, 0);
  crypt_volume_key_keyring(nullptr, 0);
}

std::string MapperName(std::string_view volume_uuid) {
  return Cat("lbcsi-", volume_uuid);
}

absl::StatusOr<std::optional<Mapping>> FindMapping(std::string_view mapper_name) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir("/sys/block"), closedir);
  if (!dir) return absl::InternalError(Cat("opendir /sys/block: ", std::strerror(errno)));
  while (dirent* e = readdir(dir.get())) {
    std::string name = e->d_name;
    if (!name.starts_with("dm-")) continue;
    const std::string base = Cat("/sys/block/", name);
    if (ReadSmallFile(base + "/dm/name") != mapper_name) continue;
    Mapping m;
    m.kernel_name = name;
    m.dm_uuid = ReadSmallFile(base + "/dm/uuid");
    const std::string devnum = ReadSmallFile(base + "/dev");  // Split returns views into it
    std::vector<std::string_view> mm = Split(devnum, ':');
    if (mm.size() != 2) return absl::InternalError(Cat(base, "/dev is unreadable"));
    m.dev = makedev(std::stoul(std::string(mm[0])), std::stoul(std::string(mm[1])));
    std::string sectors = ReadSmallFile(base + "/size");
    m.size_bytes = sectors.empty() ? 0 : std::stoull(sectors) * 512;
    std::unique_ptr<DIR, int (*)(DIR*)> slaves(opendir((base + "/slaves").c_str()), closedir);
    if (slaves) {
      while (dirent* s = readdir(slaves.get())) {
        if (s->d_name[0] != '.') m.slaves.emplace_back(s->d_name);
      }
    }
    return m;
  }
  return std::optional<Mapping>();
}

absl::StatusOr<bool> HasLuks2Header(const std::string& device_path) {
  ASSIGN_OR_RETURN(Cd cd, InitDevice(device_path));
  int r = crypt_load(cd.get(), CRYPT_LUKS2, nullptr);
  if (r == 0) return true;
  if (r == -EINVAL) return false;
  return LibError(r, Cat("reading the LUKS header of ", device_path));
}

absl::Status Format(const std::string& device_path, const SecretBytes& passphrase,
                    const LuksConfig& config) {
  RETURN_IF_ERROR(ValidateLuksConfig(config));
  if (passphrase.size() == 0) return InvalidField("passphrase", "is required");
  ASSIGN_OR_RETURN(Cd cd, InitDevice(device_path));
  crypt_pbkdf_type pbkdf{};
  pbkdf.type = CRYPT_KDF_ARGON2ID;
  pbkdf.hash = "sha256";
  pbkdf.max_memory_kb = config.pbkdf_memory_kib;
  pbkdf.parallel_threads = config.pbkdf_parallel;
  if (config.pbkdf_iterations > 0) {
    pbkdf.iterations = config.pbkdf_iterations;
    pbkdf.flags = CRYPT_PBKDF_NO_BENCHMARK;
  } else {
    pbkdf.time_ms = config.pbkdf_time_ms;
  }
  crypt_params_luks2 params{};
  params.pbkdf = &pbkdf;
  int r = crypt_format(cd.get(), CRYPT_LUKS2, "aes", "xts-plain64", nullptr, nullptr,
                       config.key_bits / 8, &params);
  if (r < 0) return LibError(r, Cat("writing a LUKS2 header on ", device_path));
  r = crypt_keyslot_add_by_volume_key(cd.get(), 0, nullptr, 0, passphrase.data(),
                                      passphrase.size());
  if (r < 0) return LibError(r, Cat("adding the key slot on ", device_path));
  return absl::OkStatus();
}

absl::Status Open(const std::string& device_path, const std::string& mapper_name,
                  const SecretBytes& passphrase, bool read_only) {
  if (passphrase.size() == 0) return InvalidField("passphrase", "is required");
  ASSIGN_OR_RETURN(Cd cd, InitDevice(device_path));
  int r = crypt_load(cd.get(), CRYPT_LUKS2, nullptr);
  if (r < 0) {
    return absl::FailedPreconditionError(Cat(
        device_path, " holds no LUKS2 header libcryptsetup can load (", std::strerror(-r), ")"));
  }
  const uint32_t flags = read_only ? CRYPT_ACTIVATE_READONLY : 0;
  r = crypt_activate_by_passphrase(cd.get(), mapper_name.c_str(), CRYPT_ANY_SLOT, passphrase.data(),
                                   passphrase.size(), flags);
  if (r == -EPERM) {
    return absl::PermissionDeniedError(
        Cat("the passphrase opens no key slot of the LUKS2 header on ", device_path));
  }
  if (r == -EEXIST) return absl::AlreadyExistsError(Cat(mapper_name, " is already active"));
  if (r < 0) return LibError(r, Cat("activating ", mapper_name));
  return absl::OkStatus();
}

absl::Status CheckPassphrase(const std::string& device_path, const SecretBytes& passphrase) {
  if (passphrase.size() == 0) return InvalidField("passphrase", "is required");
  ASSIGN_OR_RETURN(Cd cd, InitDevice(device_path));
  int r = crypt_load(cd.get(), CRYPT_LUKS2, nullptr);
  if (r < 0) return LibError(r, Cat("reading the LUKS2 header of ", device_path));
  r = crypt_activate_by_passphrase(cd.get(), nullptr, CRYPT_ANY_SLOT, passphrase.data(),
                                   passphrase.size(), 0);
  if (r == -EPERM) {
    return absl::PermissionDeniedError(
        Cat("the passphrase opens no key slot of the LUKS2 header on ", device_path));
  }
  if (r < 0) return LibError(r, Cat("checking the passphrase on ", device_path));
  return absl::OkStatus();
}

absl::StatusOr<bool> Close(const std::string& mapper_name) {
  crypt_status_info st = crypt_status(nullptr, mapper_name.c_str());
  if (st == CRYPT_INACTIVE) return false;
  if (st == CRYPT_INVALID) return absl::InternalError(Cat("cannot query ", mapper_name));
  crypt_device* raw = nullptr;
  int r = crypt_init_by_name(&raw, mapper_name.c_str());
  if (r == -ENODEV) return false;
  if (r < 0) return LibError(r, Cat("looking up ", mapper_name));
  Cd cd(raw);
  r = crypt_deactivate(cd.get(), mapper_name.c_str());
  if (r == -ENODEV) return false;
  if (r == -EBUSY) {
    return absl::FailedPreconditionError(Cat(mapper_name, " is still in use; not closing it"));
  }
  if (r < 0) return LibError(r, Cat("closing ", mapper_name));
  return true;
}

absl::Status Resize(const std::string& mapper_name) {
  crypt_device* raw = nullptr;
  int r = crypt_init_by_name(&raw, mapper_name.c_str());
  if (r < 0) return LibError(r, Cat("looking up ", mapper_name));
  Cd cd(raw);
  crypt_volume_key_keyring(cd.get(), 0);
  r = crypt_resize(cd.get(), mapper_name.c_str(), 0);
  if (r < 0) return LibError(r, Cat("resizing ", mapper_name));
  return absl::OkStatus();
}

}  // namespace lbcsi::helper::crypto
