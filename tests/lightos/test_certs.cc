#include "tests/lightos/test_certs.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>

namespace lbcsi::lightos::testing {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

void Check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("openssl: ") + what);
}

std::string BioString(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string KeyPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "write key");
  return BioString(bio.get());
}

std::string CertPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_X509(bio.get(), cert) == 1, "write cert");
  return BioString(bio.get());
}

void AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  Check(ext != nullptr, "extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

Cert NewCert(EVP_PKEY* key, const std::string& cn, long serial) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return cert;
}

Key ReadKey(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  Check(key != nullptr, "read key");
  return key;
}

Cert ReadCert(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  Check(cert != nullptr, "read cert");
  return cert;
}

long NextSerial() {
  static long serial = 1000;
  return ++serial;
}

}  // namespace

KeyCert MakeCa(const std::string& common_name) {
  Key key(EVP_EC_gen("P-256"));
  Check(key != nullptr, "keygen");
  Cert cert = NewCert(key.get(), common_name, NextSerial());
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  AddExt(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  AddExt(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExt(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  Check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "sign ca");
  return {KeyPem(key.get()), CertPem(cert.get())};
}

KeyCert MakeServerCert(const KeyCert& ca, const std::vector<std::string>& dns_names,
                       const std::vector<std::string>& ips) {
  Key ca_key = ReadKey(ca.key_pem);
  Cert ca_cert = ReadCert(ca.cert_pem);
  Key key(EVP_EC_gen("P-256"));
  Check(key != nullptr, "keygen");
  std::string cn = dns_names.empty() ? "server" : dns_names.front();
  Cert cert = NewCert(key.get(), cn, NextSerial());
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  AddExt(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  AddExt(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
  AddExt(cert.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth");
  std::string san;
  auto add = [&san](const char* kind, const std::string& value) {
    if (!san.empty()) san += ',';
    san += kind;
    san += value;
  };
  for (const auto& d : dns_names) add("DNS:", d);
  for (const auto& ip : ips) add("IP:", ip);
  if (!san.empty()) AddExt(cert.get(), ca_cert.get(), NID_subject_alt_name, san);
  Check(X509_sign(cert.get(), ca_key.get(), EVP_sha256()) > 0, "sign server");
  return {KeyPem(key.get()), CertPem(cert.get())};
}

}  // namespace lbcsi::lightos::testing
