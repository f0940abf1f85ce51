#include "controller/inflight.h"

#include "common/strings.h"

namespace lbcsi::controller {

absl::StatusOr<Inflight::Hold> Inflight::Acquire(std::string key, std::string_view what) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!keys_.insert(key).second) {
    return absl::AbortedError(
        Cat("an operation on ", what, " is already in progress; retry when it has finished"));
  }
  return Hold(this, std::move(key));
}

void Inflight::Release(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  keys_.erase(key);
}

size_t Inflight::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_.size();
}

}  // namespace lbcsi::controller
