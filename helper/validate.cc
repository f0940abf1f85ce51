#include "helper/validate.h"

#include <arpa/inet.h>
#include <sys/mount.h>

#include <set>

#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::helper {
namespace {

bool IsLowerHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

}  // namespace

absl::Status ValidateUuid(std::string_view field, std::string_view uuid) {
  if (uuid.empty()) return InvalidField(field, "required");
  if (uuid.size() != 36) return InvalidField(field, "not a UUID (want 36 characters)");
  for (size_t i = 0; i < uuid.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? uuid[i] != '-' : !IsLowerHex(uuid[i])) {
      return InvalidField(field, "not a lower-case 8-4-4-4-12 hex UUID");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNqn(std::string_view field, std::string_view nqn) {
  if (nqn.empty()) return InvalidField(field, "required");
  if (nqn.size() > kMaxNqnBytes) return InvalidField(field, "longer than 223 bytes");
  std::string_view rest = nqn;
  if (!ConsumePrefix(&rest, "nqn.")) return InvalidField(field, "must start with \"nqn.\"");
  // yyyy-mm.
  if (rest.size() < 8 || rest[4] != '-' || rest[7] != '.') {
    return InvalidField(field, "must start with nqn.yyyy-mm.");
  }
  for (size_t i : {0, 1, 2, 3, 5, 6}) {
    if (rest[i] < '0' || rest[i] > '9') return InvalidField(field, "bad date in NQN");
  }
  for (char c : nqn) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == ',' || c == '=' || c == '\\' || c == '/') {
      return InvalidField(field, "NQN holds a character outside the printable allow-list");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateAddress(std::string_view field, const v1::TargetAddress& address) {
  if (address.ip().empty() || address.ip().size() > INET6_ADDRSTRLEN) {
    return InvalidField(field, "ip: required IP literal");
  }
  // inet_pton stops at a NUL: bytes after one would pass unchecked into the
  // fabrics option string.
  if (address.ip().find('\0') != std::string::npos) {
    return InvalidField(field, "ip: holds a NUL byte");
  }
  unsigned char buf[sizeof(in6_addr)];
  if (inet_pton(AF_INET, address.ip().c_str(), buf) != 1 &&
      inet_pton(AF_INET6, address.ip().c_str(), buf) != 1) {
    return InvalidField(field, "ip: not an IPv4 or IPv6 literal (no names, no brackets)");
  }
  if (address.port() == 0 || address.port() > 65535) {
    return InvalidField(field, "port: must be 1..65535");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::TargetAddress> ParseDiscoveryAddress(std::string_view traddr,
                                                        std::string_view trsvcid) {
  if (trsvcid.empty() || trsvcid.size() > 5) return InvalidField("trsvcid", "not a port number");
  uint32_t port = 0;
  for (char c : trsvcid) {
    if (c < '0' || c > '9') return InvalidField("trsvcid", "not a port number");
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  v1::TargetAddress a;
  a.set_ip(std::string(traddr));
  a.set_port(port);
  RETURN_IF_ERROR(ValidateAddress("traddr", a));
  return a;
}

absl::Status ValidateSelinuxLabel(std::string_view field, std::string_view label) {
  if (label.size() > kMaxSelinuxLabelBytes) return InvalidField(field, "label too long");
  for (char c : label) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == ',' || c == '-';
    if (!ok) return InvalidField(field, "label holds a character outside [A-Za-z0-9_.:,-]");
  }
  std::vector<std::string_view> parts = Split(label, ':');
  // user:role:type:level where the level itself may be s0-s0:c1,c2 (one more ':').
  if (parts.size() < 4 || parts.size() > 5) {
    return InvalidField(field, "label must be user:role:type:level");
  }
  for (std::string_view p : parts) {
    if (p.empty()) return InvalidField(field, "empty label component");
  }
  // Sensitivity "sN" or "sN-sM"; categories "cN" or "cN.cM", comma-separated.
  auto numbered = [](std::string_view s, char prefix) {
    if (s.size() < 2 || s[0] != prefix) return false;
    for (char c : s.substr(1)) {
      if (c < '0' || c > '9') return false;
    }
    return true;
  };
  std::vector<std::string_view> range = Split(parts[3], '-');
  if (range.size() > 2) return InvalidField(field, "malformed sensitivity range");
  for (std::string_view r : range) {
    if (!numbered(r, 's')) return InvalidField(field, "malformed sensitivity");
  }
  if (parts.size() == 5) {
    for (std::string_view cat : Split(parts[4], ',')) {
      std::vector<std::string_view> cr = Split(cat, '.');
      if (cr.size() > 2) return InvalidField(field, "malformed category range");
      for (std::string_view c : cr) {
        if (!numbered(c, 'c')) return InvalidField(field, "malformed category list");
      }
    }
  }
  for (size_t i = 0; i < 3; ++i) {
    if (parts[i].find(',') != std::string_view::npos ||
        parts[i].find('.') != std::string_view::npos) {
      return InvalidField(field, "user, role and type hold no ',' or '.'");
    }
  }
  return absl::OkStatus();
}

std::string_view FsTypeName(v1::FsType fs_type) {
  switch (fs_type) {
    case v1::FS_TYPE_EXT4: return "ext4";
    case v1::FS_TYPE_XFS: return "xfs";
    default: return "";
  }
}

absl::StatusOr<MountOptionSet> BuildMountOptions(
    v1::FsType fs_type, bool read_only, const google::protobuf::RepeatedField<int>& options,
    std::string_view selinux_context, bool staging) {
  MountOptionSet out;
  std::vector<std::string> parts;
  std::set<int> seen;
  if (read_only) {
    parts.push_back("ro");
    out.flags |= MS_RDONLY;
    if (staging && fs_type == v1::FS_TYPE_EXT4) parts.push_back("noload");
    if (staging && fs_type == v1::FS_TYPE_XFS) parts.push_back("norecovery");
  }
  // Always: a pod that is root inside its volume must not get working device nodes or
  // set-uid binaries out of it (docs/security.md). Requesting them again is a no-op.
  parts.push_back("nosuid");
  parts.push_back("nodev");
  out.flags |= MS_NOSUID | MS_NODEV;
  for (int raw : options) {
    if (!seen.insert(raw).second) continue;  // duplicates are harmless; keep one
    switch (static_cast<v1::MountOption>(raw)) {
      case v1::MOUNT_OPTION_NOATIME:
        parts.push_back("noatime");
        out.flags |= MS_NOATIME;
        break;
      case v1::MOUNT_OPTION_NODIRATIME:
        parts.push_back("nodiratime");
        out.flags |= MS_NODIRATIME;
        break;
      case v1::MOUNT_OPTION_DISCARD:
        if (staging) parts.push_back("discard");  // a bind mount inherits it from staging
        break;
      case v1::MOUNT_OPTION_NOUUID:
        if (fs_type != v1::FS_TYPE_XFS) return InvalidField("options", "nouuid is for xfs only");
        if (staging) parts.push_back("nouuid");
        break;
      case v1::MOUNT_OPTION_NOSUID:
      case v1::MOUNT_OPTION_NODEV: break;  // always on
      case v1::MOUNT_OPTION_NOEXEC:
        parts.push_back("noexec");
        out.flags |= MS_NOEXEC;
        break;
      default: return InvalidField("options", "unknown mount option value ", raw);
    }
  }
  if (!selinux_context.empty()) {
    RETURN_IF_ERROR(ValidateSelinuxLabel("selinux_context", selinux_context));
    // Quoted because the level holds commas, which libmount would split on.
    // A bind mount cannot change the label: publish validates and ignores it.
    if (staging) parts.push_back(Cat("context=\"", selinux_context, "\""));
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out.options += ',';
    out.options += parts[i];
  }
  return out;
}

absl::StatusOr<mkfsopts::MkfsOptions> ValidateMkfsOptions(const v1::MkfsOptions& options,
                                                          v1::FsType fs_type) {
  auto to_switch = [](v1::MkfsSwitch s,
                      std::string_view field) -> absl::StatusOr<mkfsopts::Switch> {
    switch (s) {
      case v1::MKFS_SWITCH_DEFAULT: return mkfsopts::Switch::kDefault;
      case v1::MKFS_SWITCH_ON: return mkfsopts::Switch::kOn;
      case v1::MKFS_SWITCH_OFF: return mkfsopts::Switch::kOff;
      default: return absl::InvalidArgumentError(Cat(field, ": unknown value"));
    }
  };
  mkfsopts::MkfsOptions out;
  out.block_size = options.block_size();
  out.inode_size = options.inode_size();
  out.bytes_per_inode = options.bytes_per_inode();
  out.cluster_size = options.cluster_size();
  ASSIGN_OR_RETURN(out.xfs_reflink, to_switch(options.xfs_reflink(), "mkfs.xfs_reflink"));
  ASSIGN_OR_RETURN(out.xfs_crc, to_switch(options.xfs_crc(), "mkfs.xfs_crc"));
  RETURN_IF_ERROR(mkfsopts::Under(
      "mkfs",
      mkfsopts::Check(out, fs_type == v1::FS_TYPE_XFS ? mkfsopts::Fs::kXfs : mkfsopts::Fs::kExt4)));
  return out;
}

}  // namespace lbcsi::helper
