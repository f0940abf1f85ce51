#pragma once
// Per-volume in-flight guard: a second call on a volume that is busy gets
// ABORTED at once instead of queueing behind the first. There is no global lock:
// the set is only touched for insert/erase.

#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace lbcsi::agent {

class InFlight {
 public:
  class Guard {
   public:
    Guard() = default;
    Guard(InFlight* owner, std::string key) : owner_(owner), key_(std::move(key)) {}
    Guard(Guard&& other) noexcept : owner_(other.owner_), key_(std::move(other.key_)) {
      other.owner_ = nullptr;
    }
    Guard& operator=(Guard&&) = delete;
    Guard(const Guard&) = delete;
    ~Guard() {
      if (owner_ != nullptr) owner_->Release(key_);
    }
    bool held() const { return owner_ != nullptr; }

   private:
    InFlight* owner_ = nullptr;
    std::string key_;
  };

  // A held guard, or an empty one when `key` is busy.
  Guard TryAcquire(std::string_view key) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!busy_.emplace(key).second) return Guard();
    return Guard(this, std::string(key));
  }

  bool Busy(std::string_view key) {
    std::lock_guard<std::mutex> lock(mu_);
    return busy_.count(std::string(key)) > 0;
  }

 private:
  void Release(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    busy_.erase(key);
  }
  std::mutex mu_;
  std::set<std::string, std::less<>> busy_;
};

}  // namespace lbcsi::agent
