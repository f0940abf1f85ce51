#pragma once
// Keeps secrets out of logs and error messages.
//
// Three layers, because one mistake must not leak a token:
//  1. proto messages are rendered with every field marked `csi_secret`
//     (CSI's own option, reused by our helper API) replaced by "***";
//  2. values registered as secrets at run time (tokens read from files,
//     passphrases) are replaced wherever they appear in a string;
//  3. anything shaped like a JWT (three base64url parts, the first "eyJ") is masked.

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

// Applies layers 2 and 3 to free text.
std::string ScrubSecrets(std::string_view text);

}  // namespace lbcsi
