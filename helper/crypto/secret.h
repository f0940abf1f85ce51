#pragma once
// A passphrase held by the helper: in its own anonymous mapping, excluded from
// core dumps (MADV_DONTDUMP, on top of the process being non-dumpable) and
// wiped with explicit_bzero before it is unmapped. Never printed: it has no
// conversion to text, only a view for the one libcryptsetup call that needs it.

#include <cstddef>
#include <string>
#include <string_view>

#include <absl/status/statusor.h>

namespace lbcsi::helper::crypto {

// The longest passphrase the helper accepts (the shipped plugin has no limit;
// cryptsetup's interactive default is 512 characters).
inline constexpr size_t kMaxPassphraseBytes = 512;

class SecretBytes {
 public:
  SecretBytes() = default;
  ~SecretBytes();
  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  // Copies `value` and wipes the source string in place (it is the caller's
  // last copy, e.g. a request field). INVALID_ARGUMENT when empty or longer
  // than kMaxPassphraseBytes; the message names `field`, never the value.
  static absl::StatusOr<SecretBytes> TakeFrom(std::string_view field, std::string* value);

  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void Wipe();
  char* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;
};

// Overwrites a string's bytes (explicit_bzero) and empties it.
void WipeString(std::string* s);

}  // namespace lbcsi::helper::crypto
