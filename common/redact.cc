#include "common/redact.h"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>

#include <absl/strings/escaping.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/util/json_util.h>

#include "csi/v1/csi.pb.h"

namespace lbcsi {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

bool IsSecretField(const FieldDescriptor* field) {
  return field->options().GetExtension(csi::v1::csi_secret);
}

// JSON prints bytes as base64, so "***" in a bytes field would read "Kioq". These bytes are
// the base64 decoding of "REDACTED": the log then says what happened.
std::string RedactedValue(const FieldDescriptor* field) {
  if (field->type() != FieldDescriptor::TYPE_BYTES) return std::string(kRedacted);
  std::string bytes;
  absl::Base64Unescape("REDACTED", &bytes);
  return bytes;
}

void RedactField(Message& message, const FieldDescriptor* field) {
  const Reflection* refl = message.GetReflection();
  if (field->is_map()) {
    // Keep the keys (which secrets were sent is useful), hide the values.
    const FieldDescriptor* value_field = field->message_type()->map_value();
    for (int i = 0; i < refl->FieldSize(message, field); ++i) {
      Message* entry = refl->MutableRepeatedMessage(&message, field, i);
      if (value_field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
        entry->GetReflection()->SetString(entry, value_field, RedactedValue(value_field));
      } else {
        entry->GetReflection()->ClearField(entry, value_field);
      }
    }
    return;
  }
  if (field->is_repeated()) {
    refl->ClearField(&message, field);
    return;
  }
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING && refl->HasField(message, field)) {
    refl->SetString(&message, field, RedactedValue(field));
  } else {
    refl->ClearField(&message, field);
  }
}

std::shared_mutex g_secrets_mu;
std::set<std::string, std::less<>>& Secrets() {
  static auto* secrets = new std::set<std::string, std::less<>>();
  return *secrets;
}

// Request-scoped secrets, newest use time per value (guarded by g_secrets_mu).
using SteadyTime = std::chrono::steady_clock::time_point;
struct TransientSecrets {
  std::map<std::string, SteadyTime, std::less<>> by_value;
  size_t bytes = 0;
};
TransientSecrets& Transient() {
  static auto* transient = new TransientSecrets();
  return *transient;
}

void EraseTransient(TransientSecrets& t, decltype(TransientSecrets::by_value)::iterator it) {
  t.bytes -= it->first.size();
  t.by_value.erase(it);
}

bool IsBase64UrlChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '=';
}

// Masks tokens of the form eyJ<b64>.<b64>.<b64> (a JWT's header always starts with "eyJ").
std::string MaskJwts(std::string text) {
  size_t pos = 0;
  while ((pos = text.find("eyJ", pos)) != std::string::npos) {
    size_t end = pos;
    int dots = 0;
    while (end < text.size() && (IsBase64UrlChar(text[end]) || text[end] == '.')) {
      if (text[end] == '.') ++dots;
      ++end;
    }
    if (dots >= 2) {
      text.replace(pos, end - pos, "***JWT***");
      pos += 9;
    } else {
      pos = end;
    }
  }
  return text;
}

}  // namespace

void RedactSecretFields(Message& message) {
  const Reflection* refl = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  refl->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (IsSecretField(field)) {
      RedactField(message, field);
      continue;
    }
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || field->is_map()) continue;
    if (field->is_repeated()) {
      for (int i = 0; i < refl->FieldSize(message, field); ++i) {
        RedactSecretFields(*refl->MutableRepeatedMessage(&message, field, i));
      }
    } else {
      RedactSecretFields(*refl->MutableMessage(&message, field));
    }
  }
}

std::string RedactedJson(const Message& message) {
  std::unique_ptr<Message> copy(message.New());
  copy->CopyFrom(message);
  RedactSecretFields(*copy);
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(*copy, &json, options).ok()) {
    json = "<unprintable " + std::string(message.GetTypeName()) + ">";
  }
  return ScrubSecrets(json);
}

void RegisterSecret(std::string_view secret) {
  if (secret.size() < 4) return;
  std::unique_lock lock(g_secrets_mu);
  Secrets().emplace(secret);
}

void RegisterTransientSecret(std::string_view secret) {
  if (secret.size() < 4 || secret.size() > kMaxTransientSecretBytes) return;
  const SteadyTime now = std::chrono::steady_clock::now();
  std::unique_lock lock(g_secrets_mu);
  TransientSecrets& t = Transient();
  for (auto it = t.by_value.begin(); it != t.by_value.end();) {
    auto next = std::next(it);
    if (now - it->second > kTransientSecretTtl) EraseTransient(t, it);
    it = next;
  }
  auto [it, inserted] = t.by_value.try_emplace(std::string(secret), now);
  it->second = now;
  if (inserted) t.bytes += secret.size();
  while (t.by_value.size() > kMaxTransientSecrets || t.bytes > kMaxTransientSecretBytes) {
    auto oldest =
        std::min_element(t.by_value.begin(), t.by_value.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; });
    EraseTransient(t, oldest);
  }
}

size_t TransientSecretBytes() {
  std::shared_lock lock(g_secrets_mu);
  return Transient().bytes;
}

void ForgetSecret(std::string_view secret) {
  std::unique_lock lock(g_secrets_mu);
  auto it = Secrets().find(secret);
  if (it != Secrets().end()) Secrets().erase(it);
}

std::string ScrubSecrets(std::string_view text) {
  std::string out(text);
  {
    std::shared_lock lock(g_secrets_mu);
    auto mask = [&out](const std::string& secret) {
      size_t pos = 0;
      while ((pos = out.find(secret, pos)) != std::string::npos) {
        out.replace(pos, secret.size(), kRedacted);
        pos += kRedacted.size();
      }
    };
    for (const std::string& secret : Secrets()) mask(secret);
    for (const auto& [secret, used] : Transient().by_value) mask(secret);
  }
  return MaskJwts(std::move(out));
}

}  // namespace lbcsi
