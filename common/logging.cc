#include "common/logging.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include "common/strings.h"

#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/redact.h"

namespace lbcsi::log {
namespace {

struct State {
  std::atomic<int> level{static_cast<int>(Level::kInfo)};
  std::mutex mu;  // guards the fields below
  Format format = Format::kText;
  std::string component;
  std::shared_ptr<spdlog::logger> logger;
  Sink sink;
};

State& GetState() {
  static auto* state = new State();
  return *state;
}

std::shared_ptr<spdlog::logger> MakeStderrLogger() {
  auto logger =
      std::make_shared<spdlog::logger>("lbcsi", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%v");  // we format the whole line ourselves
  logger->set_level(spdlog::level::trace);
  logger->flush_on(spdlog::level::trace);
  return logger;
}

bool IsControl(char c) {
  auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

bool NeedsQuotes(std::string_view value) {
  if (value.empty()) return true;
  for (char c : value) {
    // Control bytes (NUL, ESC, newlines from a hostile id) are escaped by quoting.
    if (c == ' ' || c == '"' || c == '=' || IsControl(c)) return true;
  }
  return false;
}

// The free-text message of a text line with control bytes as \xNN: one event,
// one line, nothing a terminal interprets.
std::string EscapeControl(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  static const char kHex[] = "0123456789abcdef";
  for (char c : text) {
    if (!IsControl(c)) {
      out.push_back(c);
      continue;
    }
    auto u = static_cast<unsigned char>(c);
    out += "\\x";
    out.push_back(kHex[u >> 4]);
    out.push_back(kHex[u & 15]);
  }
  return out;
}

std::string Quote(std::string_view value) {
  // JSON string escaping gives a readable, unambiguous quoted form.
  return nlohmann::json(std::string(value))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

absl::StatusOr<Level> ParseLevel(std::string_view name) {
  std::string lower = ToLower(name);
  if (lower == "trace") return Level::kTrace;
  if (lower == "debug") return Level::kDebug;
  if (lower == "info") return Level::kInfo;
  if (lower == "warn" || lower == "warning") return Level::kWarn;
  if (lower == "error") return Level::kError;
  return absl::InvalidArgumentError(
      Cat("log level \"", name, "\" is not one of trace, debug, info, warn, error"));
}

absl::StatusOr<Format> ParseFormat(std::string_view name) {
  std::string lower = ToLower(name);
  if (lower == "text") return Format::kText;
  if (lower == "json") return Format::kJson;
  return absl::InvalidArgumentError(Cat("log format \"", name, "\" is not one of text, json"));
}

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kTrace: return "trace";
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "unknown";
}

void Init(const Options& options) {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  state.level = static_cast<int>(options.level);
  state.format = options.format;
  state.component = options.component;
  if (!state.logger) state.logger = MakeStderrLogger();
}

bool Enabled(Level level) {
  return static_cast<int>(level) >= GetState().level.load();
}

void SetLevel(Level level) {
  GetState().level = static_cast<int>(level);
}

void SetSinkForTesting(Sink sink) {
  State& state = GetState();
  std::lock_guard lock(state.mu);
  state.sink = std::move(sink);
}

Field Field::Proto(std::string_view key, const google::protobuf::Message& message) {
  Field field(std::string(key), RedactedJson(message), false);
  field.raw_json_ = true;
  return field;
}

std::string FormatLine(Level level, std::string_view message, std::initializer_list<Field> fields) {
  State& state = GetState();
  Format format;
  std::string component;
  {
    std::lock_guard lock(state.mu);
    format = state.format;
    component = state.component;
  }
  const std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  const std::string msg = ScrubSecrets(message);

  if (format == Format::kJson) {
    nlohmann::ordered_json line;
    line["ts"] = ts;
    line["level"] = LevelName(level);
    if (!component.empty()) line["component"] = component;
    line["msg"] = msg;
    for (const Field& f : fields) {
      std::string value = ScrubSecrets(f.value());
      if (f.raw_json_) {
        auto parsed = nlohmann::ordered_json::parse(value, nullptr, false);
        line[f.key()] = parsed.is_discarded() ? nlohmann::ordered_json(value) : parsed;
      } else if (!f.quoted() && value != "true" && value != "false") {
        auto parsed = nlohmann::ordered_json::parse(value, nullptr, false);
        line[f.key()] = parsed.is_number() ? parsed : nlohmann::ordered_json(value);
      } else if (!f.quoted()) {
        line[f.key()] = (value == "true");
      } else {
        line[f.key()] = value;
      }
    }
    return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }

  std::string level_name(LevelName(level));
  for (char& c : level_name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string out = Cat(ts, " ", level_name, " ");
  if (!component.empty()) out += Cat(component, ": ");
  out += EscapeControl(msg);
  for (const Field& f : fields) {
    std::string value = ScrubSecrets(f.value());
    out += Cat(" ", f.key(), "=", (f.quoted() && NeedsQuotes(value)) ? Quote(value) : value);
  }
  return out;
}

void Write(Level level, std::string_view message, std::initializer_list<Field> fields) {
  std::string line = FormatLine(level, message, fields);
  State& state = GetState();
  std::shared_ptr<spdlog::logger> logger;
  {
    std::lock_guard lock(state.mu);
    if (state.sink) {
      state.sink(line);
      return;
    }
    if (!state.logger) state.logger = MakeStderrLogger();
    logger = state.logger;
  }
  logger->log(spdlog::level::info, line);
}

}  // namespace lbcsi::log
