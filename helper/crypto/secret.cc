#include "helper/crypto/secret.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <utility>

#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::helper::crypto {

void WipeString(std::string* s) {
  if (s == nullptr || s->empty()) return;
  explicit_bzero(s->data(), s->size());
  s->clear();
  s->shrink_to_fit();
}

SecretBytes::~SecretBytes() {
  Wipe();
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Wipe();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, 0);
  }
  return *this;
}

void SecretBytes::Wipe() {
  if (data_ == nullptr) return;
  explicit_bzero(data_, mapped_);
  munmap(data_, mapped_);
  data_ = nullptr;
  size_ = 0;
  mapped_ = 0;
}

absl::StatusOr<SecretBytes> SecretBytes::TakeFrom(std::string_view field, std::string* value) {
  if (value == nullptr || value->empty()) {
    return InvalidField(field, "is required (a non-empty passphrase)");
  }
  if (value->size() > kMaxPassphraseBytes) {
    const size_t n = value->size();
    WipeString(value);
    return InvalidField(field, "is ", n, " bytes; at most ", kMaxPassphraseBytes, " are accepted");
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  SecretBytes out;
  out.mapped_ = (value->size() + page - 1) / page * page;
  void* p = mmap(nullptr, out.mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    WipeString(value);
    out.mapped_ = 0;
    return absl::ResourceExhaustedError("cannot allocate memory for a passphrase");
  }
  madvise(p, out.mapped_, MADV_DONTDUMP);  // best effort: the process is non-dumpable anyway
  out.data_ = static_cast<char*>(p);
  out.size_ = value->size();
  memcpy(out.data_, value->data(), value->size());
  WipeString(value);
  return out;
}

}  // namespace lbcsi::helper::crypto
