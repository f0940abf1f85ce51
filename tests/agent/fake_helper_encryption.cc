// FakeHelper: the host-encryption RPCs.
#include "tests/agent/fake_helper.h"

namespace lbcsi::agent::testing {
namespace {

grpc::Status Err(grpc::StatusCode code, const std::string& msg) {
  return grpc::Status(code, msg);
}

// The helper's passphrase rule, with a message that never holds the value.
bool BadPassphrase(const hv1::Passphrase& p, grpc::Status* st) {
  if (p.value().empty()) {
    *st = Err(grpc::StatusCode::INVALID_ARGUMENT, "passphrase: is required");
    return true;
  }
  if (p.value().size() > 512) {
    *st = Err(grpc::StatusCode::INVALID_ARGUMENT, "passphrase: longer than 512 bytes");
    return true;
  }
  return false;
}

}  // namespace

grpc::Status FakeHelper::FormatEncrypted(grpc::ServerContext*,
                                         const hv1::FormatEncryptedRequest* req,
                                         hv1::FormatEncryptedResponse* resp) {
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("FormatEncrypted", req->volume_uuid(), &inj)) return inj;
  if (BadPassphrase(req->passphrase(), &inj)) return inj;
  if (!attached_.count(req->volume_uuid()))
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "not attached");
  if (req->proof() == hv1::NEVER_WRITTEN_PROOF_UNSPECIFIED || req->read_only() ||
      req->multi_node()) {
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "refusing to encrypt");
  }
  FakeDisk& d = disks_[req->volume_uuid()];
  if (d.kind == hv1::CONTENT_KIND_CRYPTO) return grpc::Status::OK;  // never re-formatted
  if (d.kind != hv1::CONTENT_KIND_BLANK) {
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "already holds " + d.type);
  }
  d.kind = hv1::CONTENT_KIND_CRYPTO;
  d.type = "crypto_LUKS";
  d.luks_passphrase = req->passphrase().value();
  d.inner_kind = hv1::CONTENT_KIND_BLANK;
  d.inner_type.clear();
  resp->set_formatted(true);
  return grpc::Status::OK;
}

grpc::Status FakeHelper::OpenEncrypted(grpc::ServerContext*, const hv1::OpenEncryptedRequest* req,
                                       hv1::OpenEncryptedResponse* resp) {
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("OpenEncrypted", req->volume_uuid(), &inj)) return inj;
  if (BadPassphrase(req->passphrase(), &inj)) return inj;
  if (!attached_.count(req->volume_uuid()))
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "not attached");
  const FakeDisk& d = disks_[req->volume_uuid()];
  resp->set_mapper_name("lbcsi-" + req->volume_uuid());
  if (d.kind != hv1::CONTENT_KIND_CRYPTO) {
    return Err(grpc::StatusCode::FAILED_PRECONDITION, "no LUKS2 header");
  }
  // Checked also when the mapping is already open, as the real helper does.
  if (d.luks_passphrase != req->passphrase().value()) {
    return Err(grpc::StatusCode::PERMISSION_DENIED,
               "the passphrase opens no key slot of the LUKS2 header on /dev/loop7");
  }
  resp->set_already_open(!open_.insert(req->volume_uuid()).second);
  resp->set_device_name("dm-0");
  resp->set_size_bytes(d.size - (16 << 20));
  return grpc::Status::OK;
}

grpc::Status FakeHelper::CloseEncrypted(grpc::ServerContext*, const hv1::CloseEncryptedRequest* req,
                                        hv1::CloseEncryptedResponse* resp) {
  std::lock_guard<std::mutex> l(mu_);
  grpc::Status inj;
  if (Begin("CloseEncrypted", req->volume_uuid(), &inj)) return inj;
  for (const auto& [path, m] : mounts_) {
    if (m.uuid == req->volume_uuid()) {
      return Err(grpc::StatusCode::FAILED_PRECONDITION, "mapping in use at " + path);
    }
  }
  resp->set_was_open(open_.erase(req->volume_uuid()) > 0);
  return grpc::Status::OK;
}

}  // namespace lbcsi::agent::testing
