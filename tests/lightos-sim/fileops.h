#pragma once
// File operations behind the emulator's volumes: sparse images, a sparse-aware
// copy for snapshots/clones, and crash-safe small-file writes for state and ACLs.

#include <cstdint>
#include <string>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

namespace lbcsi::sim {

// Writes `content` to a temp file beside `path`, fsyncs, renames over `path`,
// then fsyncs the directory: readers see the old or the new file, never a mix.
absl::Status AtomicWriteFile(const std::string& path, const std::string& content,
                             unsigned mode = 0644);

// Creates (or truncates to) a sparse file of `size` bytes without allocating blocks.
absl::Status CreateSparseFile(const std::string& path, uint64_t size);
// Grows an existing file to `size` bytes (sparse).
absl::Status GrowFile(const std::string& path, uint64_t size);

// Copies src to dst keeping holes: tries a reflink (FICLONE), else copies only the
// data extents found with SEEK_DATA/SEEK_HOLE via copy_file_range (read/write as a
// last resort). dst ends with src's size, or `size` when that is larger.
absl::Status SparseCopy(const std::string& src, const std::string& dst, uint64_t size);

// Bytes of the file that hold data: allocated blocks (st_blocks), and at least one
// block if SEEK_DATA finds data. Zero means no block was ever written.
absl::StatusOr<uint64_t> WrittenBytes(const std::string& path);

// Reads a whole (small) file.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace lbcsi::sim
