#include "helper/ops/probe.h"

#include <blkid/blkid.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <memory>

#include "common/strings.h"

namespace lbcsi::helper {
namespace {

struct ProbeDeleter {
  void operator()(blkid_struct_probe* p) const { blkid_free_probe(p); }
};
using Probe = std::unique_ptr<blkid_struct_probe, ProbeDeleter>;

absl::StatusOr<Probe> NewProbe(int fd) {
  Probe pr(blkid_new_probe());
  if (!pr) return absl::ResourceExhaustedError("blkid_new_probe failed");
  if (blkid_probe_set_device(pr.get(), fd, 0, 0) != 0) {
    return absl::UnavailableError("libblkid cannot use the device (I/O error?)");
  }
  blkid_probe_enable_superblocks(pr.get(), 1);
  blkid_probe_set_superblocks_flags(
      pr.get(), BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE | BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_BADCSUM);
  blkid_probe_enable_partitions(pr.get(), 1);
  blkid_probe_set_partitions_flags(pr.get(), BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT);
  return pr;
}

std::string Value(blkid_probe pr, const char* name) {
  const char* v = nullptr;
  if (blkid_probe_lookup_value(pr, name, &v, nullptr) == 0 && v) return v;
  return "";
}

}  // namespace

absl::StatusOr<ProbeResult> ProbeDevice(int fd) {
  ProbeResult out;
  {
    auto pr = NewProbe(fd);
    if (!pr.ok()) return pr.status();
    int rc = blkid_do_safeprobe(pr->get());
    if (rc == -1) return absl::UnavailableError("libblkid probe failed (I/O error?); not guessing");
    if (rc == -2) {
      out.kind = v1::CONTENT_KIND_OTHER;
      out.type = "ambiguous";  // several signatures: certainly not blank
      return out;
    }
    if (rc == 0) {
      std::string type = Value(pr->get(), "TYPE");
      std::string pttype = Value(pr->get(), "PTTYPE");
      std::string usage = Value(pr->get(), "USAGE");
      if (!pttype.empty() && type.empty()) {
        out.kind = v1::CONTENT_KIND_PARTITION_TABLE;
        out.type = pttype;
      } else if (usage == "filesystem") {
        out.kind = v1::CONTENT_KIND_FILESYSTEM;
        out.type = type;
      } else if (usage == "raid") {
        out.kind = v1::CONTENT_KIND_RAID;
        out.type = type;
      } else if (usage == "crypto") {
        out.kind = v1::CONTENT_KIND_CRYPTO;
        out.type = type;
      } else {
        out.kind = v1::CONTENT_KIND_OTHER;
        out.type = type.empty() ? pttype : type;
      }
      return out;
    }
  }
  // Nothing classified: walk every signature the way wipefs does.
  auto pr = NewProbe(fd);
  if (!pr.ok()) return pr.status();
  while (true) {
    int rc = blkid_do_probe(pr->get());
    if (rc == 1) break;  // done, nothing more
    if (rc < 0) return absl::UnavailableError("libblkid signature walk failed; not guessing");
    std::string type = Value(pr->get(), "TYPE");
    if (type.empty()) type = Value(pr->get(), "PTTYPE");
    out.kind = v1::CONTENT_KIND_OTHER;
    out.type = type.empty() ? "unknown-signature" : type;
    return out;
  }
  out.kind = v1::CONTENT_KIND_BLANK;
  return out;
}

absl::Status CheckEndsReadZero(int fd, const std::string& volume_uuid) {
  uint64_t size = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) != 0) {
    return absl::InternalError(Cat("BLKGETSIZE64: ", std::strerror(errno)));
  }
  const uint64_t head = std::min<uint64_t>(kZeroCheckBytes, size);
  const uint64_t tail_start = size > kZeroCheckBytes ? size - kZeroCheckBytes : 0;
  std::vector<char> buf(64 << 10);
  for (const auto& [start, end] : {std::pair{uint64_t{0}, head}, std::pair{tail_start, size}}) {
    for (uint64_t off = start; off < end;) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - off));
      const ssize_t n = pread(fd, buf.data(), want, static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        return absl::InternalError(Cat("reading volume ", volume_uuid, " at byte ", off, ": ",
                                       n < 0 ? std::strerror(errno) : "unexpected end"));
      }
      auto nonzero = std::find_if(buf.begin(), buf.begin() + n, [](char c) { return c != 0; });
      if (nonzero != buf.begin() + n) {
        return absl::FailedPreconditionError(
            Cat("volume ", volume_uuid, " probes blank but holds data (byte ",
                off + static_cast<uint64_t>(nonzero - buf.begin()),
                " is not zero); refusing to format a volume that may have been written"));
      }
      off += static_cast<uint64_t>(n);
    }
  }
  return absl::OkStatus();
}

}  // namespace lbcsi::helper
