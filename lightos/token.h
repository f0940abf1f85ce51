#pragma once
// The JWT a LightOS client sends with every call, from a CSI secrets map or a
// token file. Kubernetes rotates Secret volumes by swapping the `..data`
// symlink, so the file is re-read whenever what it resolves to changes
// (device, inode, size or mtime): one stat() per call, a read only on change.

#include <sys/types.h>

#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <absl/status/statusor.h>

#include "lightos/client.h"

namespace lbcsi::lightos {

// Trims surrounding whitespace (a trailing '\n' in the header makes the server
// reset the stream) and refuses tokens that still hold whitespace or control
// characters, which cannot travel in an HTTP/2 header. Never echoes the token.
absl::StatusOr<std::string> CleanToken(std::string_view raw);

class TokenProvider {
 public:
  // An inline token wins over a file. Neither: Token() returns "" and no
  // authorization header is sent (a cluster that wants one answers UNAUTHENTICATED).
  static absl::StatusOr<std::shared_ptr<TokenProvider>> Create(const TokenSource& source);

  // The current token; re-reads the file when it changed. Every token it
  // returns has been registered with RegisterSecret() (a file) or
  // RegisterTransientSecret() (a request's inline token) so logs mask it.
  absl::StatusOr<std::string> Token();

  const std::string& file() const { return file_; }

 private:
  struct FileStamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    timespec mtime{};
    bool operator==(const FileStamp& o) const {
      return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
             mtime.tv_nsec == o.mtime.tv_nsec;
    }
  };

  TokenProvider(std::string inline_token, std::string file)
      : inline_(std::move(inline_token)), file_(std::move(file)) {}

  const std::string inline_;
  const std::string file_;
  std::mutex mu_;
  bool loaded_ = false;  // guarded by mu_
  FileStamp stamp_;      // guarded by mu_
  std::string cached_;   // guarded by mu_
};

}  // namespace lbcsi::lightos
