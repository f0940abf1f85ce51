#include "helper/inflight.h"

#include "common/strings.h"

namespace lbcsi::helper {

absl::StatusOr<InFlight::Guard> InFlight::TryAcquire(std::vector<std::string> keys) {
  std::lock_guard<std::mutex> g(mu_);
  for (const std::string& k : keys) {
    if (busy_.count(k)) {
      return absl::AbortedError(Cat("an operation on ", k, " is already in progress; retry later"));
    }
  }
  std::vector<std::string> taken;
  for (std::string& k : keys) {
    if (busy_.insert(k).second) taken.push_back(std::move(k));  // tolerate duplicate keys
  }
  return Guard(this, std::move(taken));
}

bool InFlight::Busy(const std::string& key) {
  std::lock_guard<std::mutex> g(mu_);
  return busy_.count(key) > 0;
}

void InFlight::Release(const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> g(mu_);
  for (const std::string& k : keys) busy_.erase(k);
}

}  // namespace lbcsi::helper
