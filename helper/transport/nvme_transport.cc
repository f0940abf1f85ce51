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

// Namespace heads are nvme<S>n<N>; nvme<S>c<C>n<N> are hidden path devices.
bool IsNamespaceHead(std::string_view name) {
  if (!ConsumePrefix(&name, "nvme")) return false;
  size_t n = name.find('n');
  if (n == std::string_view::npos || n == 0) return false;
  for (size_t i = 0; i < n; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
  }
  for (size_t i = n + 1; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
  }
  return n + 1 < name.size();
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

std::vector<NvmeTransport::Controller> NvmeTransport::ControllersOf(
    const std::string& subsystem_nqn) const {
  std::vector<Controller> out;
  for (const std::string& name : ListDir("/sys/class/nvme")) {
    std::string base = Cat("/sys/class/nvme/", name);
    if (ReadOr(base + "/subsysnqn") != subsystem_nqn) continue;
    if (ReadOr(base + "/hostnqn") != host_nqn_) continue;
    if (ReadOr(base + "/transport") != "tcp") continue;
    out.push_back({name, ReadOr(base + "/address"), ReadOr(base + "/state")});
  }
  return out;
}

absl::Status NvmeTransport::Connect(const AttachSpec& spec) {
  Root root(nvme_create_root(nullptr, LOG_ERR));
  if (!root) return absl::InternalError("libnvme: cannot create a root");
  nvme_scan_topology(root.get(), nullptr, nullptr);
  // Never NULL hostnqn: libnvme 1.3 would return no host (pitfall 7).
  nvme_host_t host = nvme_lookup_host(root.get(), host_nqn_.c_str(),
                                      host_id_.empty() ? nullptr : host_id_.c_str());
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
  for (const Controller& c : ControllersOf(spec.subsystem_nqn)) connected.insert(c.address);
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
          if (e->subtype != NVME_NQN_NVME) continue;
          std::string subnqn(e->subnqn, strnlen(e->subnqn, sizeof(e->subnqn)));
          if (subnqn != spec.subsystem_nqn) continue;
          std::string ip(e->traddr, strnlen(e->traddr, sizeof(e->traddr)));
          std::string port(e->trsvcid, strnlen(e->trsvcid, sizeof(e->trsvcid)));
          while (!ip.empty() && ip.back() == ' ') ip.pop_back();
          while (!port.empty() && port.back() == ' ') port.pop_back();
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

absl::StatusOr<std::vector<BlockDevice>> NvmeTransport::Inventory() {
  std::vector<BlockDevice> out;
  for (const std::string& name : ListDir("/sys/block")) {
    if (!IsNamespaceHead(name)) continue;
    std::string base = Cat("/sys/block/", name);
    std::string uuid = ReadOr(base + "/uuid");
    if (uuid.empty() || uuid == "00000000-0000-0000-0000-000000000000") {
      std::string_view wwid = ReadOr(base + "/wwid");
      std::string w(wwid);
      std::string_view v = w;
      if (!ConsumePrefix(&v, "uuid.")) continue;
      uuid = std::string(v);
    }
    BlockDevice dev;
    dev.volume_uuid = ToLower(uuid);
    dev.name = name;
    if (!FillFromSysfs(&dev).ok()) continue;
    out.push_back(std::move(dev));
  }
  return out;
}

absl::StatusOr<std::optional<BlockDevice>> NvmeTransport::FindDevice(
    const std::string& volume_uuid) {
  ASSIGN_OR_RETURN(std::vector<BlockDevice> all, Inventory());
  for (BlockDevice& d : all) {
    if (d.volume_uuid != volume_uuid) continue;
    // Count paths: controllers of the head's subsystem.
    std::string subsys = Cat("/sys/block/", d.name, "/device");
    std::vector<std::string> ctrls;
    for (const std::string& e : ListDir(subsys)) {
      if (e.starts_with("nvme") && e.find('n', 4) == std::string::npos) ctrls.push_back(e);
    }
    if (!ctrls.empty()) {
      d.paths_total = static_cast<uint32_t>(ctrls.size());
      d.paths_live = 0;
      for (const std::string& c : ctrls) {
        if (ReadOr(Cat(subsys, "/", c, "/state")) == "live") ++d.paths_live;
      }
    }
    return std::optional<BlockDevice>(std::move(d));
  }
  return std::optional<BlockDevice>();
}

absl::StatusOr<BlockDevice> NvmeTransport::Attach(const AttachSpec& spec) {
  {
    std::lock_guard<std::mutex> g(SubsystemLock(spec.subsystem_nqn));
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
      for (const Controller& c : ControllersOf(spec.subsystem_nqn)) {
        if (c.state == "live") {
          WriteSysfs(Cat("/sys/class/nvme/", c.name, "/rescan_controller"), "1").IgnoreError();
        }
      }
      next_rescan = now + kRescanEvery;
    }
    absl::SleepFor(kPoll);
  }
  return absl::FailedPreconditionError(Cat("connected to subsystem ", spec.subsystem_nqn,
                                           " but the namespace of volume ", spec.volume_uuid,
                                           " never appeared: this node's host NQN ", host_nqn_,
                                           " is probably not in the volume's ACL"));
}

absl::StatusOr<DetachResult> NvmeTransport::Detach(const std::string& volume_uuid,
                                                   const std::string& requested_nqn) {
  std::string subsystem_nqn = requested_nqn;
  if (subsystem_nqn.empty()) {
    // The caller lost the subsystem (agent state gone): the namespace's own
    // sysfs entry names it. Not attached: nothing of it to detach.
    ASSIGN_OR_RETURN(std::optional<BlockDevice> found, FindDevice(volume_uuid));
    if (!found) return DetachResult{};
    subsystem_nqn = ReadOr(Cat("/sys/block/", found->name, "/device/subsysnqn"));
    if (subsystem_nqn.empty()) {
      return absl::FailedPreconditionError(
          Cat("volume ", volume_uuid, " (", found->name, "): sysfs names no subsystem"));
    }
  }
  std::lock_guard<std::mutex> g(SubsystemLock(subsystem_nqn));
  DetachResult result;
  ASSIGN_OR_RETURN(std::optional<BlockDevice> dev, FindDevice(volume_uuid));
  if (dev) {
    result.was_attached = true;
    ASSIGN_OR_RETURN(std::string busy, InUseReason(*dev));
    if (!busy.empty()) {
      return absl::FailedPreconditionError(
          Cat("volume ", volume_uuid, " (", dev->name, ") is in use: ", busy));
    }
  }
  std::vector<Controller> ctrls = ControllersOf(subsystem_nqn);
  if (ctrls.empty()) return result;
  // Every namespace reachable through these controllers must be idle.
  ASSIGN_OR_RETURN(std::vector<BlockDevice> all, Inventory());
  for (const BlockDevice& d : all) {
    std::string nqn = ReadOr(Cat("/sys/block/", d.name, "/device/subsysnqn"));
    if (nqn != subsystem_nqn) continue;
    ASSIGN_OR_RETURN(std::string busy, InUseReason(d));
    if (!busy.empty()) {
      LOG(kInfo, "subsystem still in use; keeping its controllers", {"subsystem", subsystem_nqn},
          {"device", d.name}, {"reason", busy});
      return result;
    }
  }
  Root root(nvme_create_root(nullptr, LOG_ERR));
  if (!root) return absl::InternalError("libnvme: cannot create a root");
  nvme_scan_topology(root.get(), nullptr, nullptr);
  std::set<std::string> names;
  for (const Controller& c : ctrls) names.insert(c.name);
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
  return result;
}

absl::Status NvmeTransport::RefreshSize(const BlockDevice& device) {
  // A namespace rescan on each path controller makes the kernel re-read the size.
  std::string subsys = Cat("/sys/block/", device.name, "/device");
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
    if (FillFromSysfs(&now).ok() && now.size_bytes != device.size_bytes) break;
  }
  return absl::OkStatus();
}

}  // namespace lbcsi::helper
