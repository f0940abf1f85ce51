#pragma once
// Structured logging: one line per event, text or JSON, level-filtered.
// Every message and field value passes through ScrubSecrets() before output,
// so a secret that slipped into a string is still masked.
//
//   LOG(kInfo, "volume staged", {"volume_id", id}, {"ms", elapsed});
//   LOG(kDebug, "request", lbcsi::log::Field::Proto("req", request));  // csi_secret redacted

#include <concepts>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <google/protobuf/message.h>

#include "common/strings.h"

namespace lbcsi::log {

enum class Level : int { kTrace = 0, kDebug = 1, kInfo = 2, kWarn = 3, kError = 4 };
enum class Format { kText, kJson };

absl::StatusOr<Level> ParseLevel(std::string_view name);    // trace|debug|info|warn|error
absl::StatusOr<Format> ParseFormat(std::string_view name);  // text|json
std::string_view LevelName(Level level);

struct Options {
  Level level = Level::kInfo;
  Format format = Format::kText;
  std::string component;  // "controller", "agent", "helper", ...
};

// Configures the process-wide logger (stderr). Safe to call again.
void Init(const Options& options);
bool Enabled(Level level);
void SetLevel(Level level);

// Receives each finished line instead of stderr (tests).
using Sink = std::function<void(std::string_view line)>;
void SetSinkForTesting(Sink sink);

class Field {
 public:
  Field(std::string_view key, std::string_view value) : key_(key), value_(value), quoted_(true) {}
  Field(std::string_view key, const char* value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, const std::string& value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, bool value) : key_(key), value_(value ? "true" : "false") {}
  template <typename T>
  requires std::integral<T> || std::floating_point<T> Field(std::string_view key, T value)
      : key_(key), value_(Cat(value)) {}
  Field(std::string_view key, const absl::Status& status)
      : key_(key), value_(status.ToString()), quoted_(true) {}

  // Renders a proto message as JSON with csi_secret fields redacted.
  static Field Proto(std::string_view key, const google::protobuf::Message& message);

  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }
  bool quoted() const { return quoted_; }

 private:
  Field(std::string key, std::string value, bool quoted)
      : key_(std::move(key)), value_(std::move(value)), quoted_(quoted) {}
  std::string key_;
  std::string value_;
  bool quoted_ = false;  // text format: a string, quoted when it holds spaces
  bool raw_json_ = false;
  friend std::string FormatLine(Level, std::string_view, std::initializer_list<Field>);
};

void Write(Level level, std::string_view message, std::initializer_list<Field> fields);

// Exposed for tests: what Write() would print, without the trailing newline.
std::string FormatLine(Level level, std::string_view message, std::initializer_list<Field> fields);

}  // namespace lbcsi::log

#define LOG(level, message, ...)                                               \
  do {                                                                         \
    if (::lbcsi::log::Enabled(::lbcsi::log::Level::level)) {                   \
      ::lbcsi::log::Write(::lbcsi::log::Level::level, message, {__VA_ARGS__}); \
    }                                                                          \
  } while (false)
