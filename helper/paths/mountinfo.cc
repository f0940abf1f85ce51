#include "helper/paths/mountinfo.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdlib>

#include "common/strings.h"

namespace lbcsi::helper {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    auto oct = [](char c) { return c >= '0' && c <= '7'; };
    if (s[i] == '\\' && i + 3 < s.size() && oct(s[i + 1]) && oct(s[i + 2]) && oct(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
      continue;
    }
    out += s[i];
  }
  return out;
}

bool HasToken(std::string_view list, std::string_view opt) {
  for (std::string_view o : Split(list, ',')) {
    if (o == opt) return true;
  }
  return false;
}

}  // namespace

bool MountEntry::read_only() const {
  return HasToken(options, "ro");
}
bool MountEntry::super_read_only() const {
  return HasToken(super_options, "ro");
}
bool MountEntry::HasOption(std::string_view opt) const {
  return HasToken(options, opt) || HasToken(super_options, opt);
}

absl::StatusOr<std::vector<MountEntry>> ParseMountInfo(std::string_view text) {
  std::vector<MountEntry> out;
  for (std::string_view line : Split(text, '\n')) {
    if (line.empty()) continue;
    std::vector<std::string_view> f = Split(line, ' ');
    // id parent maj:min root mountpoint options [optional...] - fstype source superopts
    size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (f.size() < 9 || dash + 2 >= f.size()) {
      return absl::DataLossError(Cat("malformed mountinfo line: ", line));
    }
    MountEntry e;
    e.id = std::strtoull(std::string(f[0]).c_str(), nullptr, 10);
    e.parent_id = std::strtoull(std::string(f[1]).c_str(), nullptr, 10);
    std::vector<std::string_view> mm = Split(f[2], ':');
    if (mm.size() != 2) return absl::DataLossError(Cat("malformed mountinfo line: ", line));
    e.dev = makedev(std::strtoul(std::string(mm[0]).c_str(), nullptr, 10),
                    std::strtoul(std::string(mm[1]).c_str(), nullptr, 10));
    e.root = Unescape(f[3]);
    e.mount_point = Unescape(f[4]);
    e.options = std::string(f[5]);
    e.fs_type = std::string(f[dash + 1]);
    e.source = Unescape(f[dash + 2]);
    e.super_options = dash + 3 < f.size() ? std::string(f[dash + 3]) : "";
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::vector<MountEntry>> ReadMountInfo() {
  int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError("cannot open /proc/self/mountinfo");
  std::string text;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(n));
  close(fd);
  if (n < 0) return absl::InternalError("cannot read /proc/self/mountinfo");
  return ParseMountInfo(text);
}

std::optional<MountEntry> FindById(const std::vector<MountEntry>& entries, uint64_t id) {
  for (const MountEntry& e : entries) {
    if (e.id == id) return e;
  }
  return std::nullopt;
}

}  // namespace lbcsi::helper
