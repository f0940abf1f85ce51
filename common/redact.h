#pragma once
// Keeps secrets out of logs and error messages.
//
// Three layers, because one mistake must not leak a token:
//  1. proto messages are rendered with every field marked `csi_secret`
//     (CSI's own option, reused by our helper API) replaced by "***";
//  2. values registered as secrets at run time (tokens read from files,
//     passphrases) are replaced wherever they appear in a string;
//  3. anything shaped like a JWT (three base64url parts, the first "eyJ") is masked.

#include <chrono>
#include <string>
#include <string_view>

#include <google/protobuf/message.h>

namespace lbcsi {

inline constexpr std::string_view kRedacted = "***";

// Compact JSON of `message` with secret fields redacted (layer 1), then scrubbed.
std::string RedactedJson(const google::protobuf::Message& message);

// Clears secret fields in place (map values and strings become "***").
void RedactSecretFields(google::protobuf::Message& message);

// Remembers `secret` so that ScrubSecrets() masks it (layer 2). Values shorter
// than 4 bytes are ignored: masking them would garble ordinary text.
void RegisterSecret(std::string_view secret);
void ForgetSecret(std::string_view secret);

// Same for a secret that arrived with one request (a CSI secrets map): it is
// kept only while recently used and within a bound, because every caller can
// send a new one and none of them may grow the process without limit. The
// newest kMaxTransientSecrets values of at most kMaxTransientSecretBytes in
// all, each dropped kTransientSecretTtl after its last registration.
inline constexpr size_t kMaxTransientSecrets = 64;
inline constexpr size_t kMaxTransientSecretBytes = 1 << 20;
inline constexpr std::chrono::minutes kTransientSecretTtl{15};
void RegisterTransientSecret(std::string_view secret);
size_t TransientSecretBytes();  // what the bounded set holds now (tests, metrics)

// Applies layers 2 and 3 to free text.
std::string ScrubSecrets(std::string_view text);

}  // namespace lbcsi
