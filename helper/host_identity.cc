#include "helper/host_identity.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/logging.h"
#include "common/status.h"
#include "common/strings.h"
#include "helper/fd.h"
#include "helper/transport/blockdev.h"
#include "helper/validate.h"

namespace lbcsi::helper {
namespace {

constexpr std::string_view kUuidNqnPrefix = "nqn.2014-08.org.nvmexpress:uuid:";

absl::Status WriteAtomically(const std::string& path, const std::string& body) {
  std::string tmp = path + ".tmp";
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd.valid()) return absl::InternalError(Cat("create ", tmp, ": ", std::strerror(errno)));
  if (write(fd.get(), body.data(), body.size()) != static_cast<ssize_t>(body.size()) ||
      fsync(fd.get()) != 0) {
    return absl::InternalError(Cat("write ", tmp, ": ", std::strerror(errno)));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(Cat("rename ", tmp, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

std::string RandomUuid() {
  unsigned char b[16];
  size_t got = 0;
  while (got < sizeof(b)) {
    ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += fmt::format("{:02x}", b[i]);
  }
  return out;
}

absl::StatusOr<HostIdentity> LoadOrCreateHostIdentity(const std::string& host_nqn_file) {
  size_t slash = host_nqn_file.rfind('/');
  if (host_nqn_file.empty() || host_nqn_file[0] != '/' || slash == std::string::npos) {
    return absl::InvalidArgumentError("--host-nqn-file must be an absolute path");
  }
  std::string dir = host_nqn_file.substr(0, slash);
  std::string hostid_file = dir + "/hostid";
  HostIdentity id;
  absl::StatusOr<std::string> nqn = ReadSysfs(host_nqn_file);
  if (nqn.ok()) {
    id.host_nqn = *nqn;
    RETURN_IF_ERROR(Annotate(ValidateNqn("host NQN", id.host_nqn), host_nqn_file));
    absl::StatusOr<std::string> hid = ReadSysfs(hostid_file);
    if (hid.ok()) {
      id.host_id = *hid;
    } else {
      std::string_view rest = id.host_nqn;
      if (ConsumePrefix(&rest, kUuidNqnPrefix) && ValidateUuid("", rest).ok()) {
        id.host_id = std::string(rest);
        RETURN_IF_ERROR(WriteAtomically(hostid_file, id.host_id + "\n"));
      }
    }
    return id;
  }
  if (!absl::IsNotFound(nqn.status())) return nqn.status();
  // A fresh machine: make an identity that a target's allow-list can name.
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InternalError(Cat("mkdir ", dir, ": ", std::strerror(errno)));
  }
  std::string uuid = RandomUuid();
  id.host_nqn = Cat(kUuidNqnPrefix, uuid);
  id.host_id = uuid;
  RETURN_IF_ERROR(WriteAtomically(hostid_file, id.host_id + "\n"));
  RETURN_IF_ERROR(WriteAtomically(host_nqn_file, id.host_nqn + "\n"));
  LOG(kInfo, "generated a host NQN", {"file", host_nqn_file}, {"host_nqn", id.host_nqn});
  return id;
}

}  // namespace lbcsi::helper
