#include "helper/transport/nvme_transport.h"

#include <dirent.h>
#include <libnvme.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "common/logging.h"
#include "common/status.h"
#include "common/strings.h"
#include "helper/transport/blockdev.h"
#include "helper/validate.h"

namespace lbcsi::helper {
namespace {

constexpr absl::Duration kPoll = absl::Milliseconds(100);
constexpr absl::Duration kRescanEvery = absl::Seconds(1);
constexpr absl::Duration kScanSettle = absl::Seconds(1);

struct RootDeleter {
  void operator()(nvme_root* r) const { nvme_free_tree(r); }
};
using Root = std::unique_ptr<nvme_root, RootDeleter>;

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') out.emplace_back(e->d_name);
    }
    closedir(d);
  }
  return out;
}

std::string ReadOr(const std::string& path) {
  absl::StatusOr<std::string> v = ReadSysfs(path);
  return v.ok() ? *v : std::string();
}

}  // namespace

bool NvmeTransport::NativeMultipath() {
  return ReadOr("/sys/module/nvme_core/parameters/multipath") == "Y";
}

std::string NvmeTransport::DescribeConnectError(int err) {
  std::string base = nvme_errno_to_string(err) ? nvme_errno_to_string(err) : std::strerror(err);
  switch (err) {
    case ENVME_CONNECT_WRITE:
      return Cat(base,
                 " (the kernel refused the connect: usually this host NQN is not allowed "
                 "by the target, or the address is unreachable; see dmesg)");
    case ENVME_CONNECT_OPEN:
      return Cat(base, " (/dev/nvme-fabrics missing: is the nvme-tcp module loaded?)");
    case ENVME_CONNECT_CONNREFUSED: return Cat(base, " (nothing listens on that address and port)");
    case ENVME_CONNECT_ADDRINUSE:
      return Cat(base, " (this host NQN is already connected with another host id)");
    case ENVME_CONNECT_INVAL_TR:
    case ENVME_CONNECT_OPNOTSUPP:
      return Cat(base, " (the tcp transport is not supported by this kernel)");
    default: return base;
  }
}

std::mutex& NvmeTransport::SubsystemLock(const std::string& nqn) {
  std::lock_guard<std::mutex> g(locks_mu_);
  auto& slot = subsystem_locks_[nqn];
  if (!slot) slot = std::make_unique<std::mutex>();
  return *slot;
}

std::vector<NvmeController> NvmeTransport::ControllersOf(const std::string& subsystem_nqn) const {
  std::vector<NvmeController> out;
  for (NvmeController& c : sysfs_.Controllers()) {
    if (c.subsystem_nqn == subsystem_nqn && c.host_nqn == identity_.host_nqn &&
        c.transport == "tcp") {
      out.push_back(std::move(c));
    }
  }
  return out;
}

absl::Status NvmeTransport::CheckSubsystemAllowed(const std::string& subsystem_nqn) const {
  if (identity_.allowed_subsystem_prefixes.empty()) return absl::OkStatus();
  for (const std::string& prefix : identity_.allowed_subsystem_prefixes) {
    if (subsystem_nqn.starts_with(prefix)) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      Cat("subsystem ", subsystem_nqn,
          " is not one this helper may attach (see its --allowed-subsystem-nqn-prefix)"));
}

absl::Status NvmeTransport::Connect(const AttachSpec& spec) {
  Root root(nvme_create_root(nullptr, LOG_ERR));
  if (!root) return absl::InternalError("libnvme: cannot create a root");
  nvme_scan_topology(root.get(), nullptr, nullptr);
  // Never NULL hostnqn: libnvme 1.3 would return no host (pitfall 7).
  nvme_host_t host =
      nvme_lookup_host(root.get(), identity_.host_nqn.c_str(),
                       identity_.host_id.empty() ? nullptr : identity_.host_id.c_str());
  if (!host) return absl::InternalError("libnvme: cannot set up the host object");

  nvme_fabrics_config cfg;
  nvmf_default_config(&cfg);
  const v1::ConnectOptions& o = spec.options;
  cfg.ctrl_loss_tmo =
      o.has_ctrl_loss_tmo_seconds() ? o.ctrl_loss_tmo_seconds() : defaults_.ctrl_loss_tmo_seconds;
  cfg.fast_io_fail_tmo = o.has_fast_io_fail_tmo_seconds() ? o.fast_io_fail_tmo_seconds()
                                                          : defaults_.fast_io_fail_tmo_seconds;
  cfg.reconnect_delay = o.has_reconnect_delay_seconds() ? o.reconnect_delay_seconds()
                                                        : defaults_.reconnect_delay_seconds;
  if (o.has_nr_io_queues()) cfg.nr_io_queues = static_cast<int>(o.nr_io_queues());

  const bool all_paths = NativeMultipath();
  std::set<std::string> connected;
  for (const NvmeController& c : ControllersOf(spec.subsystem_nqn)) connected.insert(c.address);
  auto already = [&](const std::string& ip, const std::string& port) {
    for (const std::string& a : connected) {
      if (Contains(a, Cat("traddr=", ip, ",")) && Contains(a, Cat("trsvcid=", port))) return true;
    }
    return false;
  };

  std::vector<std::string> errors;
  int live = 0;
  auto connect_one = [&](const std::string& subnqn, const std::string& ip, const std::string& port,
                         bool discovery) -> nvme_ctrl_t {
    nvme_ctrl_t c = nvme_create_ctrl(root.get(), subnqn.c_str(), "tcp", ip.c_str(), nullptr,
                                     nullptr, port.c_str());
    if (!c) {
      errors.push_back(Cat(ip, ":", port, ": cannot create controller object"));
      return nullptr;
    }
    nvme_fabrics_config ccfg = cfg;
    if (discovery) ccfg.ctrl_loss_tmo = 0;  // transient discovery controller
    if (nvmf_add_ctrl(host, c, &ccfg) != 0) {
      int err = errno;
      if (err == ENVME_CONNECT_ALREADY) {
        ++live;
      } else {
        errors.push_back(Cat(ip, ":", port, ": ", DescribeConnectError(err)));
      }
      nvme_free_ctrl(c);
      return nullptr;
    }
    return c;
  };

  if (!spec.discovery_endpoints.empty()) {
    for (const v1::TargetAddress& d : spec.discovery_endpoints) {
      if (!all_paths && live > 0) break;
      nvme_ctrl_t dc = connect_one(NVME_DISC_SUBSYS_NAME, d.ip(), Cat(d.port()), true);
      if (!dc) continue;
      nvmf_discovery_log* log = nullptr;
      if (nvmf_get_discovery_log(dc, &log, 3) != 0 || !log) {
        errors.push_back(Cat(d.ip(), ":", d.port(), ": discovery log: ", std::strerror(errno)));
      } else {
        uint64_t n = le64toh(log->numrec);
        for (uint64_t i = 0; i < n; ++i) {
          nvmf_disc_log_entry* e = &log->entries[i];
          if (e->subtype != NVME_NQN_NVME || e->trtype != NVMF_TRTYPE_TCP) continue;
          std::string subnqn(e->subnqn, strnlen(e->subnqn, sizeof(e->subnqn)));
          if (subnqn != spec.subsystem_nqn) continue;
          std::string ip(e->traddr, strnlen(e->traddr, sizeof(e->traddr)));
          std::string port(e->trsvcid, strnlen(e->trsvcid, sizeof(e->trsvcid)));
          while (!ip.empty() && ip.back() == ' ') ip.pop_back();
          while (!port.empty() && port.back() == ' ') port.pop_back();
          // The discovery controller is not trusted more than a request: an
          // entry goes to libnvme (which joins options into one string) only
          // when it is an address literal and a port number.
          absl::StatusOr<v1::TargetAddress> entry = ParseDiscoveryAddress(ip, port);
          if (!entry.ok()) {
            errors.push_back(Cat(d.ip(), ":", d.port(),
                                 ": discovery entry skipped: ", entry.status().message()));
            continue;
          }
          ip = entry->ip();
          port = Cat(entry->port());
          if (already(ip, port)) {
            ++live;
          } else if (nvme_ctrl_t c = connect_one(subnqn, ip, port, false)) {
            ++live;
            (void)c;
          }
          if (!all_paths && live > 0) break;
        }
        free(log);
      }
      nvme_disconnect_ctrl(dc);
    }
  }
  if (live == 0) {
    for (const v1::TargetAddress& t : spec.nvme_endpoints) {
      if (!all_paths && live > 0) break;
      std::string port = Cat(t.port());
      if (already(t.ip(), port) || connect_one(spec.subsystem_nqn, t.ip(), port, false)) ++live;
    }
  }
  if (!all_paths)
    LOG(kInfo, "nvme_core multipath is off: using one path", {"volume", spec.volume_uuid});
  if (live == 0) {
    std::string joined;
    for (const std::string& e : errors) joined += (joined.empty() ? "" : "; ") + e;
    return absl::UnavailableError(Cat("cannot connect to subsystem ", spec.subsystem_nqn, ": ",
                                      joined.empty() ? "no endpoints given" : joined));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<BlockDevice>> NvmeTransport::Resolve(
    const std::string& volume_uuid, const std::string& subsystem_nqn) const {
  std::optional<BlockDevice> found;
  for (const NvmeNamespace& ns : sysfs_.Namespaces()) {
    if (ns.uuid != volume_uuid) continue;
    std::string foreign = NvmeSysfs::ForeignReason(ns, identity_.host_nqn, subsystem_nqn);
    if (!foreign.empty()) {
      LOG(kWarn, "a namespace shows a volume's UUID but is not the volume's device",
          {"volume", volume_uuid}, {"device", ns.name}, {"reason", foreign});
      continue;
    }
    if (found) {
      return absl::FailedPreconditionError(
          Cat("volume ", volume_uuid, ": both ", found->name, " and ", ns.name,
              " of its subsystem show its UUID; refusing to guess"));
    }
    BlockDevice dev;
    dev.volume_uuid = volume_uuid;
    dev.name = ns.name;
    if (!FillFromSysfs(&dev, sysfs_.root()).ok()) continue;  // going away
    dev.paths_total = static_cast<uint32_t>(ns.controllers.size());
    dev.paths_live = 0;
    for (const NvmeController& c : ns.controllers) dev.paths_live += c.state == "live";
    found = std::move(dev);
  }
  return found;
}

absl::StatusOr<std::vector<BlockDevice>> NvmeTransport::Inventory() {
  ASSIGN_OR_RETURN(auto registered, registry_.All());
  std::vector<BlockDevice> out;
  for (const auto& [uuid, nqn] : registered) {
    ASSIGN_OR_RETURN(std::optional<BlockDevice> dev, Resolve(uuid, nqn));
    if (dev) out.push_back(*std::move(dev));
  }
  return out;
}

absl::StatusOr<std::optional<BlockDevice>> NvmeTransport::FindDevice(
    const std::string& volume_uuid) {
  ASSIGN_OR_RETURN(std::optional<std::string> nqn, registry_.SubsystemOf(volume_uuid));
  if (!nqn) return std::optional<BlockDevice>();  // not attached by this helper
  return Resolve(volume_uuid, *nqn);
}

absl::StatusOr<int> NvmeTransport::SeedRegistry() {
  int adopted = 0;
  for (const NvmeNamespace& ns : sysfs_.Namespaces()) {
    if (ns.uuid.empty() || !ValidateUuid("", ns.uuid).ok()) continue;
    if (!CheckSubsystemAllowed(ns.subsystem_nqn).ok()) continue;
    if (!NvmeSysfs::ForeignReason(ns, identity_.host_nqn, ns.subsystem_nqn).empty()) continue;
    RETURN_IF_ERROR(registry_.Record(ns.uuid, ns.subsystem_nqn));
    LOG(kInfo, "attach registry: adopted a volume attached before the registry existed",
        {"volume", ns.uuid}, {"device", ns.name}, {"subsystem", ns.subsystem_nqn});
    ++adopted;
  }
  return adopted;
}

absl::StatusOr<BlockDevice> NvmeTransport::Attach(const AttachSpec& spec) {
  RETURN_IF_ERROR(CheckSubsystemAllowed(spec.subsystem_nqn));
  {
    std::lock_guard<std::mutex> g(SubsystemLock(spec.subsystem_nqn));
    // Recorded before the connect, so a crash in between still leaves the
    // helper knowing what it may have attached (Detach forgets it).
    RETURN_IF_ERROR(registry_.Record(spec.volume_uuid, spec.subsystem_nqn));
    ASSIGN_OR_RETURN(std::optional<BlockDevice> dev, FindDevice(spec.volume_uuid));
    if (dev) return *dev;
    RETURN_IF_ERROR(Connect(spec));
  }
  absl::Time next_rescan = absl::InfinitePast();
  while (true) {
    ASSIGN_OR_RETURN(std::optional<BlockDevice> dev, FindDevice(spec.volume_uuid));
    if (dev && access(Cat("/dev/", dev->name).c_str(), F_OK) == 0) return *dev;
    absl::Time now = absl::Now();
    if (now + kPoll >= spec.deadline) break;
    if (now >= next_rescan) {
      for (const NvmeController& c : ControllersOf(spec.subsystem_nqn)) {
        if (c.state == "live") {
          WriteSysfs(Cat(sysfs_.root(), "/class/nvme/", c.name, "/rescan_controller"), "1")
              .IgnoreError();
        }
      }
      next_rescan = now + kRescanEvery;
    }
    absl::SleepFor(kPoll);
  }
  return absl::FailedPreconditionError(
      Cat("connected to subsystem ", spec.subsystem_nqn, " but the namespace of volume ",
          spec.volume_uuid, " never appeared: this node's host NQN ", identity_.host_nqn,
          " is probably not in the volume's ACL"));
}

absl::StatusOr<DetachResult> NvmeTransport::Detach(const std::string& volume_uuid,
                                                   const std::string& requested_nqn) {
  ASSIGN_OR_RETURN(std::optional<std::string> registered, registry_.SubsystemOf(volume_uuid));
  // Not attached by this helper: nothing of it is the helper's to detach.
  if (!registered) return DetachResult{};
  if (!requested_nqn.empty() && requested_nqn != *registered) {
    return absl::FailedPreconditionError(Cat("volume ", volume_uuid,
                                             " was attached from subsystem ", *registered, ", not ",
                                             requested_nqn));
  }
  const std::string subsystem_nqn = *registered;
  std::lock_guard<std::mutex> g(SubsystemLock(subsystem_nqn));
  DetachResult result;
  ASSIGN_OR_RETURN(std::optional<BlockDevice> dev, Resolve(volume_uuid, subsystem_nqn));
  if (dev) {
    result.was_attached = true;
    ASSIGN_OR_RETURN(std::string busy, InUseReason(*dev));
    if (!busy.empty()) {
      return absl::FailedPreconditionError(
          Cat("volume ", volume_uuid, " (", dev->name, ") is in use: ", busy));
    }
  }
  // The controllers are shared by every volume of the subsystem. They stay
  // while another volume of it is registered (attached, or being attached: the
  // record is made under this lock before the connect) or any namespace of it
  // is in use, whoever uses it.
  std::string keep_reason;
  ASSIGN_OR_RETURN(auto all_registered, registry_.All());
  for (const auto& [uuid, nqn] : all_registered) {
    if (uuid != volume_uuid && nqn == subsystem_nqn) {
      keep_reason = Cat("volume ", uuid, " is attached from it");
      break;
    }
  }
  for (const NvmeNamespace& ns : sysfs_.Namespaces()) {
    if (!keep_reason.empty()) break;
    if (ns.subsystem_nqn != subsystem_nqn || ns.uuid == volume_uuid) continue;
    BlockDevice other;
    other.name = ns.name;
    if (!FillFromSysfs(&other, sysfs_.root()).ok()) continue;
    ASSIGN_OR_RETURN(std::string busy, InUseReason(other));
    if (!busy.empty()) keep_reason = Cat(ns.name, " ", busy);
  }
  std::vector<NvmeController> ctrls = ControllersOf(subsystem_nqn);
  if (!keep_reason.empty() || ctrls.empty()) {
    if (!keep_reason.empty()) {
      LOG(kInfo, "subsystem still in use; keeping its controllers", {"subsystem", subsystem_nqn},
          {"reason", keep_reason});
    }
    RETURN_IF_ERROR(registry_.Forget(volume_uuid));
    return result;
  }
  Root root(nvme_create_root(nullptr, LOG_ERR));
  if (!root) return absl::InternalError("libnvme: cannot create a root");
  nvme_scan_topology(root.get(), nullptr, nullptr);
  std::set<std::string> names;
  for (const NvmeController& c : ctrls) names.insert(c.name);
  nvme_host_t h;
  nvme_subsystem_t s;
  nvme_ctrl_t c, tmp;
  std::vector<std::string> failures;
  nvme_for_each_host(root.get(), h) {
    nvme_for_each_subsystem(h, s) {
      nvme_subsystem_for_each_ctrl_safe(s, c, tmp) {
        // Copy the name first: disconnect frees the controller's strings.
        std::string name = nvme_ctrl_get_name(c) ? nvme_ctrl_get_name(c) : "";
        if (!names.count(name)) continue;
        if (nvme_disconnect_ctrl(c) != 0) failures.push_back(Cat(name, ": ", std::strerror(errno)));
      }
    }
  }
  if (!failures.empty()) {
    return absl::InternalError(Cat("disconnect failed for ", failures.front()));
  }
  result.controllers_disconnected = true;
  RETURN_IF_ERROR(registry_.Forget(volume_uuid));
  return result;
}

absl::Status NvmeTransport::RefreshSize(const BlockDevice& device) {
  // A namespace rescan on each path controller makes the kernel re-read the size.
  std::string subsys = Cat(sysfs_.root(), "/block/", device.name, "/device");
  int done = 0;
  for (const std::string& e : ListDir(subsys)) {
    if (!e.starts_with("nvme") || e.find('n', 4) != std::string::npos) continue;
    if (WriteSysfs(Cat(subsys, "/", e, "/rescan_controller"), "1").ok()) ++done;
  }
  if (done == 0) {
    // multipath off: the device's parent is the controller itself.
    RETURN_IF_ERROR(WriteSysfs(Cat(subsys, "/rescan_controller"), "1"));
  }
  // The rescan only queues the kernel's scan work: give it a moment to land, or the
  // caller reads the old size and "grows" the filesystem to it. Done as soon as the
  // size changes; when it never does (already current), this costs kScanSettle.
  BlockDevice now = device;
  for (absl::Time end = absl::Now() + kScanSettle; absl::Now() < end; absl::SleepFor(kPoll / 4)) {
    if (FillFromSysfs(&now, sysfs_.root()).ok() && now.size_bytes != device.size_bytes) break;
  }
  return absl::OkStatus();
}

}  // namespace lbcsi::helper
