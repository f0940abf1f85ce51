#include "helper/transport/nvme_sysfs.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>

#include "common/strings.h"
#include "helper/transport/blockdev.h"

namespace lbcsi::helper {
namespace {

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') out.emplace_back(e->d_name);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ReadOr(const std::string& path) {
  absl::StatusOr<std::string> v = ReadSysfs(path);
  return v.ok() ? *v : std::string();
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

bool IsNvmeNamespaceHead(std::string_view name) {
  if (!ConsumePrefix(&name, "nvme")) return false;
  size_t n = name.find('n');
  if (n == std::string_view::npos) return false;
  return AllDigits(name.substr(0, n)) && AllDigits(name.substr(n + 1));
}

bool IsNvmeControllerName(std::string_view name) {
  return ConsumePrefix(&name, "nvme") && AllDigits(name);
}

NvmeController NvmeSysfs::ReadController(const std::string& dir, std::string name) const {
  NvmeController c;
  c.name = std::move(name);
  c.transport = ReadOr(dir + "/transport");
  c.host_nqn = ReadOr(dir + "/hostnqn");
  c.subsystem_nqn = ReadOr(dir + "/subsysnqn");
  c.address = ReadOr(dir + "/address");
  c.state = ReadOr(dir + "/state");
  return c;
}

std::vector<NvmeNamespace> NvmeSysfs::Namespaces() const {
  std::vector<NvmeNamespace> out;
  const std::string block = root_ + "/block";
  for (const std::string& name : ListDir(block)) {
    if (!IsNvmeNamespaceHead(name)) continue;
    const std::string base = Cat(block, "/", name);
    NvmeNamespace ns;
    ns.name = name;
    std::string uuid = ReadOr(base + "/uuid");
    if (uuid.empty() || uuid == "00000000-0000-0000-0000-000000000000") {
      // No UUID: the wwid says uuid.<UUID> only when the namespace has one
      // there; an NGUID or EUI-64 is not a LightOS volume id.
      std::string wwid = ReadOr(base + "/wwid");
      std::string_view v = wwid;
      uuid = ConsumePrefix(&v, "uuid.") ? std::string(v) : std::string();
    }
    ns.uuid = ToLower(uuid);
    const std::string device = base + "/device";
    ns.subsystem_nqn = ReadOr(device + "/subsysnqn");
    for (const std::string& e : ListDir(device)) {
      if (IsNvmeControllerName(e)) ns.controllers.push_back(ReadController(Cat(device, "/", e), e));
    }
    if (ns.controllers.empty() && access((device + "/transport").c_str(), F_OK) == 0) {
      // Multipath off: the device is the controller.
      std::string link(256, '\0');
      ssize_t n = readlink(device.c_str(), link.data(), link.size());
      std::string cname = n > 0 ? link.substr(0, static_cast<size_t>(n)) : std::string();
      cname = cname.substr(cname.rfind('/') + 1);
      ns.controllers.push_back(ReadController(device, cname));
    }
    out.push_back(std::move(ns));
  }
  return out;
}

std::vector<NvmeController> NvmeSysfs::Controllers() const {
  std::vector<NvmeController> out;
  const std::string cls = root_ + "/class/nvme";
  for (const std::string& name : ListDir(cls)) {
    if (IsNvmeControllerName(name)) out.push_back(ReadController(Cat(cls, "/", name), name));
  }
  return out;
}

std::string NvmeSysfs::ForeignReason(const NvmeNamespace& ns, std::string_view host_nqn,
                                     std::string_view subsystem_nqn) {
  if (ns.subsystem_nqn != subsystem_nqn) {
    return Cat("belongs to subsystem \"", ns.subsystem_nqn, "\", not the volume's");
  }
  if (ns.controllers.empty()) return "has no controller in sysfs";
  for (const NvmeController& c : ns.controllers) {
    if (c.transport != "tcp") {
      return Cat("is reached through ", c.name, " over \"", c.transport, "\", not tcp");
    }
    if (c.host_nqn != host_nqn) {
      return Cat("is reached through ", c.name, " with another host NQN");
    }
  }
  return "";
}

}  // namespace lbcsi::helper
