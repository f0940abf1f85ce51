#include "agent/mount_flags.h"

#include <algorithm>
#include <map>

#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::agent {
namespace hv1 = lbcsi::helper::v1;

namespace {

const std::map<std::string_view, hv1::MountOption>& AllowList() {
  static const auto* m = new std::map<std::string_view, hv1::MountOption>{
      {"noatime", hv1::MOUNT_OPTION_NOATIME}, {"nodiratime", hv1::MOUNT_OPTION_NODIRATIME},
      {"discard", hv1::MOUNT_OPTION_DISCARD}, {"nouuid", hv1::MOUNT_OPTION_NOUUID},
      {"nosuid", hv1::MOUNT_OPTION_NOSUID},   {"nodev", hv1::MOUNT_OPTION_NODEV},
      {"noexec", hv1::MOUNT_OPTION_NOEXEC},
  };
  return *m;
}

// Splits on commas that are not inside double quotes.
absl::StatusOr<std::vector<std::string>> SplitOptions(std::string_view flag) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : flag) {
    if (c == '"') quoted = !quoted;
    if (c == ',' && !quoted) {
      out.push_back(cur);
      cur.clear();
      continue;
    }
    cur.push_back(c);
  }
  if (quoted) return InvalidField("volume_capability.mount.mount_flags", "unbalanced quote");
  out.push_back(cur);
  return out;
}

}  // namespace

bool IsPlausibleSelinuxLabel(std::string_view label) {
  if (label.empty() || label.size() > 255) return false;
  for (char c : label) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':' || c == ',' || c == '.' || c == '-';
    if (!ok) return false;
  }
  // user:role:type at least.
  return std::count(label.begin(), label.end(), ':') >= 2;
}

absl::StatusOr<ParsedMountFlags> ParseMountFlags(const std::vector<std::string>& flags) {
  constexpr std::string_view kField = "volume_capability.mount.mount_flags";
  ParsedMountFlags out;
  for (const std::string& flag : flags) {
    ASSIGN_OR_RETURN(std::vector<std::string> parts, SplitOptions(flag));
    for (std::string& raw : parts) {
      std::string_view opt = raw;
      while (!opt.empty() && opt.front() == ' ') opt.remove_prefix(1);
      while (!opt.empty() && opt.back() == ' ') opt.remove_suffix(1);
      if (opt.empty()) continue;
      std::string_view value = opt;
      if (ConsumePrefix(&value, "context=")) {
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
          value = value.substr(1, value.size() - 2);
        }
        if (!IsPlausibleSelinuxLabel(value)) {
          return InvalidField(kField, "malformed SELinux context");
        }
        if (!out.selinux_context.empty() && out.selinux_context != value) {
          return InvalidField(kField, "two different SELinux contexts");
        }
        out.selinux_context = std::string(value);
        continue;
      }
      if (opt == "ro") {
        out.read_only = true;
        continue;
      }
      if (opt == "rw" || opt == "defaults") continue;  // the default anyway
      auto it = AllowList().find(opt);
      if (it == AllowList().end()) {
        // Name the option but never echo a value: mount flags may carry secrets.
        std::string_view name = opt.substr(0, opt.find('='));
        return InvalidField(kField, "mount option \"", Excerpt(name), "\" is not allowed");
      }
      out.options.push_back(it->second);
    }
  }
  std::sort(out.options.begin(), out.options.end());
  out.options.erase(std::unique(out.options.begin(), out.options.end()), out.options.end());
  return out;
}

}  // namespace lbcsi::agent
