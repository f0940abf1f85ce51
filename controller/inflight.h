#pragma once
// Per-key in-flight guard: a second call for a volume (or name) that is
// already being worked on gets ABORTED instead of racing the first one.
// Keys are independent; there is no global lock held across LightOS calls.

#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <absl/status/statusor.h>

namespace lbcsi::controller {

class Inflight {
 public:
  class Hold {
   public:
    Hold(Hold&& other) noexcept : owner_(other.owner_), key_(std::move(other.key_)) {
      other.owner_ = nullptr;
    }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    Hold& operator=(Hold&&) = delete;
    ~Hold() {
      if (owner_ != nullptr) owner_->Release(key_);
    }

   private:
    friend class Inflight;
    Hold(Inflight* owner, std::string key) : owner_(owner), key_(std::move(key)) {}
    Inflight* owner_;
    std::string key_;
  };

  // ABORTED naming `what` when `key` is held by another call.
  absl::StatusOr<Hold> Acquire(std::string key, std::string_view what);
  size_t size() const;

 private:
  void Release(const std::string& key);
  mutable std::mutex mu_;
  std::set<std::string> keys_;
};

}  // namespace lbcsi::controller
