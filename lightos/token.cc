#include "lightos/token.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/redact.h"
#include "common/status.h"
#include "common/strings.h"

namespace lbcsi::lightos {
namespace {

// A JWT is a few KiB at most; anything far larger is not a token file.
constexpr size_t kMaxTokenBytes = 64 * 1024;

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

absl::Status FileError(std::string_view path, std::string_view what, int err) {
  return absl::FailedPreconditionError(
      Cat("LightOS token file ", path, ": ", what, ": ", std::strerror(err)));
}

}  // namespace

absl::StatusOr<std::string> CleanToken(std::string_view raw) {
  while (!raw.empty() && IsSpace(raw.back())) raw.remove_suffix(1);
  while (!raw.empty() && IsSpace(raw.front())) raw.remove_prefix(1);
  if (raw.empty()) return absl::UnauthenticatedError("LightOS token is empty");
  for (char c : raw) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return absl::UnauthenticatedError(
          "LightOS token holds whitespace or control characters inside it");
    }
  }
  return std::string(raw);
}

absl::StatusOr<std::shared_ptr<TokenProvider>> TokenProvider::Create(const TokenSource& source) {
  std::string inline_token;
  if (!source.inline_token.empty()) {
    if (source.inline_token.size() > kMaxTokenBytes) {
      return absl::InvalidArgumentError(
          Cat("LightOS token in the request's secrets is larger than ", kMaxTokenBytes, " bytes"));
    }
    ASSIGN_OR_RETURN(inline_token, CleanToken(source.inline_token));
    RegisterTransientSecret(inline_token);
  }
  return std::shared_ptr<TokenProvider>(new TokenProvider(inline_token, source.token_file));
}

absl::StatusOr<std::string> TokenProvider::Token() {
  if (!inline_.empty()) return inline_;
  if (file_.empty()) return std::string();

  // stat() follows the ..data symlink, so a swap shows up as a new inode.
  struct stat st {};
  if (::stat(file_.c_str(), &st) != 0) return FileError(file_, "stat", errno);
  FileStamp stamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim};

  std::lock_guard<std::mutex> lock(mu_);
  if (loaded_ && stamp == stamp_) return cached_;

  int fd = ::open(file_.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return FileError(file_, "open", errno);
  // Stamp what was actually opened: a swap between stat() and open() then
  // only costs one extra read on the next call.
  if (::fstat(fd, &st) == 0) stamp = FileStamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim};
  std::string data;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return FileError(file_, "read", err);
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > kMaxTokenBytes) {
      ::close(fd);
      return absl::FailedPreconditionError(
          Cat("LightOS token file ", file_, " is larger than ", kMaxTokenBytes, " bytes"));
    }
  }
  ::close(fd);

  auto token = CleanToken(data);
  if (!token.ok()) {
    return absl::Status(token.status().code(),
                        Cat(StdView(token.status().message()), " (file ", file_, ")"));
  }
  RegisterSecret(*token);
  cached_ = *std::move(token);
  stamp_ = stamp;
  loaded_ = true;
  return cached_;
}

}  // namespace lbcsi::lightos
