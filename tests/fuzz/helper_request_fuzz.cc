// Fuzzes the checks the helper runs on a request before it touches anything
// (helper/validate.h): UUIDs, NQNs, target addresses, SELinux labels and the
// mount option builder. Input: newline-separated fields
//   uuid \n nqn \n ip \n port \n selinux label \n option bytes \n flags
// Each accepted value is re-checked against an independent statement of the
// rule; a value accepted against the rule aborts.
#include <sys/mount.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "helper/validate.h"

namespace {

namespace v1 = lbcsi::helper::v1;

void Check(bool ok) {
  if (!ok) std::abort();
}

bool IsUuidShape(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

// The characters that would let an NQN break out of the fabrics option string
// or a sysfs path.
bool NqnIsSafe(std::string_view s) {
  if (s.size() > lbcsi::helper::kMaxNqnBytes || s.rfind("nqn.", 0) != 0) return false;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u >= 0x7f || c == ',' || c == '=' || c == '/' || c == '\\') return false;
  }
  return true;
}

bool LabelCharsOk(std::string_view s) {
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == ',' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::vector<std::string> SplitLines(std::string_view in, size_t max) {
  std::vector<std::string> out;
  while (out.size() + 1 < max) {
    size_t nl = in.find('\n');
    if (nl == std::string_view::npos) break;
    out.emplace_back(in.substr(0, nl));
    in.remove_prefix(nl + 1);
  }
  out.emplace_back(in);
  while (out.size() < max) out.emplace_back();
  return out;
}

// Splits libmount's option string on commas outside double quotes.
std::vector<std::string> SplitOptions(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : s) {
    if (c == '"') quoted = !quoted;
    if (c == ',' && !quoted) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  Check(!quoted);  // a label can never leave a quote open
  if (!s.empty()) out.push_back(cur);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> f = SplitLines(input, 7);

  if (lbcsi::helper::ValidateUuid("volume_uuid", f[0]).ok()) Check(IsUuidShape(f[0]));
  if (lbcsi::helper::ValidateNqn("subsystem_nqn", f[1]).ok()) Check(NqnIsSafe(f[1]));

  v1::TargetAddress address;
  address.set_ip(f[2]);
  uint64_t port = 0;
  for (char c : f[3].substr(0, 12)) port = port * 10 + static_cast<unsigned char>(c) % 10;
  address.set_port(static_cast<uint32_t>(port));
  if (lbcsi::helper::ValidateAddress("nvme_endpoints[0]", address).ok()) {
    Check(address.port() >= 1 && address.port() <= 65535);
    Check(!address.ip().empty() && address.ip().find_first_of(" ,=[]/") == std::string::npos);
  }

  const std::string& label = f[4];
  const bool label_ok = lbcsi::helper::ValidateSelinuxLabel("selinux_context", label).ok();
  if (label_ok) {
    Check(label.size() <= lbcsi::helper::kMaxSelinuxLabelBytes && LabelCharsOk(label));
    Check(label.find('"') == std::string::npos);
  }

  google::protobuf::RepeatedField<int> options;
  for (unsigned char c : f[5].substr(0, 16)) options.Add(static_cast<int>(c % 12) - 1);
  const unsigned flags = f[6].empty() ? 0 : static_cast<unsigned char>(f[6][0]);
  const auto fs = static_cast<v1::FsType>(flags % 4);
  const bool read_only = flags & 4;
  const bool staging = flags & 8;
  auto built = lbcsi::helper::BuildMountOptions(fs, read_only, options, label, staging);
  if (built.ok()) {
    Check(label.empty() || label_ok);  // an invalid label never reaches libmount
    static const std::set<std::string> kKnown = {"ro",         "noload",  "norecovery", "noatime",
                                                 "nodiratime", "discard", "nouuid",     "nosuid",
                                                 "nodev",      "noexec"};
    std::set<std::string> seen;
    for (const std::string& opt : SplitOptions(built->options)) {
      Check(seen.insert(opt).second);  // no option twice
      if (opt.rfind("context=", 0) == 0) {
        Check(staging && opt == "context=\"" + label + "\"");
      } else {
        Check(kKnown.count(opt) == 1);
      }
    }
    Check(read_only == ((built->flags & MS_RDONLY) != 0));
    Check(read_only == (seen.count("ro") == 1));
    Check(!seen.count("nouuid") || fs == v1::FS_TYPE_XFS);
    Check(built->options.find('\n') == std::string::npos);
  }
  return 0;
}
