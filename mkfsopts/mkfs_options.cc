#include "mkfsopts/mkfs_options.h"

#include <array>
#include <charconv>

#include <absl/strings/str_join.h>

#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::mkfsopts {
namespace {

constexpr uint32_t kKiB = 1024;
constexpr uint32_t kMiB = 1024 * kKiB;
// Both filesystems mount block sizes up to the page size on every architecture we ship for.
constexpr std::array<uint32_t, 3> kBlockSizes = {1 * kKiB, 2 * kKiB, 4 * kKiB};
constexpr uint32_t kDefaultBlock = 4 * kKiB;  // what mkfs picks for any volume over 512 MiB
// mke2fs's own bounds: -i from 1 KiB to 64 MiB, -C up to 256 MiB.
constexpr uint32_t kMinBytesPerInode = 1 * kKiB;
constexpr uint32_t kMaxBytesPerInode = 64 * kMiB;
constexpr uint32_t kMaxClusterSize = 256 * kMiB;
// Inode sizes: ext4 128 B up to the block size; xfs 256 B to 2 KiB (512 B with crc, its default).
constexpr uint32_t kMinExt4Inode = 128;
constexpr uint32_t kMinXfsInode = 256;
constexpr uint32_t kMinXfsCrcInode = 512;
constexpr uint32_t kMaxXfsInode = 2 * kKiB;

constexpr std::array<std::string_view, 6> kKnownKeys = {kBlockSize,   kInodeSize,  kBytesPerInode,
                                                        kClusterSize, kXfsReflink, kXfsCrc};

absl::Status Invalid(std::string_view key, std::string_view why) {
  return absl::InvalidArgumentError(Cat(key, ": ", why));
}

bool IsPowerOfTwo(uint32_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

absl::StatusOr<uint32_t> ParseBytes(std::string_view key, std::string_view text) {
  uint32_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end || v == 0) {
    return Invalid(
        key, Cat("\"", Excerpt(text), "\" is not a positive whole number of bytes (no units)"));
  }
  return v;
}

absl::StatusOr<Switch> ParseSwitch(std::string_view key, std::string_view text) {
  if (text == "enabled") return Switch::kOn;
  if (text == "disabled") return Switch::kOff;
  return Invalid(key, Cat("\"", Excerpt(text), "\" is not one of enabled, disabled"));
}

std::string_view FsName(Fs fs) {
  return fs == Fs::kExt4 ? "ext4" : fs == Fs::kXfs ? "xfs" : "either filesystem";
}

absl::Status OnlyFor(std::string_view key, Fs wanted, Fs fs) {
  if (fs == Fs::kAny || fs == wanted) return absl::OkStatus();
  return Invalid(key, Cat("applies to ", FsName(wanted), " only, not to ", FsName(fs)));
}

absl::Status CheckInodeSize(const MkfsOptions& o, Fs fs) {
  if (!IsPowerOfTwo(o.inode_size)) return Invalid(kInodeSize, "must be a power of two");
  const uint32_t ext4_max = o.block_size ? o.block_size : kDefaultBlock;
  const bool ext4_ok = o.inode_size >= kMinExt4Inode && o.inode_size <= ext4_max;
  const uint32_t xfs_min = o.xfs_crc == Switch::kOff ? kMinXfsInode : kMinXfsCrcInode;
  const bool xfs_ok = o.inode_size >= xfs_min && o.inode_size <= kMaxXfsInode;
  if (fs == Fs::kExt4 && !ext4_ok) {
    return Invalid(kInodeSize,
                   Cat("ext4 takes ", kMinExt4Inode, " to ", ext4_max, " (its block size)"));
  }
  if (fs == Fs::kXfs && !xfs_ok) {
    return Invalid(kInodeSize, Cat("xfs takes ", xfs_min, " to ", kMaxXfsInode));
  }
  if (fs == Fs::kAny && !ext4_ok && !xfs_ok) {
    return Invalid(kInodeSize, "fits neither ext4 (128 to the block size) nor xfs (512 to 2048)");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Under(std::string_view where, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), Cat(where, ".", status.message()));
}

absl::StatusOr<MkfsOptions> Parse(const std::vector<std::string_view>& present_keys,
                                  const Lookup& lookup) {
  for (std::string_view key : present_keys) {
    if (std::find(kKnownKeys.begin(), kKnownKeys.end(), key) == kKnownKeys.end()) {
      return absl::InvalidArgumentError(
          Cat(Excerpt(key), ": not an mkfs option (known: ", kBlockSize, ", ", kInodeSize, ", ",
              kBytesPerInode, ", ", kClusterSize, ", ", kXfsReflink, ", ", kXfsCrc, ")"));
    }
  }
  MkfsOptions out;
  struct NumberKey {
    std::string_view key;
    uint32_t* field;
  };
  for (NumberKey k :
       {NumberKey{kBlockSize, &out.block_size}, NumberKey{kInodeSize, &out.inode_size},
        NumberKey{kBytesPerInode, &out.bytes_per_inode},
        NumberKey{kClusterSize, &out.cluster_size}}) {
    std::optional<std::string_view> text = lookup(k.key);
    if (!text) continue;
    absl::StatusOr<uint32_t> v = ParseBytes(k.key, *text);
    if (!v.ok()) return v.status();
    *k.field = *v;
  }
  struct SwitchKey {
    std::string_view key;
    Switch* field;
  };
  for (SwitchKey k : {SwitchKey{kXfsReflink, &out.xfs_reflink}, SwitchKey{kXfsCrc, &out.xfs_crc}}) {
    std::optional<std::string_view> text = lookup(k.key);
    if (!text) continue;
    absl::StatusOr<Switch> v = ParseSwitch(k.key, *text);
    if (!v.ok()) return v.status();
    *k.field = *v;
  }
  return out;
}

absl::Status Check(const MkfsOptions& o, Fs fs) {
  const bool ext4_only = o.bytes_per_inode != 0 || o.cluster_size != 0;
  const bool xfs_only = o.xfs_reflink != Switch::kDefault || o.xfs_crc != Switch::kDefault;
  if (ext4_only && xfs_only) {
    return absl::InvalidArgumentError(Cat(kBytesPerInode, " and ", kClusterSize,
                                          " (ext4) cannot be set with ", kXfsReflink, " or ",
                                          kXfsCrc, " (xfs)"));
  }
  if (o.block_size != 0 &&
      std::find(kBlockSizes.begin(), kBlockSizes.end(), o.block_size) == kBlockSizes.end()) {
    return Invalid(kBlockSize, "must be 1024, 2048 or 4096");
  }
  if (o.bytes_per_inode != 0) {
    RETURN_IF_ERROR(OnlyFor(kBytesPerInode, Fs::kExt4, fs));
    if (o.bytes_per_inode < kMinBytesPerInode || o.bytes_per_inode > kMaxBytesPerInode) {
      return Invalid(kBytesPerInode,
                     Cat("must be from ", kMinBytesPerInode, " to ", kMaxBytesPerInode));
    }
  }
  if (o.cluster_size != 0) {
    RETURN_IF_ERROR(OnlyFor(kClusterSize, Fs::kExt4, fs));
    const uint32_t block = o.block_size ? o.block_size : kDefaultBlock;
    if (!IsPowerOfTwo(o.cluster_size) || o.cluster_size < 2 * block ||
        o.cluster_size > kMaxClusterSize) {
      return Invalid(kClusterSize, Cat("must be a power of two from ", 2 * block,
                                       " (twice the block size) to ", kMaxClusterSize));
    }
  }
  if (o.xfs_reflink != Switch::kDefault) RETURN_IF_ERROR(OnlyFor(kXfsReflink, Fs::kXfs, fs));
  if (o.xfs_crc != Switch::kDefault) RETURN_IF_ERROR(OnlyFor(kXfsCrc, Fs::kXfs, fs));
  if (o.xfs_reflink == Switch::kOn && o.xfs_crc == Switch::kOff) {
    return Invalid(kXfsReflink, "needs crc (xfs reflink exists only on v5 filesystems)");
  }
  if (o.inode_size != 0) {
    Fs inode_fs = fs;
    if (inode_fs == Fs::kAny && ext4_only) inode_fs = Fs::kExt4;
    if (inode_fs == Fs::kAny && xfs_only) inode_fs = Fs::kXfs;
    RETURN_IF_ERROR(CheckInodeSize(o, inode_fs));
  }
  return absl::OkStatus();
}

std::map<std::string, std::string> ToKeys(const MkfsOptions& o) {
  std::map<std::string, std::string> out;
  auto number = [&out](const char* key, uint32_t v) {
    if (v != 0) out[key] = std::to_string(v);
  };
  auto toggle = [&out](const char* key, Switch s) {
    if (s != Switch::kDefault) out[key] = s == Switch::kOn ? "enabled" : "disabled";
  };
  number(kBlockSize, o.block_size);
  number(kInodeSize, o.inode_size);
  number(kBytesPerInode, o.bytes_per_inode);
  number(kClusterSize, o.cluster_size);
  toggle(kXfsReflink, o.xfs_reflink);
  toggle(kXfsCrc, o.xfs_crc);
  return out;
}

std::vector<std::string> Arguments(const MkfsOptions& o, Fs fs) {
  std::vector<std::string> args;
  if (fs == Fs::kExt4) {
    if (o.block_size) args.insert(args.end(), {"-b", std::to_string(o.block_size)});
    if (o.inode_size) args.insert(args.end(), {"-I", std::to_string(o.inode_size)});
    if (o.bytes_per_inode) args.insert(args.end(), {"-i", std::to_string(o.bytes_per_inode)});
    if (o.cluster_size) {
      args.insert(args.end(), {"-O", "bigalloc", "-C", std::to_string(o.cluster_size)});
    }
    return args;
  }
  if (o.block_size) args.insert(args.end(), {"-b", Cat("size=", o.block_size)});
  if (o.inode_size) args.insert(args.end(), {"-i", Cat("size=", o.inode_size)});
  std::vector<std::string> meta;
  // crc first: mkfs.xfs reads reflink's default from it.
  if (o.xfs_crc != Switch::kDefault) meta.push_back(Cat("crc=", o.xfs_crc == Switch::kOn ? 1 : 0));
  if (o.xfs_reflink != Switch::kDefault) {
    meta.push_back(Cat("reflink=", o.xfs_reflink == Switch::kOn ? 1 : 0));
  }
  if (!meta.empty()) args.insert(args.end(), {"-m", absl::StrJoin(meta, ",")});
  return args;
}

}  // namespace lbcsi::mkfsopts
