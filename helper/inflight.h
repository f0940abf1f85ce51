#pragma once
// The helper's own per-volume in-flight table (docs/design.md rule 3): a second
// call on a volume (or path) that is busy gets ABORTED at once instead of
// queueing behind a call that may be stuck in the kernel. No global lock is
// held while work runs.

#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <absl/status/statusor.h>

namespace lbcsi::helper {

class InFlight {
 public:
  class Guard {
   public:
    Guard(InFlight* table, std::vector<std::string> keys) : table_(table), keys_(std::move(keys)) {}
    Guard(Guard&& o) noexcept
        : table_(std::exchange(o.table_, nullptr)), keys_(std::move(o.keys_)) {}
    Guard(const Guard&) = delete;
    ~Guard() {
      if (table_) table_->Release(keys_);
    }

   private:
    InFlight* table_;
    std::vector<std::string> keys_;
  };

  // All keys or none; ABORTED naming the busy key otherwise.
  absl::StatusOr<Guard> TryAcquire(std::vector<std::string> keys);
  bool Busy(const std::string& key);

 private:
  void Release(const std::vector<std::string>& keys);
  std::mutex mu_;
  std::set<std::string> busy_;
};

}  // namespace lbcsi::helper
