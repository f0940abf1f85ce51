// HelperService: host encryption (FormatEncrypted, OpenEncrypted,
// CloseEncrypted). The LUKS2 work is in crypto/luks.h; here are the data-safety
// checks (docs/design.md rule 1) and the passphrase's short life: copied out of the
// request into a wiped-on-release buffer before anything else, so no early
// return leaves it behind, and never put into a log line or an error.

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/logging.h"
#include "common/status.h"
#include "common/strings.h"
#include "helper/crypto/luks.h"
#include "helper/crypto/secret.h"
#include "helper/ops/probe.h"
#include "helper/service.h"
#include "helper/transport/blockdev.h"
#include "helper/validate.h"

namespace lbcsi::helper {

absl::Status HelperService::DoFormatEncrypted(v1::FormatEncryptedRequest& req,
                                              v1::FormatEncryptedResponse* resp) {
  ASSIGN_OR_RETURN(
      crypto::SecretBytes passphrase,
      crypto::SecretBytes::TakeFrom("passphrase", req.mutable_passphrase()->mutable_value()));
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", req.volume_uuid()));
  RETURN_IF_ERROR(CheckMayWriteHeader(req.read_only(), req.multi_node(), req.proof(), "encrypt"));
  const std::string uuid = req.volume_uuid();
  ASSIGN_OR_RETURN(InFlight::Guard guard, Acquire(uuid, {}));
  ASSIGN_OR_RETURN(BlockDevice dev, AttachedDevice(uuid));
  ASSIGN_OR_RETURN(std::optional<BlockDevice> open, OpenMapping(dev));
  if (open) {  // open means a valid LUKS2 header: nothing to do
    resp->set_formatted(false);
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(std::string busy, InUseReason(dev));
  ASSIGN_OR_RETURN(UniqueFd probe_fd, OpenDevice(dev, O_RDONLY));
  if (busy.empty()) ioctl(probe_fd.get(), BLKFLSBUF, 0);  // what is on disk, not cached
  ASSIGN_OR_RETURN(ProbeResult pr, ProbeDevice(probe_fd.get()));
  const std::string path = Cat("/dev/", dev.name);
  if (pr.kind == v1::CONTENT_KIND_CRYPTO && pr.type == "crypto_LUKS") {
    // Rule 1: a LUKS header is opened, never written over.
    ASSIGN_OR_RETURN(bool luks2, crypto::HasLuks2Header(path));
    if (!luks2) {
      return absl::FailedPreconditionError(
          Cat("volume ", uuid, " holds a LUKS header that is not LUKS2; refusing to use it"));
    }
    resp->set_formatted(false);
    return absl::OkStatus();
  }
  if (pr.kind != v1::CONTENT_KIND_BLANK) {
    return absl::FailedPreconditionError(
        Cat("volume ", uuid, " already holds ", pr.type.empty() ? "a signature" : pr.type, " (",
            v1::ContentKind_Name(pr.kind), "); refusing to encrypt it"));
  }
  if (!busy.empty()) {
    return absl::FailedPreconditionError(Cat("volume ", uuid, " is in use: ", busy));
  }
  int ro = 0;
  if (ioctl(probe_fd.get(), BLKROGET, &ro) == 0 && ro) {
    return absl::FailedPreconditionError(Cat("volume ", uuid, "'s device is read-only"));
  }
  RETURN_IF_ERROR(CheckEndsReadZero(probe_fd.get(), uuid));  // rule 1, as in Format
  // O_EXCL: the kernel refuses if anything has the device mounted or claimed.
  RETURN_IF_ERROR(OpenDevice(dev, O_RDONLY | O_EXCL).status());
  LOG(kInfo, "writing a LUKS2 header", {"volume", uuid}, {"device", dev.name},
      {"key_bits", config_.luks.key_bits}, {"pbkdf_memory_kib", config_.luks.pbkdf_memory_kib});
  RETURN_IF_ERROR(crypto::Format(path, passphrase, config_.luks));
  {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenDevice(dev, O_RDWR));
    if (fsync(fd.get()) != 0) {
      return absl::InternalError(Cat("fsync after the LUKS2 format: ", std::strerror(errno)));
    }
  }
  resp->set_formatted(true);
  return absl::OkStatus();
}

absl::Status HelperService::DoOpenEncrypted(v1::OpenEncryptedRequest& req,
                                            v1::OpenEncryptedResponse* resp) {
  ASSIGN_OR_RETURN(
      crypto::SecretBytes passphrase,
      crypto::SecretBytes::TakeFrom("passphrase", req.mutable_passphrase()->mutable_value()));
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", req.volume_uuid()));
  const std::string uuid = req.volume_uuid();
  const std::string name = crypto::MapperName(uuid);
  ASSIGN_OR_RETURN(InFlight::Guard guard, Acquire(uuid, {}));
  ASSIGN_OR_RETURN(BlockDevice dev, AttachedDevice(uuid));
  resp->set_mapper_name(name);
  ASSIGN_OR_RETURN(std::optional<BlockDevice> open, OpenMapping(dev));
  if (!open) {
    RETURN_IF_ERROR(OpenDevice(dev, O_RDONLY).status());  // /dev/<name> is this volume
    absl::Status st = crypto::Open(Cat("/dev/", dev.name), name, passphrase, req.read_only());
    if (!st.ok() && !absl::IsAlreadyExists(st)) return st;
    ASSIGN_OR_RETURN(open, OpenMapping(dev));
    if (!open) return absl::InternalError(Cat(name, " did not appear after activation"));
    LOG(kInfo, "opened encrypted volume", {"volume", uuid}, {"mapping", open->name},
        {"read_only", req.read_only()});
  } else {
    // Open already: the caller must still know the passphrase (a repeated stage
    // proves it again; one PBKDF run).
    RETURN_IF_ERROR(crypto::CheckPassphrase(Cat("/dev/", dev.name), passphrase));
    resp->set_already_open(true);
  }
  resp->set_device_name(open->name);
  resp->set_size_bytes(open->size_bytes);
  return absl::OkStatus();
}

absl::Status HelperService::DoCloseEncrypted(const v1::CloseEncryptedRequest& req,
                                             v1::CloseEncryptedResponse* resp) {
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", req.volume_uuid()));
  const std::string uuid = req.volume_uuid();
  const std::string name = crypto::MapperName(uuid);
  ASSIGN_OR_RETURN(InFlight::Guard guard, Acquire(uuid, {}));
  ASSIGN_OR_RETURN(std::optional<BlockDevice> raw, transport_->FindDevice(uuid));
  if (raw) {
    RETURN_IF_ERROR(OpenMapping(*raw).status());  // refuses a foreign device of our name
  } else {
    // The volume vanished under its mapping: close it all the same, if it is
    // a LUKS2 mapping (the name alone is not proof).
    ASSIGN_OR_RETURN(std::optional<crypto::Mapping> m, crypto::FindMapping(name));
    if (!m) return absl::OkStatus();
    if (!m->dm_uuid.starts_with("CRYPT-LUKS2-")) {
      return absl::FailedPreconditionError(
          Cat("device-mapper device ", name, " is not a LUKS2 mapping; not closing it"));
    }
  }
  ASSIGN_OR_RETURN(bool was_open, crypto::Close(name));
  resp->set_was_open(was_open);
  if (was_open) LOG(kInfo, "closed encrypted volume", {"volume", uuid});
  return absl::OkStatus();
}

}  // namespace lbcsi::helper
