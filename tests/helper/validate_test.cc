#include "helper/validate.h"

#include <sys/mount.h>

#include <gtest/gtest.h>

namespace lbcsi::helper {
namespace {

google::protobuf::RepeatedField<int> Opts(std::initializer_list<v1::MountOption> o) {
  google::protobuf::RepeatedField<int> r;
  for (auto x : o) r.Add(x);
  return r;
}

TEST(ValidateUuid, AcceptsOnlyLowerCaseCanonical) {
  EXPECT_TRUE(ValidateUuid("f", "0a1b2c3d-0000-4000-8000-00000000abcd").ok());
  for (const char* bad :
       {"", "0A1B2C3D-0000-4000-8000-00000000ABCD", "../../etc/passwd",
        "0a1b2c3d000040008000000000000abcd", "0a1b2c3d-0000-4000-8000-00000000abcde",
        "0a1b2c3d-0000-4000-8000-00000000abc/", "0a1b2c3d_0000-4000-8000-00000000abcd"}) {
    absl::Status st = ValidateUuid("volume_uuid", bad);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("volume_uuid"), absl::string_view::npos);
  }
}

TEST(ValidateNqn, RefusesOptionInjectionAndGarbage) {
  EXPECT_TRUE(ValidateNqn("n", "nqn.2016-01.com.lightbitslabs:uuid:abc-def").ok());
  EXPECT_TRUE(ValidateNqn("n", "nqn.2014-08.org.nvmexpress.discovery").ok());
  for (std::string bad : {std::string(""), std::string("nqn"), std::string("foo.2014-08.x:y"),
                          std::string("nqn.2014-08.x:y,hostnqn=evil"), std::string("nqn.20a4-08.x"),
                          std::string("nqn.2014-08.x:a b"), std::string("nqn.2014-08.x:\n"),
                          "nqn.2014-08.x:" + std::string(300, 'a')}) {
    EXPECT_EQ(ValidateNqn("n", bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ParseDiscoveryAddress, OnlyAddressLiteralsAndPortDigitsReachLibnvme) {
  absl::StatusOr<v1::TargetAddress> ok = ParseDiscoveryAddress("10.0.0.7", "4420");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->ip(), "10.0.0.7");
  EXPECT_EQ(ok->port(), 4420u);
  EXPECT_TRUE(ParseDiscoveryAddress("fd00::7", "8009").ok());
  // libnvme joins connect options as "%s,%s=%s": a comma in either field
  // would add options of the target's choosing.
  const std::pair<std::string, std::string> bad[] = {{"10.0.0.7", "4420,hdr_digest"},
                                                     {"10.0.0.7,nr_io_queues=1", "4420"},
                                                     {"10.0.0.7", ""},
                                                     {"10.0.0.7", " 4420"},
                                                     {"10.0.0.7", "+4420"},
                                                     {"10.0.0.7", "0"},
                                                     {"10.0.0.7", "65536"},
                                                     {"10.0.0.7", "999999"},
                                                     {"target.example", "4420"},
                                                     {"[fd00::7]", "4420"},
                                                     {"", "4420"},
                                                     {std::string("10.0.0.7\0x", 10), "4420"}};
  for (const auto& [ip, port] : bad) {
    EXPECT_EQ(ParseDiscoveryAddress(ip, port).status().code(), absl::StatusCode::kInvalidArgument)
        << ip << " " << port;
  }
}

TEST(ValidateAddress, IpLiteralsAndPorts) {
  v1::TargetAddress a;
  a.set_ip("10.0.0.1");
  a.set_port(4420);
  EXPECT_TRUE(ValidateAddress("a", a).ok());
  a.set_ip("fe80::1");
  EXPECT_TRUE(ValidateAddress("a", a).ok());
  for (const char* bad : {"", "host.example.com", "[::1]", "10.0.0.1,trsvcid=1", "1.2.3.4.5"}) {
    a.set_ip(bad);
    EXPECT_FALSE(ValidateAddress("a", a).ok()) << bad;
  }
  a.set_ip("10.0.0.1");
  a.set_port(0);
  EXPECT_FALSE(ValidateAddress("a", a).ok());
  a.set_port(70000);
  EXPECT_FALSE(ValidateAddress("a", a).ok());
}

TEST(ValidateSelinuxLabel, Shapes) {
  EXPECT_TRUE(ValidateSelinuxLabel("c", "system_u:object_r:container_file_t:s0:c1,c2").ok());
  EXPECT_TRUE(ValidateSelinuxLabel("c", "system_u:object_r:container_file_t:s0").ok());
  for (const char* bad :
       {"system_u:object_r:container_file_t", "\"system_u:object_r:t:s0\"", "a:b:c:s0,rw",
        "a:b:c:s0 ,x", "a:b:c:s0:c1,,c2", "a::c:s0", "a:b:c:s0:c1,c2,"}) {
    EXPECT_FALSE(ValidateSelinuxLabel("c", bad).ok()) << bad;
  }
}

TEST(BuildMountOptions, StagingReadOnlyAddsJournalGuards) {
  auto ext4 = BuildMountOptions(v1::FS_TYPE_EXT4, true, Opts({v1::MOUNT_OPTION_NOATIME}), "", true);
  ASSERT_TRUE(ext4.ok());
  EXPECT_EQ(ext4->options, "ro,noload,nosuid,nodev,noatime");
  EXPECT_EQ(ext4->flags, static_cast<unsigned long>(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOATIME));
  auto xfs = BuildMountOptions(v1::FS_TYPE_XFS, true, Opts({v1::MOUNT_OPTION_NOUUID}), "", true);
  ASSERT_TRUE(xfs.ok());
  EXPECT_EQ(xfs->options, "ro,norecovery,nosuid,nodev,nouuid");
}

TEST(BuildMountOptions, ContextIsQuotedAndValidated) {
  auto r = BuildMountOptions(v1::FS_TYPE_EXT4, false, Opts({}),
                             "system_u:object_r:container_file_t:s0:c1,c2", true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->options, "nosuid,nodev,context=\"system_u:object_r:container_file_t:s0:c1,c2\"");
  EXPECT_FALSE(BuildMountOptions(v1::FS_TYPE_EXT4, false, Opts({}), "a:b:c:s0\",exec", true).ok());
  // Publish: validated, but a bind cannot relabel, so nothing is added.
  auto p = BuildMountOptions(v1::FS_TYPE_UNSPECIFIED, false, Opts({v1::MOUNT_OPTION_NOSUID}),
                             "system_u:object_r:container_file_t:s0", false);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->options, "nosuid,nodev");
  EXPECT_EQ(p->flags, static_cast<unsigned long>(MS_NOSUID | MS_NODEV));
}

TEST(BuildMountOptions, RefusesUnknownAndMisplacedOptions) {
  google::protobuf::RepeatedField<int> unknown;
  unknown.Add(99);
  EXPECT_EQ(BuildMountOptions(v1::FS_TYPE_EXT4, false, unknown, "", true).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(
      BuildMountOptions(v1::FS_TYPE_EXT4, false, Opts({v1::MOUNT_OPTION_NOUUID}), "", true).ok());
  EXPECT_FALSE(
      BuildMountOptions(v1::FS_TYPE_EXT4, false, Opts({v1::MOUNT_OPTION_UNSPECIFIED}), "", true)
          .ok());
}

}  // namespace
}  // namespace lbcsi::helper
