#include "helper/service.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/logging.h"
#include "common/plugin_dir.h"
#include "common/status.h"
#include "common/strings.h"
#include "helper/crypto/luks.h"
#include "helper/crypto/secret.h"
#include "helper/ops/probe.h"
#include "helper/paths/mounter.h"
#include "helper/paths/mountinfo.h"
#include "helper/paths/target.h"
#include "helper/transport/blockdev.h"
#include "helper/validate.h"

namespace lbcsi::helper {
namespace {

// xfs and ext4 resize ioctls (no xfsprogs headers on the build host).
struct XfsGeometryV1 {
  uint32_t blocksize, rtextsize, agblocks, agcount, logblocks, sectsize, inodesize, imaxpct;
  uint64_t datablocks, rtblocks, rtextents, logstart;
  unsigned char uuid[16];
  uint32_t sunit, swidth;
  int32_t version;
  uint32_t flags, logsectsize, rtsectsize, dirblocksize;
};
struct XfsGrowData {
  uint64_t newblocks;
  uint32_t imaxpct;
};
constexpr unsigned long kXfsGeometryV1 = _IOR('X', 100, XfsGeometryV1);
constexpr unsigned long kXfsGrowData = _IOW('X', 110, XfsGrowData);
constexpr unsigned long kExt4ResizeFs = _IOW('f', 16, uint64_t);

std::string PathKey(std::string_view path) {
  return Cat("path:", path);
}

// ext4 size from its primary superblock (offset 1024), read through the block
// device: the kernel keeps the superblock in the device's page cache, so a
// mounted filesystem's current size is what we read.
struct Ext4Size {
  uint64_t blocks = 0;
  uint32_t block_size = 0;
};
absl::StatusOr<Ext4Size> ReadExt4Size(int fd) {
  unsigned char sb[1024];
  if (pread(fd, sb, sizeof(sb), 1024) != static_cast<ssize_t>(sizeof(sb))) {
    return absl::InternalError(Cat("reading the ext4 superblock: ", std::strerror(errno)));
  }
  auto le32 = [&](size_t off) {
    return static_cast<uint32_t>(sb[off]) | static_cast<uint32_t>(sb[off + 1]) << 8 |
           static_cast<uint32_t>(sb[off + 2]) << 16 | static_cast<uint32_t>(sb[off + 3]) << 24;
  };
  if ((le32(0x38) & 0xffff) != 0xef53) return absl::InternalError("no ext4 superblock");
  uint32_t log = le32(0x18);
  if (log > 6) return absl::InternalError("ext4 superblock: bad block size");
  Ext4Size out;
  out.block_size = 1024u << log;
  out.blocks = le32(0x04);
  if (le32(0x60) & 0x80) out.blocks |= static_cast<uint64_t>(le32(0x150)) << 32;  // 64bit
  return out;
}

// A tail smaller than 1 MiB is not worth a resize: mke2fs and the kernel both
// leave off a last group too small to hold its own metadata, so such a gap
// would ask for a grow (and CAP_SYS_RESOURCE) on every stage without ever closing.
bool Ext4NeedsGrow(const Ext4Size& have, uint64_t device_blocks) {
  return device_blocks > have.blocks &&
         (device_blocks - have.blocks) * have.block_size >= (1u << 20);
}

std::string DescribeDev(dev_t d) {
  return Cat(major(d), ":", minor(d));
}

absl::Status SetDeviceReadOnly(const BlockDevice& dev, bool ro) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenDevice(dev, O_RDONLY));
  int cur = 0;
  if (ioctl(fd.get(), BLKROGET, &cur) != 0) {
    return absl::InternalError(Cat("BLKROGET ", dev.name, ": ", std::strerror(errno)));
  }
  if ((cur != 0) == ro) return absl::OkStatus();
  int v = ro ? 1 : 0;
  if (ioctl(fd.get(), BLKROSET, &v) != 0) {
    return absl::InternalError(Cat("BLKROSET ", dev.name, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Is `e` this volume's block device bound as a file (a block publish)?
bool IsDeviceBind(const MountEntry& e, const BlockDevice& dev) {
  return e.fs_type == "devtmpfs" && e.root == Cat("/", dev.name);
}

}  // namespace

HelperService::HelperService(ServiceConfig config, PathGuard guard,
                             kubeletpaths::KubeletLayouts layouts,
                             std::unique_ptr<Transport> transport, FsTools* fs_tools,
                             FormatState format_state)
    : config_(std::move(config)),
      guard_(std::move(guard)),
      layouts_(std::move(layouts)),
      transport_(std::move(transport)),
      fs_tools_(fs_tools),
      format_state_(std::move(format_state)) {}

HelperService::~HelperService() {
  std::unique_lock<std::mutex> lock(format_mu_);
  format_cv_.wait(lock, [&] { return formatting_.empty(); });
}

absl::Time HelperService::Deadline(const grpc::ServerContext* ctx) const {
  absl::Time now = absl::Now();
  absl::Time limit = now + config_.max_deadline;
  auto tp = ctx->deadline();
  if (tp == std::chrono::system_clock::time_point::max()) {
    return now + config_.default_deadline;
  }
  // Answer before the client gives up: keep a quarter of the budget (max 1 s)
  // for the reply, so a slow wait ends in our clear error, not a bare timeout.
  absl::Time client = absl::FromChrono(tp);
  absl::Duration margin = std::min(absl::Seconds(1), (client - now) / 4);
  client -= margin;
  return client < limit ? client : limit;
}

absl::StatusOr<InFlight::Guard> HelperService::Acquire(const std::string& volume_uuid,
                                                       std::vector<std::string> paths) {
  if (!volume_uuid.empty()) {
    std::lock_guard<std::mutex> g(format_mu_);
    if (formatting_.count(volume_uuid)) {
      return absl::AbortedError(
          Cat("volume ", volume_uuid, ": a format is still running; retry later"));
    }
  }
  std::vector<std::string> keys;
  if (!volume_uuid.empty()) keys.push_back(Cat("volume:", volume_uuid));
  for (std::string& p : paths) keys.push_back(PathKey(p));
  return inflight_.TryAcquire(std::move(keys));
}

absl::StatusOr<BlockDevice> HelperService::AttachedDevice(const std::string& volume_uuid) {
  ASSIGN_OR_RETURN(std::optional<BlockDevice> dev, transport_->FindDevice(volume_uuid));
  if (!dev) {
    return absl::FailedPreconditionError(Cat("volume ", volume_uuid, " is not attached"));
  }
  return *dev;
}

absl::StatusOr<PathGuard::Parent> HelperService::OpenKubeletPath(
    std::string_view field, std::string_view path,
    std::initializer_list<kubeletpaths::PathKind> kinds, kubeletpaths::KubeletPath* matched) const {
  ASSIGN_OR_RETURN(kubeletpaths::KubeletPath p, layouts_.Classify(field, path, kinds));
  if (matched != nullptr) *matched = p;
  return guard_.OpenParent(field, path);
}

absl::StatusOr<std::function<bool(const MountEntry&)>> HelperService::OurMounts() {
  ASSIGN_OR_RETURN(std::vector<BlockDevice> devices, transport_->Inventory());
  std::vector<BlockDevice> ours = devices;
  for (const BlockDevice& d : devices) {
    absl::StatusOr<std::optional<BlockDevice>> mapped = OpenMapping(d);
    if (mapped.ok() && mapped->has_value()) ours.push_back(**mapped);
  }
  return [ours = std::move(ours)](const MountEntry& e) {
    return std::any_of(ours.begin(), ours.end(), [&](const BlockDevice& d) {
      return (e.dev == d.dev && e.fs_type != "devtmpfs") || IsDeviceBind(e, d);
    });
  };
}

absl::StatusOr<std::optional<BlockDevice>> HelperService::OpenMapping(const BlockDevice& raw) {
  const std::string name = crypto::MapperName(raw.volume_uuid);
  ASSIGN_OR_RETURN(std::optional<crypto::Mapping> m, crypto::FindMapping(name));
  if (!m) return std::optional<BlockDevice>();
  // A mapping of our name must be a LUKS2 crypt target directly on this volume.
  const bool on_volume = m->slaves.size() == 1 && m->slaves[0] == raw.name;
  if (!m->dm_uuid.starts_with("CRYPT-LUKS2-") || !on_volume) {
    return absl::FailedPreconditionError(Cat("device-mapper device ", name, " (", m->kernel_name,
                                             ") is not a LUKS2 mapping of volume ", raw.volume_uuid,
                                             " (", raw.name, ")"));
  }
  BlockDevice out;
  out.volume_uuid = raw.volume_uuid;
  out.name = m->kernel_name;
  out.dev = m->dev;
  out.size_bytes = m->size_bytes;
  out.paths_total = raw.paths_total;
  out.paths_live = raw.paths_live;
  return std::optional<BlockDevice>(out);
}

absl::StatusOr<BlockDevice> HelperService::VolumeDevice(const std::string& volume_uuid,
                                                        bool encrypted) {
  ASSIGN_OR_RETURN(BlockDevice raw, AttachedDevice(volume_uuid));
  if (!encrypted) return raw;
  ASSIGN_OR_RETURN(std::optional<BlockDevice> mapped, OpenMapping(raw));
  if (!mapped) {
    return absl::FailedPreconditionError(
        Cat("encrypted volume ", volume_uuid, " is not open (OpenEncrypted first)"));
  }
  return *mapped;
}

absl::StatusOr<std::optional<BlockDevice>> HelperService::FindVolumeDevice(
    const std::string& volume_uuid, bool encrypted) {
  ASSIGN_OR_RETURN(std::optional<BlockDevice> raw, transport_->FindDevice(volume_uuid));
  if (!raw || !encrypted) return raw;
  return OpenMapping(*raw);
}

// ---- gRPC edge ----

#define LBCSI_HANDLER(Name, Call)                                                \
  do {                                                                           \
    absl::Status st = (Call);                                                    \
    if (!st.ok()) {                                                              \
      LOG(kWarn, #Name " failed", {"code", absl::StatusCodeToString(st.code())}, \
          {"error", StdView(st.message())});                                     \
    } else {                                                                     \
      LOG(kDebug, #Name " ok");                                                  \
    }                                                                            \
    return ToGrpcStatus(st);                                                     \
  } while (false)

grpc::Status HelperService::GetInfo(grpc::ServerContext*, const v1::GetInfoRequest*,
                                    v1::GetInfoResponse* resp) {
  resp->set_host_nqn(config_.host_nqn);
  resp->set_host_id(config_.host_id);
  resp->set_version(config_.version);
  resp->set_development_transport(transport_->Development());
  resp->set_native_multipath(ReadSysfs("/sys/module/nvme_core/parameters/multipath").value_or("") ==
                             "Y");
  for (const std::string& r : guard_.roots()) resp->add_roots(r);
  return grpc::Status::OK;
}
grpc::Status HelperService::PrepareSocketDir(grpc::ServerContext*,
                                             const v1::PrepareSocketDirRequest* req,
                                             v1::PrepareSocketDirResponse* resp) {
  LBCSI_HANDLER(PrepareSocketDir, DoPrepareSocketDir(*req, resp));
}
grpc::Status HelperService::Attach(grpc::ServerContext* ctx, const v1::AttachRequest* req,
                                   v1::AttachResponse* resp) {
  LBCSI_HANDLER(Attach, DoAttach(*req, Deadline(ctx), resp));
}
grpc::Status HelperService::Detach(grpc::ServerContext*, const v1::DetachRequest* req,
                                   v1::DetachResponse* resp) {
  LBCSI_HANDLER(Detach, DoDetach(*req, resp));
}
grpc::Status HelperService::Probe(grpc::ServerContext*, const v1::ProbeRequest* req,
                                  v1::ProbeResponse* resp) {
  LBCSI_HANDLER(Probe, DoProbe(*req, resp));
}
grpc::Status HelperService::Format(grpc::ServerContext* ctx, const v1::FormatRequest* req,
                                   v1::FormatResponse* resp) {
  LBCSI_HANDLER(Format, DoFormat(*req, Deadline(ctx), resp));
}
grpc::Status HelperService::Mount(grpc::ServerContext*, const v1::MountRequest* req,
                                  v1::MountResponse* resp) {
  LBCSI_HANDLER(Mount, DoMount(*req, resp));
}
grpc::Status HelperService::Unmount(grpc::ServerContext*, const v1::UnmountRequest* req,
                                    v1::UnmountResponse* resp) {
  LBCSI_HANDLER(Unmount, DoUnmount(*req, resp));
}
grpc::Status HelperService::Publish(grpc::ServerContext*, const v1::PublishRequest* req,
                                    v1::PublishResponse* resp) {
  LBCSI_HANDLER(Publish, DoPublish(*req, resp));
}
grpc::Status HelperService::Unpublish(grpc::ServerContext*, const v1::UnpublishRequest* req,
                                      v1::UnpublishResponse* resp) {
  LBCSI_HANDLER(Unpublish, DoUnpublish(*req, resp));
}
grpc::Status HelperService::ExpandFilesystem(grpc::ServerContext*,
                                             const v1::ExpandFilesystemRequest* req,
                                             v1::ExpandFilesystemResponse* resp) {
  LBCSI_HANDLER(ExpandFilesystem, DoExpand(*req, resp));
}
grpc::Status HelperService::Stats(grpc::ServerContext*, const v1::StatsRequest* req,
                                  v1::StatsResponse* resp) {
  LBCSI_HANDLER(Stats, DoStats(*req, resp));
}
grpc::Status HelperService::Inventory(grpc::ServerContext*, const v1::InventoryRequest*,
                                      v1::InventoryResponse* resp) {
  LBCSI_HANDLER(Inventory, DoInventory(resp));
}
// The encryption handlers wipe the passphrase inside gRPC's request object once
// copied: the request is ours for the call and is not read again by gRPC.
grpc::Status HelperService::FormatEncrypted(grpc::ServerContext*,
                                            const v1::FormatEncryptedRequest* req,
                                            v1::FormatEncryptedResponse* resp) {
  LBCSI_HANDLER(FormatEncrypted,
                DoFormatEncrypted(*const_cast<v1::FormatEncryptedRequest*>(req), resp));
}
grpc::Status HelperService::OpenEncrypted(grpc::ServerContext*, const v1::OpenEncryptedRequest* req,
                                          v1::OpenEncryptedResponse* resp) {
  LBCSI_HANDLER(OpenEncrypted, DoOpenEncrypted(*const_cast<v1::OpenEncryptedRequest*>(req), resp));
}
grpc::Status HelperService::CloseEncrypted(grpc::ServerContext*,
                                           const v1::CloseEncryptedRequest* req,
                                           v1::CloseEncryptedResponse* resp) {
  LBCSI_HANDLER(CloseEncrypted, DoCloseEncrypted(*req, resp));
}

namespace {

// <parent>/<name> as a root-owned 0750 directory: created when missing, taken over when it
// exists (an older install may have left it to the agent); a symlink or a file is refused.
absl::Status EnsureRootOwnedDir(int parent_fd, const std::string& parent, const char* name) {
  const std::string path = Cat(parent, "/", name);
  if (mkdirat(parent_fd, name, 0750) != 0 && errno != EEXIST) {
    return absl::InternalError(Cat("mkdir ", path, ": ", std::strerror(errno)));
  }
  // Chown before open: a directory someone else owns may not be readable to the helper.
  if (fchownat(parent_fd, name, 0, 0, AT_SYMLINK_NOFOLLOW) != 0) {
    return absl::InternalError(Cat("chown ", path, ": ", std::strerror(errno)));
  }
  UniqueFd fd(openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    return absl::FailedPreconditionError(
        Cat(path, " exists and is not a plain directory: ", std::strerror(errno)));
  }
  if (fchmod(fd.get(), 0750) != 0) {
    return absl::InternalError(Cat("chown/chmod ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

// ---- operations ----

absl::Status HelperService::DoPrepareSocketDir(const v1::PrepareSocketDirRequest& req,
                                               v1::PrepareSocketDirResponse* resp) {
  std::string dir;
  if (req.dir() == v1::SOCKET_DIR_PLUGIN) dir = config_.plugin_socket_dir;
  if (req.dir() == v1::SOCKET_DIR_REGISTRATION) dir = config_.registration_dir;
  if (req.dir() != v1::SOCKET_DIR_PLUGIN && req.dir() != v1::SOCKET_DIR_REGISTRATION) {
    return InvalidField("dir", "must be SOCKET_DIR_PLUGIN or SOCKET_DIR_REGISTRATION");
  }
  if (dir.empty()) {
    return absl::FailedPreconditionError("this socket directory is not configured in the helper");
  }
  ASSIGN_OR_RETURN(InFlight::Guard guard, Acquire("", {dir}));
  // Configured by the operator: create missing parents as root, the leaf for the agent.
  std::string cur;
  std::vector<std::string_view> parts = Split(std::string_view(dir).substr(1), '/');
  for (size_t i = 0; i < parts.size(); ++i) {
    cur += "/";
    cur += parts[i];
    mode_t mode = i + 1 == parts.size() ? 0750 : 0755;
    if (mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) {
      return absl::InternalError(Cat("mkdir ", cur, ": ", std::strerror(errno)));
    }
  }
  // The helper keeps no DAC override, so a directory the agent already owns (0750) is closed
  // to it. Take it back first (chown needs access to the parent only), add what belongs
  // inside, then hand it over again.
  const size_t slash = dir.rfind('/');
  const std::string parent = slash == 0 ? "/" : dir.substr(0, slash);
  const std::string leaf = dir.substr(slash + 1);
  UniqueFd parent_fd(open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent_fd.valid()) {
    return absl::InternalError(Cat("open ", parent, ": ", std::strerror(errno)));
  }
  if (fchownat(parent_fd.get(), leaf.c_str(), 0, 0, AT_SYMLINK_NOFOLLOW) != 0) {
    return absl::InternalError(Cat("chown ", dir, ": ", std::strerror(errno)));
  }
  UniqueFd fd(
      openat(parent_fd.get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    return absl::FailedPreconditionError(
        Cat(dir, " is not a plain directory: ", std::strerror(errno)));
  }
  if (fchmod(fd.get(), 0750) != 0) {
    return absl::InternalError(Cat("chmod ", dir, ": ", std::strerror(errno)));
  }
  if (req.dir() == v1::SOCKET_DIR_PLUGIN) {
    RETURN_IF_ERROR(EnsureRootOwnedDir(fd.get(), dir, kEphemeralDirName));
  }
  // Group root: the helper reaches the inline volumes' mount points through it.
  if (fchown(fd.get(), config_.agent_uid, 0) != 0 || fchmod(fd.get(), 0750) != 0) {
    return absl::InternalError(Cat("chown/chmod ", dir, ": ", std::strerror(errno)));
  }
  resp->set_path(dir);
  return absl::OkStatus();
}

absl::Status HelperService::DoAttach(const v1::AttachRequest& req, absl::Time deadline,
                                     v1::AttachResponse* resp) {
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", req.volume_uuid()));
  RETURN_IF_ERROR(ValidateNqn("subsystem_nqn", req.subsystem_nqn()));
  if (req.nvme_endpoints_size() + req.discovery_endpoints_size() == 0 &&
      !transport_->Development()) {
    return InvalidField("nvme_endpoints", "at least one NVMe or discovery endpoint is required");
  }
  if (static_cast<size_t>(req.nvme_endpoints_size()) > kMaxEndpoints ||
      static_cast<size_t>(req.discovery_endpoints_size()) > kMaxEndpoints) {
    return InvalidField("nvme_endpoints", "too many endpoints (max 16)");
  }
  AttachSpec spec;
  for (int i = 0; i < req.nvme_endpoints_size(); ++i) {
    RETURN_IF_ERROR(ValidateAddress(Cat("nvme_endpoints[", i, "]"), req.nvme_endpoints(i)));
    spec.nvme_endpoints.push_back(req.nvme_endpoints(i));
  }
  for (int i = 0; i < req.discovery_endpoints_size(); ++i) {
    RETURN_IF_ERROR(
        ValidateAddress(Cat("discovery_endpoints[", i, "]"), req.discovery_endpoints(i)));
    spec.discovery_endpoints.push_back(req.discovery_endpoints(i));
  }
  const v1::ConnectOptions& o = req.options();
  if (o.has_ctrl_loss_tmo_seconds() &&
      (o.ctrl_loss_tmo_seconds() < -1 || o.ctrl_loss_tmo_seconds() > 86400)) {
    return InvalidField("options.ctrl_loss_tmo_seconds", "must be -1 or 0..86400");
  }
  if (o.has_fast_io_fail_tmo_seconds() &&
      (o.fast_io_fail_tmo_seconds() < -1 || o.fast_io_fail_tmo_seconds() > 86400)) {
    return InvalidField("options.fast_io_fail_tmo_seconds", "must be -1 or 0..86400");
  }
  if (o.has_reconnect_delay_seconds() &&
      (o.reconnect_delay_seconds() < 1 || o.reconnect_delay_seconds() > 3600)) {
    return InvalidField("options.reconnect_delay_seconds", "must be 1..3600");
  }
  if (o.has_nr_io_queues() && (o.nr_io_queues() < 1 || o.nr_io_queues() > 1024)) {
    return InvalidField("options.nr_io_queues", "must be 1..1024");
  }
  ASSIGN_OR_RETURN(InFlight::Guard guard, Acquire(req.volume_uuid(), {}));
  spec.volume_uuid = req.volume_uuid();
  spec.subsystem_nqn = req.subsystem_nqn();
  spec.options = o;
  spec.deadline = deadline;
  ASSIGN_OR_RETURN(BlockDevice dev, transport_->Attach(spec));
  resp->set_device_name(dev.name);
  resp->set_size_bytes(dev.size_bytes);
  resp->set_paths_total(dev.paths_total);
  resp->set_paths_live(dev.paths_live);
  return absl::OkStatus();
}

absl::Status HelperService::DoDetach(const v1::DetachRequest& req, v1::DetachResponse* resp) {
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", req.volume_uuid()));
  // Empty: the transport derives the subsystem from the attached namespace.
  if (!req.subsystem_nqn().empty()) {
    RETURN_IF_ERROR(ValidateNqn("subsystem_nqn", req.subsystem_nqn()));
  }
  ASSIGN_OR_RETURN(InFlight::Guard guard, Acquire(req.volume_uuid(), {}));
  ASSIGN_OR_RETURN(DetachResult r, transport_->Detach(req.volume_uuid(), req.subsystem_nqn()));
  resp->set_was_attached(r.was_attached);
  resp->set_controllers_disconnected(r.controllers_disconnected);
  return absl::OkStatus();
}

absl::Status HelperService::DoProbe(const v1::ProbeRequest& req, v1::ProbeResponse* resp) {
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", req.volume_uuid()));
  ASSIGN_OR_RETURN(InFlight::Guard guard, Acquire(req.volume_uuid(), {}));
  ASSIGN_OR_RETURN(BlockDevice dev, VolumeDevice(req.volume_uuid(), req.encrypted()));
  ASSIGN_OR_RETURN(UniqueFd fd, OpenDevice(dev, O_RDONLY));
  ASSIGN_OR_RETURN(ProbeResult pr, ProbeDevice(fd.get()));
  ASSIGN_OR_RETURN(std::optional<v1::FsType> unfinished, format_state_.Get(req.volume_uuid()));
  ASSIGN_OR_RETURN(uint64_t size, DeviceSize(fd.get()));
  resp->set_kind(pr.kind);
  resp->set_type(pr.type);
  resp->set_size_bytes(size);
  resp->set_format_in_progress(unfinished.has_value());
  return absl::OkStatus();
}

absl::Status HelperService::CheckMayWriteHeader(bool read_only, bool multi_node,
                                                v1::NeverWrittenProof proof,
                                                std::string_view what) {
  if (read_only || multi_node) {
    return absl::FailedPreconditionError("read-only and multi-node volumes are never formatted");
  }
  if (proof != v1::NEVER_WRITTEN_PROOF_WRITTEN_BYTES_ZERO &&
      proof != v1::NEVER_WRITTEN_PROOF_CREATED_EMPTY) {
    return absl::FailedPreconditionError(
        Cat("refusing to ", what, " without proof that the volume was never written"));
  }
  return absl::OkStatus();
}

absl::Status HelperService::DoFormat(const v1::FormatRequest& req, absl::Time deadline,
                                     v1::FormatResponse* resp) {
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", req.volume_uuid()));
  if (req.fs_type() != v1::FS_TYPE_EXT4 && req.fs_type() != v1::FS_TYPE_XFS) {
    return InvalidField("fs_type", "must be FS_TYPE_EXT4 or FS_TYPE_XFS");
  }
  ASSIGN_OR_RETURN(mkfsopts::MkfsOptions mkfs, ValidateMkfsOptions(req.mkfs(), req.fs_type()));
  RETURN_IF_ERROR(CheckMayWriteHeader(req.read_only(), req.multi_node(), req.proof(), "format"));
  const std::string uuid = req.volume_uuid();
  ASSIGN_OR_RETURN(InFlight::Guard guard, Acquire(uuid, {}));
  ASSIGN_OR_RETURN(BlockDevice dev, VolumeDevice(uuid, req.encrypted()));
  ASSIGN_OR_RETURN(std::string busy, InUseReason(dev));
  ASSIGN_OR_RETURN(std::optional<v1::FsType> unfinished, format_state_.Get(uuid));
  ASSIGN_OR_RETURN(UniqueFd probe_fd, OpenDevice(dev, O_RDONLY));
  if (busy.empty()) ioctl(probe_fd.get(), BLKFLSBUF, 0);  // probe what is on disk, not cached
  ASSIGN_OR_RETURN(ProbeResult pr, ProbeDevice(probe_fd.get()));
  const std::string want(FsTypeName(req.fs_type()));
  bool resume = false;
  if (unfinished) {
    // The one allowed re-format: our own interrupted mkfs of the same type.
    bool ours = pr.kind == v1::CONTENT_KIND_BLANK ||
                (pr.kind == v1::CONTENT_KIND_FILESYSTEM && pr.type == want);
    if (!ours || (*unfinished != v1::FS_TYPE_UNSPECIFIED && *unfinished != req.fs_type())) {
      return absl::FailedPreconditionError(
          Cat("volume ", uuid, " has an unfinished format record but now holds ",
              pr.type.empty() ? "nothing recognisable" : pr.type, "; refusing to format"));
    }
    resume = true;
  } else if (pr.kind == v1::CONTENT_KIND_FILESYSTEM && pr.type == want) {
    resp->set_formatted(false);
    return absl::OkStatus();
  } else if (pr.kind != v1::CONTENT_KIND_BLANK) {
    return absl::FailedPreconditionError(
        Cat("volume ", uuid, " already holds ", pr.type.empty() ? "a signature" : pr.type, " (",
            v1::ContentKind_Name(pr.kind), "); requested ", want, "; refusing to format"));
  }
  if (!busy.empty()) {
    return absl::FailedPreconditionError(Cat("volume ", uuid, " is in use: ", busy));
  }
  int ro = 0;
  if (ioctl(probe_fd.get(), BLKROGET, &ro) == 0 && ro) {
    return absl::FailedPreconditionError(Cat("volume ", uuid, "'s device is read-only"));
  }
  // Rule 1, the part the helper proves itself beyond the blank probe: data
  // without a signature usually starts or ends in these ranges. Not for a LUKS
  // mapping (fresh ciphertext never reads as zeros; the raw device was checked
  // before luksFormat) nor for finishing our own interrupted format.
  if (!resume && !req.encrypted()) RETURN_IF_ERROR(CheckEndsReadZero(probe_fd.get(), uuid));
  // O_EXCL: the kernel refuses if anything has the device mounted or claimed.
  // Released again at once: mkfs takes its own exclusive open.
  RETURN_IF_ERROR(OpenDevice(dev, O_RDONLY | O_EXCL).status());
  ASSIGN_OR_RETURN(UniqueFd dev_fd, OpenDevice(dev, O_RDWR));
  if (!fs_tools_) return absl::FailedPreconditionError("no filesystem tools configured");
  RETURN_IF_ERROR(format_state_.Record(uuid, req.fs_type()));
  {
    std::lock_guard<std::mutex> g(format_mu_);
    formatting_.insert(uuid);
  }
  // mkfs is not killed by the request deadline: it finishes in the background
  // and keeps the volume busy (ABORTED) until then.
  struct Job {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    absl::Status status;
  };
  auto job = std::make_shared<Job>();
  LOG(kInfo, "formatting", {"volume", uuid}, {"fs", want}, {"device", dev.name},
      {"resume", resume});
  std::thread([this, job, uuid, resume, mkfs, fs = req.fs_type(),
               fd = std::move(dev_fd)]() mutable {
    absl::Status st = fs_tools_->RunMkfs(fs, fd.get(), resume, mkfs);
    if (st.ok() && fsync(fd.get()) != 0) {
      st = absl::InternalError(Cat("fsync after mkfs: ", std::strerror(errno)));
    }
    fd.Reset();
    if (st.ok()) st = format_state_.Clear(uuid);
    LOG(kInfo, "format finished", {"volume", uuid}, {"status", st});
    // Unmark the volume before the caller can hear "done": its next call (Mount)
    // must not find the format still running.
    std::lock_guard<std::mutex> g(format_mu_);
    formatting_.erase(uuid);
    {
      std::lock_guard<std::mutex> jg(job->mu);
      job->done = true;
      job->status = st;
    }
    job->cv.notify_all();
    format_cv_.notify_all();
  }).detach();
  std::unique_lock<std::mutex> lock(job->mu);
  if (!job->cv.wait_until(lock, absl::ToChronoTime(deadline), [&] { return job->done; })) {
    return absl::DeadlineExceededError(
        Cat("mkfs of volume ", uuid, " is still running; it will finish; retry later"));
  }
  RETURN_IF_ERROR(job->status);
  resp->set_formatted(true);
  resp->set_resumed_interrupted_format(resume);
  return absl::OkStatus();
}

absl::Status HelperService::DoMount(const v1::MountRequest& req, v1::MountResponse* resp) {
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", req.volume_uuid()));
  if (req.fs_type() != v1::FS_TYPE_EXT4 && req.fs_type() != v1::FS_TYPE_XFS) {
    return InvalidField("fs_type", "must be FS_TYPE_EXT4 or FS_TYPE_XFS");
  }
  // A label is always validated, and applied only where SELinux labels mounts
  // (a host without it mounts without context=, and a repeat must match that).
  if (!req.selinux_context().empty()) {
    RETURN_IF_ERROR(ValidateSelinuxLabel("selinux_context", req.selinux_context()));
  }
  const bool label = !req.selinux_context().empty() && SelinuxLabelsMounts();
  ASSIGN_OR_RETURN(MountOptionSet opts,
                   BuildMountOptions(req.fs_type(), req.read_only(), req.options(),
                                     label ? req.selinux_context() : "", /*staging=*/true));
  bool created = false;
  kubeletpaths::KubeletPath layout;
  ASSIGN_OR_RETURN(layout, layouts_.Classify("staging_path", req.staging_path(),
                                             kubeletpaths::kMountStagingKinds));
  if (req.create_staging_path() && layout.kind != kubeletpaths::PathKind::kEphemeral) {
    return InvalidField("create_staging_path",
                        "only the driver's own inline-volume directories are created; kubelet "
                        "creates its staging paths");
  }
  ASSIGN_OR_RETURN(PathGuard::Parent target,
                   req.create_staging_path()
                       ? guard_.CreateDirectory("staging_path", req.staging_path(), &created)
                       : guard_.OpenParent("staging_path", req.staging_path()));
  resp->set_staging_path_created(created);
  ASSIGN_OR_RETURN(InFlight::Guard guard, Acquire(req.volume_uuid(), {target.path}));
  ASSIGN_OR_RETURN(BlockDevice dev, VolumeDevice(req.volume_uuid(), req.encrypted()));
  const std::string want(FsTypeName(req.fs_type()));

  absl::StatusOr<std::optional<MountEntry>> existing = MountAt(target);
  if (absl::IsNotFound(existing.status())) {
    return absl::FailedPreconditionError(
        Cat("staging_path ", target.path, " does not exist (kubelet creates it)"));
  }
  RETURN_IF_ERROR(existing.status());
  if (existing->has_value()) {
    const MountEntry& e = **existing;
    if (e.dev != dev.dev) {
      return absl::FailedPreconditionError(Cat("staging_path ", target.path, " has ",
                                               DescribeDev(e.dev), " (", e.source,
                                               ") mounted, not volume ", req.volume_uuid()));
    }
    if (e.fs_type != want || e.root != "/") {
      return absl::FailedPreconditionError(Cat("staging_path ", target.path,
                                               " has the volume mounted as ", e.fs_type, " root ",
                                               e.root, "; requested ", want));
    }
    if (e.read_only() != req.read_only()) {
      return absl::FailedPreconditionError(Cat("staging_path ", target.path, " is mounted ",
                                               e.read_only() ? "read-only" : "read-write",
                                               "; the request asks otherwise"));
    }
    if (label && !Contains(e.super_options, "context=")) {
      return absl::FailedPreconditionError(
          Cat("staging_path ", target.path, " is mounted without the requested SELinux context"));
    }
    resp->set_already_mounted(true);
    return absl::OkStatus();
  }

  ASSIGN_OR_RETURN(std::optional<v1::FsType> unfinished, format_state_.Get(req.volume_uuid()));
  if (unfinished) {
    return absl::FailedPreconditionError(
        Cat("volume ", req.volume_uuid(),
            " has a format that started and never finished; Format it again before mounting"));
  }
  {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenDevice(dev, O_RDONLY));
    ASSIGN_OR_RETURN(ProbeResult pr, ProbeDevice(fd.get()));
    if (pr.kind != v1::CONTENT_KIND_FILESYSTEM || pr.type != want) {
      return absl::FailedPreconditionError(
          Cat("volume ", req.volume_uuid(), " holds ",
              pr.kind == v1::CONTENT_KIND_BLANK ? "no filesystem" : pr.type, ", not ", want));
    }
  }
  ASSIGN_OR_RETURN(std::string busy, InUseReason(dev));
  if (req.read_only()) {
    RETURN_IF_ERROR(SetDeviceReadOnly(dev, true));  // docs/design.md rule 7
  } else if (busy.empty()) {
    RETURN_IF_ERROR(SetDeviceReadOnly(dev, false));  // a previous read-only stage left it set
    if (want == "ext4") RETURN_IF_ERROR(PreenBeforeMount(req.volume_uuid(), dev));
  }
  ASSIGN_OR_RETURN(TargetState state, InspectNewTarget("staging_path", target));
  if (state != TargetState::kEmptyDirectory) {
    return absl::FailedPreconditionError(
        Cat("staging_path ", target.path, " is not an empty directory"));
  }
  ASSIGN_OR_RETURN(UniqueFd leaf, PathGuard::OpenLeaf(target));
  RETURN_IF_ERROR(MountFilesystem(Cat("/dev/", dev.name), leaf, want, opts.options));
  absl::StatusOr<std::optional<MountEntry>> now = MountAt(target);
  if (!now.ok() || !now->has_value() || (*now)->dev != dev.dev) {
    // Undo what this call mounted, and only that: the top mount if it is our device.
    const absl::Status undone =
        UnmountAll(target, [&](const MountEntry& e) { return e.dev == dev.dev; }).status();
    return absl::InternalError(Cat("after mounting, ", target.path,
                                   " does not show the volume; the mount was undone (",
                                   undone.ok() ? "ok" : std::string(undone.message()), ")"));
  }
  LOG(kInfo, "mounted", {"volume", req.volume_uuid()}, {"path", target.path}, {"fs", want},
      {"options", opts.options});
  return absl::OkStatus();
}

absl::Status HelperService::PreenBeforeMount(const std::string& volume_uuid,
                                             const BlockDevice& dev) {
  if (!fs_tools_) return absl::OkStatus();
  // docs/design.md "Filesystem check before mount": only on a read-write
  // stage of a device nothing else uses, so the repair cannot race a reader.
  // O_EXCL as in Format: released at once, e2fsck takes its own exclusive open.
  RETURN_IF_ERROR(OpenDevice(dev, O_RDONLY | O_EXCL).status());
  ASSIGN_OR_RETURN(UniqueFd fd, OpenDevice(dev, O_RDWR));
  absl::StatusOr<PreenResult> preen = fs_tools_->PreenExt4(fd.get());
  if (!preen.ok()) {
    LOG(kWarn, "filesystem check refused the mount", {"volume", volume_uuid}, {"device", dev.name},
        {"status", preen.status().ToString()});
    return absl::Status(preen.status().code(),
                        Cat("volume ", volume_uuid, ": ", preen.status().message()));
  }
  std::lock_guard<std::mutex> lock(preen_mu_);
  if (preen->repaired) {
    LOG(kWarn, "e2fsck repaired the filesystem before mounting", {"volume", volume_uuid},
        {"device", dev.name}, {"output", preen->output_tail});
    preen_notes_[volume_uuid] = "e2fsck -p repaired the filesystem before the last mount";
  } else {
    preen_notes_.erase(volume_uuid);
  }
  return absl::OkStatus();
}

absl::Status HelperService::DoUnmount(const v1::UnmountRequest& req, v1::UnmountResponse* resp) {
  absl::StatusOr<PathGuard::Parent> target =
      OpenKubeletPath("staging_path", req.staging_path(), kubeletpaths::kStagingKinds);
  if (absl::IsNotFound(target.status())) return absl::OkStatus();  // already gone
  RETURN_IF_ERROR(target.status());
  ASSIGN_OR_RETURN(InFlight::Guard guard, Acquire("", {target->path}));
  ASSIGN_OR_RETURN(auto ours, OurMounts());
  ASSIGN_OR_RETURN(int n, UnmountAll(*target, ours));
  resp->set_was_mounted(n > 0);
  if (!req.remove_staging_path()) return absl::OkStatus();
  // Only an empty directory goes: rmdir refuses anything else, and never
  // follows a symlink in the last component.
  struct stat st {};
  if (fstatat(target->fd.get(), target->leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::InternalError(Cat("stat ", target->path, ": ", std::strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        Cat("staging_path ", target->path, " is not a directory; not removing it"));
  }
  if (unlinkat(target->fd.get(), target->leaf.c_str(), AT_REMOVEDIR) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    if (errno == ENOTEMPTY || errno == EEXIST) {
      return absl::FailedPreconditionError(
          Cat("staging_path ", target->path, " is not empty after unmount; not removing data"));
    }
    return absl::InternalError(Cat("rmdir ", target->path, ": ", std::strerror(errno)));
  }
  resp->set_staging_path_removed(true);
  return absl::OkStatus();
}

absl::Status HelperService::DoPublish(const v1::PublishRequest& req, v1::PublishResponse* resp) {
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", req.volume_uuid()));
  const bool block = req.source_case() == v1::PublishRequest::kBlockDevice;
  if (req.source_case() == v1::PublishRequest::SOURCE_NOT_SET || (block && !req.block_device())) {
    return InvalidField("source", "set staging_path (filesystem) or block_device=true");
  }
  ASSIGN_OR_RETURN(MountOptionSet opts,
                   BuildMountOptions(v1::FS_TYPE_UNSPECIFIED, req.read_only(), req.options(),
                                     req.selinux_context(), /*staging=*/false));
  ASSIGN_OR_RETURN(PathGuard::Parent target,
                   OpenKubeletPath("target_path", req.target_path(),
                                   {block ? kubeletpaths::PathKind::kPublishBlock
                                          : kubeletpaths::PathKind::kPublishMount}));
  std::optional<PathGuard::Parent> staging;
  if (!block) {
    ASSIGN_OR_RETURN(staging, OpenKubeletPath("staging_path", req.staging_path(),
                                              kubeletpaths::kMountStagingKinds));
    if (staging->path == target.path) return InvalidField("target_path", "equals staging_path");
  }
  ASSIGN_OR_RETURN(
      InFlight::Guard guard,
      Acquire(req.volume_uuid(), block ? std::vector<std::string>{target.path}
                                       : std::vector<std::string>{target.path, staging->path}));
  ASSIGN_OR_RETURN(BlockDevice dev, VolumeDevice(req.volume_uuid(), req.encrypted()));

  // Source: the staged mount of this volume, or its device node.
  UniqueFd source;
  if (block) {
    // A half-made filesystem is never handed to a pod, as a device no more than as a mount.
    ASSIGN_OR_RETURN(std::optional<v1::FsType> unfinished, format_state_.Get(req.volume_uuid()));
    if (unfinished) {
      return absl::FailedPreconditionError(
          Cat("volume ", req.volume_uuid(), " has an unfinished format; stage it to finish"));
    }
    ASSIGN_OR_RETURN(source, OpenDevice(dev, O_PATH));
  } else {
    ASSIGN_OR_RETURN(std::optional<MountEntry> staged, MountAt(*staging));
    if (!staged || staged->dev != dev.dev || staged->root != "/") {
      return absl::FailedPreconditionError(Cat("staging_path ", staging->path,
                                               " does not hold volume ", req.volume_uuid(),
                                               "; stage it first"));
    }
    ASSIGN_OR_RETURN(source, PathGuard::OpenLeaf(*staging));
  }

  // Target: what is mounted there already (ours: a repeat), else absent or empty, never data.
  absl::StatusOr<std::optional<MountEntry>> existing = MountAt(target);
  if (!existing.ok() && !absl::IsNotFound(existing.status())) return existing.status();
  if (existing.ok() && existing->has_value()) {
    const MountEntry& e = **existing;
    bool same = block ? IsDeviceBind(e, dev) : e.dev == dev.dev && e.root == "/";
    if (!same) {
      return absl::FailedPreconditionError(Cat("target_path ", target.path,
                                               " already has something else mounted (", e.fs_type,
                                               "); refusing to mount over it"));
    }
    if (e.read_only() != req.read_only()) {
      return absl::FailedPreconditionError(Cat("target_path ", target.path, " is published ",
                                               e.read_only() ? "read-only" : "read-write",
                                               "; the request asks otherwise"));
    }
    resp->set_already_published(true);
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(TargetState state, InspectNewTarget("target_path", target));
  if (state == (block ? TargetState::kEmptyDirectory : TargetState::kEmptyFile)) {
    return absl::FailedPreconditionError(Cat("target_path ", target.path, " exists and is not ",
                                             block ? "a regular file" : "a directory"));
  }
  if (state == TargetState::kAbsent) {
    if (block) {
      UniqueFd f(openat(target.fd.get(), target.leaf.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640));
      if (!f.valid())
        return absl::InternalError(Cat("create ", target.path, ": ", std::strerror(errno)));
    } else if (mkdirat(target.fd.get(), target.leaf.c_str(), 0750) != 0) {
      return absl::InternalError(Cat("mkdir ", target.path, ": ", std::strerror(errno)));
    }
  }
  if (block && req.read_only()) RETURN_IF_ERROR(SetDeviceReadOnly(dev, true));
  // A block publish IS a device node: kubelet opens it to map it into the pod, so no nodev.
  RETURN_IF_ERROR(BindMount(source, target, block ? opts.flags & ~MS_NODEV : opts.flags));
  LOG(kInfo, "published", {"volume", req.volume_uuid()}, {"target", target.path}, {"block", block},
      {"read_only", req.read_only()});
  return absl::OkStatus();
}

absl::Status HelperService::DoUnpublish(const v1::UnpublishRequest& req,
                                        v1::UnpublishResponse* resp) {
  kubeletpaths::KubeletPath layout;
  absl::StatusOr<PathGuard::Parent> target =
      OpenKubeletPath("target_path", req.target_path(), kubeletpaths::kPublishKinds, &layout);
  if (absl::IsNotFound(target.status())) return absl::OkStatus();  // already gone
  RETURN_IF_ERROR(target.status());
  ASSIGN_OR_RETURN(InFlight::Guard guard, Acquire("", {target->path}));
  ASSIGN_OR_RETURN(auto ours, OurMounts());
  ASSIGN_OR_RETURN(int n, UnmountAll(*target, ours));
  resp->set_was_mounted(n > 0);
  // Remove only what Publish would have created for this layout: the empty mount directory of
  // a filesystem publish, the empty file of a block publish.
  const bool block = layout.kind == kubeletpaths::PathKind::kPublishBlock;
  struct stat st {};
  if (fstatat(target->fd.get(), target->leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::InternalError(Cat("stat ", target->path, ": ", std::strerror(errno)));
  }
  if (!block && S_ISDIR(st.st_mode)) {
    if (unlinkat(target->fd.get(), target->leaf.c_str(), AT_REMOVEDIR) != 0) {
      if (errno == ENOTEMPTY || errno == EEXIST) {
        return absl::FailedPreconditionError(
            Cat("target_path ", target->path, " is not empty after unmount; not removing data"));
      }
      return absl::InternalError(Cat("rmdir ", target->path, ": ", std::strerror(errno)));
    }
  } else if (block && S_ISREG(st.st_mode) && st.st_size == 0) {
    if (unlinkat(target->fd.get(), target->leaf.c_str(), 0) != 0 && errno != ENOENT) {
      return absl::InternalError(Cat("unlink ", target->path, ": ", std::strerror(errno)));
    }
  } else {
    return absl::FailedPreconditionError(Cat("target_path ", target->path, " is not an empty ",
                                             block ? "file" : "directory", "; not removing it"));
  }
  resp->set_target_removed(true);
  return absl::OkStatus();
}

absl::Status HelperService::DoExpand(const v1::ExpandFilesystemRequest& req,
                                     v1::ExpandFilesystemResponse* resp) {
  RETURN_IF_ERROR(ValidateUuid("volume_uuid", req.volume_uuid()));
  std::optional<PathGuard::Parent> target;
  if (!req.mount_path().empty()) {
    ASSIGN_OR_RETURN(
        target, OpenKubeletPath(
                    "mount_path", req.mount_path(),
                    {kubeletpaths::PathKind::kStageMount, kubeletpaths::PathKind::kStageMountLegacy,
                     kubeletpaths::PathKind::kEphemeral, kubeletpaths::PathKind::kPublishMount}));
  }
  ASSIGN_OR_RETURN(InFlight::Guard guard,
                   Acquire(req.volume_uuid(), target ? std::vector<std::string>{target->path}
                                                     : std::vector<std::string>{}));
  ASSIGN_OR_RETURN(BlockDevice dev, AttachedDevice(req.volume_uuid()));
  RETURN_IF_ERROR(transport_->RefreshSize(dev));
  RETURN_IF_ERROR(FillFromSysfs(&dev));
  resp->set_device_size_bytes(dev.size_bytes);
  if (req.encrypted()) {
    // The LUKS mapping first (its table holds the key: no passphrase needed),
    // then everything below works on the decrypted device.
    // crypt_resize to the full device is a no-op when the mapping already fills it.
    RETURN_IF_ERROR(VolumeDevice(req.volume_uuid(), true).status());
    RETURN_IF_ERROR(crypto::Resize(crypto::MapperName(req.volume_uuid())));
    ASSIGN_OR_RETURN(dev, VolumeDevice(req.volume_uuid(), true));
    resp->set_decrypted_size_bytes(dev.size_bytes);
  }
  if (!target) return absl::OkStatus();

  ASSIGN_OR_RETURN(std::optional<MountEntry> mounted, MountAt(*target));
  if (!mounted || mounted->dev != dev.dev) {
    return absl::FailedPreconditionError(
        Cat("mount_path ", target->path, " does not have volume ", req.volume_uuid(), " mounted"));
  }
  if (mounted->read_only()) {
    return absl::FailedPreconditionError(Cat("mount_path ", target->path, " is read-only"));
  }
  UniqueFd dir(openat(target->fd.get(), target->leaf.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir.valid())
    return absl::InternalError(Cat("open ", target->path, ": ", std::strerror(errno)));
  if (mounted->fs_type == "xfs") {
    XfsGeometryV1 geo{};
    if (ioctl(dir.get(), kXfsGeometryV1, &geo) != 0) {
      return absl::InternalError(Cat("xfs geometry: ", std::strerror(errno)));
    }
    uint64_t blocks = dev.size_bytes / geo.blocksize;
    if (blocks > geo.datablocks) {
      resp->set_grown(true);
      XfsGrowData grow{blocks, geo.imaxpct};
      if (ioctl(dir.get(), kXfsGrowData, &grow) != 0) {
        return absl::InternalError(Cat("xfs grow to ", blocks, " blocks: ", std::strerror(errno)));
      }
      if (ioctl(dir.get(), kXfsGeometryV1, &geo) != 0) {
        return absl::InternalError(Cat("xfs geometry: ", std::strerror(errno)));
      }
    }
    resp->set_filesystem_size_bytes(geo.datablocks * geo.blocksize);
  } else if (mounted->fs_type == "ext4") {
    // The superblock's block count (statfs hides the metadata overhead).
    ASSIGN_OR_RETURN(UniqueFd dev_fd, OpenDevice(dev, O_RDONLY));
    ASSIGN_OR_RETURN(Ext4Size have, ReadExt4Size(dev_fd.get()));
    uint64_t blocks = dev.size_bytes / have.block_size;
    resp->set_filesystem_size_bytes(have.blocks * have.block_size);
    if (!Ext4NeedsGrow(have, blocks)) {
      LOG(kDebug, "ext4 already fills the device", {"volume", req.volume_uuid()});
      return absl::OkStatus();
    }
    if (ioctl(dir.get(), kExt4ResizeFs, &blocks) != 0) {
      if (errno == EPERM) {
        return absl::FailedPreconditionError(
            Cat("the ext4 filesystem of volume ", req.volume_uuid(), " is ",
                have.blocks * have.block_size, " bytes and its device ", dev.size_bytes,
                " bytes; growing ext4 online needs CAP_SYS_RESOURCE, which this helper "
                "does not have"));
      }
      return absl::InternalError(Cat("ext4 resize: ", std::strerror(errno)));
    }
    resp->set_grown(true);
    ASSIGN_OR_RETURN(Ext4Size now, ReadExt4Size(dev_fd.get()));
    resp->set_filesystem_size_bytes(now.blocks * now.block_size);
  } else {
    return absl::FailedPreconditionError(Cat("cannot grow ", mounted->fs_type));
  }
  LOG(kInfo, "filesystem expanded", {"volume", req.volume_uuid()},
      {"bytes", resp->filesystem_size_bytes()});
  return absl::OkStatus();
}

absl::Status HelperService::DoStats(const v1::StatsRequest& req, v1::StatsResponse* resp) {
  if (!req.volume_uuid().empty()) RETURN_IF_ERROR(ValidateUuid("volume_uuid", req.volume_uuid()));
  ASSIGN_OR_RETURN(PathGuard::Parent target,
                   OpenKubeletPath("path", req.path(), kubeletpaths::kAllKinds));
  ASSIGN_OR_RETURN(std::optional<MountEntry> mounted, MountAt(target));
  if (!mounted && req.block()) {
    // A block staging path holds no mount: the device, found by UUID, is the volume.
    if (req.volume_uuid().empty()) return InvalidField("volume_uuid", "required with block");
    ASSIGN_OR_RETURN(std::optional<BlockDevice> dev,
                     FindVolumeDevice(req.volume_uuid(), req.encrypted()));
    resp->set_is_block(true);
    if (!dev) {
      resp->mutable_condition()->set_abnormal(true);
      resp->mutable_condition()->set_message("device gone");
      return absl::OkStatus();
    }
    resp->set_total_bytes(dev->size_bytes);
    if (dev->paths_live < dev->paths_total) {
      resp->mutable_condition()->set_abnormal(true);
      resp->mutable_condition()->set_message(
          Cat(dev->paths_total - dev->paths_live, " of ", dev->paths_total, " paths down"));
    } else {
      resp->mutable_condition()->set_message("ok");
    }
    return absl::OkStatus();
  }
  if (!mounted) return absl::NotFoundError(Cat("path ", target.path, " is not mounted"));
  std::optional<BlockDevice> dev;
  if (!req.volume_uuid().empty()) {
    ASSIGN_OR_RETURN(dev, FindVolumeDevice(req.volume_uuid(), req.encrypted()));
  }
  const bool block = mounted->fs_type == "devtmpfs";
  std::vector<std::string> problems;
  if (!req.volume_uuid().empty() && !dev) problems.push_back("device gone");
  if (dev && (block ? !IsDeviceBind(*mounted, *dev) : mounted->dev != dev->dev)) {
    return absl::FailedPreconditionError(
        Cat("path ", target.path, " does not hold volume ", req.volume_uuid()));
  }
  if (dev && dev->paths_live < dev->paths_total) {
    problems.push_back(
        Cat(dev->paths_total - dev->paths_live, " of ", dev->paths_total, " paths down"));
  }
  if (block) {
    resp->set_is_block(true);
    if (dev) {
      resp->set_total_bytes(dev->size_bytes);
    }
  } else {
    if (!mounted->read_only() && mounted->super_read_only()) {
      problems.push_back("filesystem is read-only after errors");
    }
    // O_PATH fd on the mount root: statfs without walking through the mount.
    ASSIGN_OR_RETURN(UniqueFd leaf, PathGuard::OpenLeaf(target));
    // statfs answers from memory; a stat of the root shows a filesystem that
    // failed (xfs after a shutdown refuses it with EIO).
    struct stat root_st {};
    if (fstat(leaf.get(), &root_st) != 0 && errno == EIO) {
      problems.push_back("filesystem returns I/O errors");
    }
    struct statvfs sv {};
    if (fstatvfs(leaf.get(), &sv) != 0) {
      problems.push_back(Cat("statfs failed: ", std::strerror(errno)));
    } else {
      resp->set_total_bytes(static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize);
      resp->set_available_bytes(static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize);
      resp->set_used_bytes(static_cast<uint64_t>(sv.f_blocks - sv.f_bfree) * sv.f_frsize);
      resp->set_total_inodes(sv.f_files);
      resp->set_free_inodes(sv.f_ffree);
      resp->set_used_inodes(sv.f_files - sv.f_ffree);
    }
  }
  std::string note;  // a repair before the mount: worth knowing, not abnormal now
  if (!req.volume_uuid().empty() && !block) {
    std::lock_guard<std::mutex> lock(preen_mu_);
    auto it = preen_notes_.find(req.volume_uuid());
    if (it != preen_notes_.end()) note = Cat("; ", it->second);
  }
  if (!problems.empty()) {
    std::string msg;
    for (const std::string& p : problems) msg += (msg.empty() ? "" : "; ") + p;
    resp->mutable_condition()->set_abnormal(true);
    resp->mutable_condition()->set_message(msg + note);
  } else {
    resp->mutable_condition()->set_message("ok" + note);
  }
  return absl::OkStatus();
}

absl::Status HelperService::DoInventory(v1::InventoryResponse* resp) {
  ASSIGN_OR_RETURN(std::vector<BlockDevice> devices, transport_->Inventory());
  std::vector<BlockDevice> mappings;  // open LUKS mappings of attached volumes
  for (const BlockDevice& d : devices) {
    v1::AttachedVolume* v = resp->add_attached();
    v->set_volume_uuid(d.volume_uuid);
    v->set_device_name(d.name);
    v->set_size_bytes(d.size_bytes);
    absl::StatusOr<std::optional<BlockDevice>> mapped = OpenMapping(d);
    if (mapped.ok() && mapped->has_value()) {
      v->set_encrypted_open(true);
      mappings.push_back(**mapped);
    }
  }
  ASSIGN_OR_RETURN(std::vector<MountEntry> mounts, ReadMountInfo());
  for (const MountEntry& e : mounts) {
    if (!guard_.IsUnderRoot(e.mount_point)) continue;
    v1::MountedPath* m = resp->add_mounts();
    m->set_path(e.mount_point);
    m->set_fs_type(e.fs_type);
    m->set_read_only(e.read_only());
    for (const BlockDevice& d : devices) {
      if (e.dev == d.dev || IsDeviceBind(e, d)) m->set_volume_uuid(d.volume_uuid);
    }
    for (const BlockDevice& d : mappings) {
      if (e.dev == d.dev || IsDeviceBind(e, d)) {
        m->set_volume_uuid(d.volume_uuid);
        m->set_encrypted(true);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace lbcsi::helper
