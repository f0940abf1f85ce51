#include "tests/lightos-sim/certs.h"

#include <filesystem>
#include <memory>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/status.h"
#include "common/strings.h"
#include "tests/lightos-sim/fileops.h"

namespace lbcsi::sim {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

absl::Status SslError(std::string_view what) {
  char buf[256] = {};
  ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
  return absl::InternalError(Cat(what, ": ", buf));
}

absl::Status AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Ptr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) return SslError(Cat("extension ", value));
  return absl::OkStatus();
}

absl::StatusOr<Ptr<X509>> MakeCert(EVP_PKEY* key, const std::string& cn, X509* issuer,
                                   EVP_PKEY* issuer_key, int days) {
  Ptr<X509> cert(X509_new());
  if (!cert) return SslError("X509_new");
  X509_set_version(cert.get(), 2);
  // A random positive serial, so that clients never see two certificates with one serial.
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) return SslError("RAND_bytes");
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509* signer = issuer ? issuer : cert.get();
  if (issuer == nullptr) {
    RETURN_IF_ERROR(AddExt(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE"));
    RETURN_IF_ERROR(AddExt(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign"));
    RETURN_IF_ERROR(AddExt(cert.get(), signer, NID_subject_key_identifier, "hash"));
  }
  (void)issuer_key;
  return cert;
}

absl::StatusOr<std::string> KeyPem(EVP_PKEY* key) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return SslError("PEM key");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<std::string> CertPem(X509* cert) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509(bio.get(), cert) != 1) return SslError("PEM cert");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace

absl::StatusOr<GeneratedCerts> GenerateCerts(const CertOptions& options) {
  Ptr<EVP_PKEY> ca_key(EVP_EC_gen("P-256"));
  Ptr<EVP_PKEY> server_key(EVP_EC_gen("P-256"));
  if (!ca_key || !server_key) return SslError("EC key generation");

  ASSIGN_OR_RETURN(Ptr<X509> ca, MakeCert(ca_key.get(), options.common_name + " test CA", nullptr,
                                          nullptr, options.days));
  if (X509_sign(ca.get(), ca_key.get(), EVP_sha256()) == 0) return SslError("sign CA");

  ASSIGN_OR_RETURN(Ptr<X509> server, MakeCert(server_key.get(), options.common_name, ca.get(),
                                              ca_key.get(), options.days));
  std::string san;
  // Cat, not "literal" + std::string&&: GCC 12 at -O3 warns (-Werror=restrict) on the latter.
  for (const auto& ip : options.ips) san += Cat(san.empty() ? "" : ",", "IP:", ip);
  for (const auto& d : options.dns) san += Cat(san.empty() ? "" : ",", "DNS:", d);
  if (san.empty())
    return absl::InvalidArgumentError("certificate needs at least one IP or DNS name");
  RETURN_IF_ERROR(AddExt(server.get(), ca.get(), NID_subject_alt_name, san));
  RETURN_IF_ERROR(AddExt(server.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(
      AddExt(server.get(), ca.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment"));
  RETURN_IF_ERROR(AddExt(server.get(), ca.get(), NID_ext_key_usage, "serverAuth"));
  RETURN_IF_ERROR(AddExt(server.get(), ca.get(), NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(server.get(), ca_key.get(), EVP_sha256()) == 0) return SslError("sign server");

  GeneratedCerts out;
  ASSIGN_OR_RETURN(out.ca_cert_pem, CertPem(ca.get()));
  ASSIGN_OR_RETURN(out.ca_key_pem, KeyPem(ca_key.get()));
  ASSIGN_OR_RETURN(out.server_cert_pem, CertPem(server.get()));
  ASSIGN_OR_RETURN(out.server_key_pem, KeyPem(server_key.get()));
  return out;
}

absl::Status WriteCerts(const GeneratedCerts& certs, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(Cat("create ", dir, ": ", ec.message()));
  RETURN_IF_ERROR(AtomicWriteFile(dir + "/ca.crt", certs.ca_cert_pem));
  RETURN_IF_ERROR(AtomicWriteFile(dir + "/server.crt", certs.server_cert_pem));
  for (const auto& [name, pem] :
       {std::pair{"/ca.key", &certs.ca_key_pem}, std::pair{"/server.key", &certs.server_key_pem}}) {
    RETURN_IF_ERROR(AtomicWriteFile(dir + name, *pem, 0600));
  }
  return absl::OkStatus();
}

}  // namespace lbcsi::sim
