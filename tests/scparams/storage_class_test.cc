#include "scparams/storage_class.h"

#include <gtest/gtest.h>

namespace lbcsi {
namespace {

ParamMap Minimal() {
  return {{"mgmt-endpoint", "10.0.0.2:443,10.0.0.1:443"}, {"replica-count", "3"}};
}

void ExpectFieldError(const ParamMap& params, const std::string& key) {
  auto r = ParseStorageClassParams(params);
  ASSERT_FALSE(r.ok()) << "accepted " << key;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("parameters." + key), std::string::npos) << r.status();
}

TEST(StorageClassTest, MinimalHasShippedDefaults) {
  auto p = ParseStorageClassParams(Minimal());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(JoinEndpoints(p->mgmt_endpoints), "10.0.0.1:443,10.0.0.2:443");
  EXPECT_EQ(p->replica_count, 3u);
  EXPECT_FALSE(p->compression);
  EXPECT_EQ(p->scheme, MgmtScheme::kGrpcs);
  EXPECT_TRUE(p->project_name.empty());
  EXPECT_TRUE(p->qos_policy_name.empty());
  EXPECT_FALSE(p->host_encryption);
}

TEST(StorageClassTest, AllParameters) {
  ParamMap m = Minimal();
  m["compression"] = "enabled";
  m["project-name"] = "team-a";
  m["mgmt-scheme"] = "grpc";
  m["qos-policy-name"] = "gold_tier";
  m["csi.storage.k8s.io/pvc/name"] = "data";
  m["csi.storage.k8s.io/pvc/namespace"] = "prod";
  m["csi.storage.k8s.io/pv/name"] = "pvc-123";
  m["some-future-key"] = "ignored";
  auto p = ParseStorageClassParams(m);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->compression);
  EXPECT_EQ(p->project_name, "team-a");
  EXPECT_EQ(p->scheme, MgmtScheme::kGrpc);
  EXPECT_EQ(p->qos_policy_name, "gold_tier");
  EXPECT_EQ(p->pvc_name, "data");
  EXPECT_EQ(p->pvc_namespace, "prod");
  EXPECT_EQ(p->pv_name, "pvc-123");
}

TEST(StorageClassTest, HostEncryptionAcceptsShippedSpellings) {
  for (const char* v : {"enabled", "true"}) {
    ParamMap m = Minimal();
    m["host-encryption"] = v;
    EXPECT_TRUE(ParseStorageClassParams(m)->host_encryption) << v;
  }
  for (const char* v : {"disabled", "false", ""}) {
    ParamMap m = Minimal();
    m["host-encryption"] = v;
    EXPECT_FALSE(ParseStorageClassParams(m)->host_encryption) << v;
  }
}

TEST(StorageClassTest, ErrorsNameTheKey) {
  ExpectFieldError({{"replica-count", "1"}}, "mgmt-endpoint");
  ExpectFieldError({{"mgmt-endpoint", "10.0.0.1"}, {"replica-count", "1"}}, "mgmt-endpoint");
  ExpectFieldError({{"mgmt-endpoint", "10.0.0.1:443"}}, "replica-count");
  for (const char* rc : {"0", "4", "-1", "two", "1.5", "", " 2"}) {
    ParamMap m = Minimal();
    m["replica-count"] = rc;
    ExpectFieldError(m, "replica-count");
  }
  ParamMap m = Minimal();
  m["compression"] = "yes";
  ExpectFieldError(m, "compression");
  m = Minimal();
  m["project-name"] = "Team_A";
  ExpectFieldError(m, "project-name");
  m = Minimal();
  m["mgmt-scheme"] = "https";
  ExpectFieldError(m, "mgmt-scheme");
  m = Minimal();
  m["qos-policy-name"] = "bad name";
  ExpectFieldError(m, "qos-policy-name");
  m = Minimal();
  m["host-encryption"] = "maybe";
  ExpectFieldError(m, "host-encryption");
}

TEST(StorageClassTest, UnknownKeysAreBoundedAndValuesNeverEchoedWhole) {
  ParamMap m = Minimal();
  for (int i = 0; i < 600; ++i) m["x-" + std::to_string(i)] = "v";
  EXPECT_EQ(ParseStorageClassParams(m).status().code(), absl::StatusCode::kInvalidArgument);
  m = Minimal();
  m["x-big"] = std::string(300 * 1024, 'a');
  EXPECT_EQ(ParseStorageClassParams(m).status().code(), absl::StatusCode::kInvalidArgument);
  m = Minimal();
  m["x-unknown"] = "ignored";
  EXPECT_TRUE(ParseStorageClassParams(m).ok()) << "unknown keys within the bounds are ignored";
  const std::string secret = "password=" + std::string(5000, 's');
  for (const char* key : {"replica-count", "compression", "project-name", "qos-policy-name"}) {
    m = Minimal();
    m[key] = secret;
    absl::Status st = ParseStorageClassParams(m).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_LT(st.message().size(), 400u) << key;
    EXPECT_EQ(st.message().find(std::string(100, 's')), std::string::npos) << key;
  }
}

TEST(StorageClassTest, CompressionWithEncryptionIsRefused) {
  ParamMap m = Minimal();
  m["compression"] = "enabled";
  m["host-encryption"] = "enabled";
  ExpectFieldError(m, "host-encryption");
}

TEST(StorageClassTest, MutableParamsOnlyQos) {
  google::protobuf::Map<std::string, std::string> ok;
  ok["qos-policy-name"] = "silver";
  EXPECT_EQ(ParseMutableParams(ok)->qos_policy_name, "silver");
  google::protobuf::Map<std::string, std::string> bad;
  bad["replica-count"] = "2";
  auto r = ParseMutableParams(bad);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("mutable_parameters.replica-count"), std::string::npos);
}

TEST(StorageClassTest, MkfsOptionsAreParsedAndMisspeltOnesRefused) {
  ParamMap m = Minimal();
  m["mkfs-block-size"] = "1024";
  m["mkfs-bytes-per-inode"] = "4096";
  auto p = ParseStorageClassParams(m);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->mkfs.block_size, 1024u);
  EXPECT_EQ(p->mkfs.bytes_per_inode, 4096u);
  // Other unknown keys are ignored, but an mkfs-* key nobody knows would format with defaults
  // the author did not ask for.
  m = Minimal();
  m["mkfs-block-sise"] = "1024";
  ExpectFieldError(m, "mkfs-block-sise");
  m = Minimal();
  m["mkfs-inode-size"] = "100";
  ExpectFieldError(m, "mkfs-inode-size");
}

}  // namespace
}  // namespace lbcsi
