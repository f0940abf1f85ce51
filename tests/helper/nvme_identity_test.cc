// Device identity for the NVMe transport over a fake sysfs tree: a volume UUID
// names a device only when the helper's attach registry lists the volume and
// exactly one namespace of the registered subsystem, reached over TCP with this
// node's host NQN, shows that UUID (docs/security.md, "Device identity").
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "helper/state/attach_registry.h"
#include "helper/state/format_state.h"
#include "helper/transport/nvme_sysfs.h"
#include "helper/transport/nvme_transport.h"

namespace lbcsi::helper {
namespace {

namespace fs = std::filesystem;

constexpr char kHostNqn[] = "nqn.2019-09.com.lightbitslabs:host:node-a.node";
constexpr char kOtherHostNqn[] = "nqn.2014-08.org.nvmexpress:uuid:other-driver";
constexpr char kSubsys[] = "nqn.2016-01.com.lightbitslabs:uuid:cluster-1";
constexpr char kOtherSubsys[] = "nqn.2016-01.com.lightbitslabs:uuid:cluster-2";
constexpr char kPcieSubsys[] = "nqn.2014-08.org.nvmexpress:uuid:local-ssd";
constexpr char kForeignVendorSubsys[] = "nqn.2010-06.com.example:target";
constexpr char kUuidA[] = "0a1b2c3d-0000-4000-8000-00000000000a";
constexpr char kUuidB[] = "0a1b2c3d-0000-4000-8000-00000000000b";
constexpr char kUuidDisk[] = "0a1b2c3d-0000-4000-8000-0000000000dd";

class FakeSysfs {
 public:
  FakeSysfs() {
    char tmpl[] = "/tmp/lbcsi-nvme-sysfs-XXXXXX";
    root_ = mkdtemp(tmpl);
    fs::create_directories(root_ + "/block");
    fs::create_directories(root_ + "/class/nvme");
  }
  ~FakeSysfs() { fs::remove_all(root_); }

  void Controller(const std::string& name, const std::string& transport,
                  const std::string& host_nqn, const std::string& subsys,
                  const std::string& state = "live") {
    const std::string dir = root_ + "/class/nvme/" + name;
    fs::create_directories(dir);
    Write(dir + "/transport", transport);
    Write(dir + "/hostnqn", host_nqn);
    Write(dir + "/subsysnqn", subsys);
    Write(dir + "/address", "traddr=10.0.0.1,trsvcid=4420");
    Write(dir + "/state", state);
  }
  // A namespace head of a multipath subsystem reached through `controllers`.
  void Namespace(const std::string& name, const std::string& uuid, const std::string& subsys,
                 const std::vector<std::string>& controllers, int minor) {
    const std::string dir = root_ + "/block/" + name;
    fs::create_directories(dir + "/device");
    Write(dir + "/uuid", uuid);
    Write(dir + "/dev", "259:" + std::to_string(minor));
    Write(dir + "/size", "2097152");
    Write(dir + "/device/subsysnqn", subsys);
    for (const std::string& c : controllers) {
      fs::create_directory_symlink(root_ + "/class/nvme/" + c, dir + "/device/" + c);
    }
  }
  // Multipath off: the namespace's device is its one controller.
  void SinglePathNamespace(const std::string& name, const std::string& uuid,
                           const std::string& controller, int minor) {
    const std::string dir = root_ + "/block/" + name;
    fs::create_directories(dir);
    Write(dir + "/uuid", uuid);
    Write(dir + "/dev", "259:" + std::to_string(minor));
    Write(dir + "/size", "2097152");
    fs::create_directory_symlink(root_ + "/class/nvme/" + controller, dir + "/device");
  }
  const std::string& root() const { return root_; }

 private:
  static void Write(const std::string& path, const std::string& value) {
    std::ofstream(path) << value << "\n";
  }
  std::string root_;
};

class NvmeDeviceIdentity : public ::testing::Test {
 protected:
  NvmeDeviceIdentity() {
    char tmpl[] = "/tmp/lbcsi-helper-state-XXXXXX";
    state_dir_ = mkdtemp(tmpl);
    // Our volume A of cluster-1 over two TCP paths.
    sysfs_.Controller("nvme1", "tcp", kHostNqn, kSubsys);
    sysfs_.Controller("nvme2", "tcp", kHostNqn, kSubsys);
    sysfs_.Namespace("nvme1n1", kUuidA, kSubsys, {"nvme1", "nvme2"}, 1);
    // The node's own PCIe SSD, whose namespace UUID an attacker can read.
    sysfs_.Controller("nvme0", "pcie", kHostNqn, kPcieSubsys);
    sysfs_.Namespace("nvme0n1", kUuidDisk, kPcieSubsys, {"nvme0"}, 0);
    // Another NVMe/TCP driver's volume on the same host NQN file.
    sysfs_.Controller("nvme3", "tcp", kOtherHostNqn, kForeignVendorSubsys);
    sysfs_.Namespace("nvme3n1", kUuidB, kForeignVendorSubsys, {"nvme3"}, 3);
  }
  ~NvmeDeviceIdentity() override { fs::remove_all(state_dir_); }

  std::unique_ptr<NvmeTransport> Transport(bool* created = nullptr) {
    auto registry = AttachRegistry::Open(state_dir_, created);
    EXPECT_TRUE(registry.ok()) << registry.status();
    NvmeIdentity id{kHostNqn, "", {"nqn.2016-01.com.lightbitslabs:"}};
    return std::make_unique<NvmeTransport>(id, NvmeDefaults{}, std::move(*registry),
                                           NvmeSysfs(sysfs_.root()));
  }
  AttachRegistry Registry() { return *AttachRegistry::Open(state_dir_); }

  FakeSysfs sysfs_;
  std::string state_dir_;
};

TEST_F(NvmeDeviceIdentity, SysfsScanReadsBothLayouts) {
  sysfs_.Controller("nvme7", "tcp", kHostNqn, kOtherSubsys);
  sysfs_.SinglePathNamespace("nvme7n1", "0A1B2C3D-0000-4000-8000-000000000077", "nvme7", 7);
  NvmeSysfs scan(sysfs_.root());
  std::map<std::string, NvmeNamespace> by_name;
  for (NvmeNamespace& ns : scan.Namespaces()) by_name[ns.name] = ns;
  ASSERT_EQ(by_name.size(), 4u);
  EXPECT_EQ(by_name["nvme1n1"].subsystem_nqn, kSubsys);
  ASSERT_EQ(by_name["nvme1n1"].controllers.size(), 2u);
  EXPECT_EQ(by_name["nvme1n1"].controllers[1].name, "nvme2");
  EXPECT_EQ(by_name["nvme1n1"].controllers[1].transport, "tcp");
  const NvmeNamespace& single = by_name["nvme7n1"];
  EXPECT_EQ(single.uuid, "0a1b2c3d-0000-4000-8000-000000000077") << "folded to lower case";
  EXPECT_EQ(single.subsystem_nqn, kOtherSubsys);
  ASSERT_EQ(single.controllers.size(), 1u);
  EXPECT_EQ(single.controllers[0].name, "nvme7");
  EXPECT_EQ(scan.Controllers().size(), 5u);
}

TEST_F(NvmeDeviceIdentity, ForeignReasonNamesWhatIsWrong) {
  NvmeSysfs scan(sysfs_.root());
  for (const NvmeNamespace& ns : scan.Namespaces()) {
    const std::string why = NvmeSysfs::ForeignReason(ns, kHostNqn, ns.subsystem_nqn);
    if (ns.name == "nvme1n1") {
      EXPECT_EQ(why, "");
      EXPECT_NE(NvmeSysfs::ForeignReason(ns, kHostNqn, kOtherSubsys).find("subsystem"),
                std::string::npos);
    } else if (ns.name == "nvme0n1") {
      EXPECT_NE(why.find("pcie"), std::string::npos) << why;
    } else if (ns.name == "nvme3n1") {
      EXPECT_NE(why.find("host NQN"), std::string::npos) << why;
    }
  }
  NvmeNamespace orphan;
  orphan.subsystem_nqn = kSubsys;
  EXPECT_NE(NvmeSysfs::ForeignReason(orphan, kHostNqn, kSubsys), "");
}

TEST_F(NvmeDeviceIdentity, AUuidAloneNamesNoDevice) {
  auto t = Transport();
  // Visible, TCP, our host NQN, our cluster: still not the helper's until it attached it.
  auto found = t->FindDevice(kUuidA);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_FALSE(found->has_value());
  auto inv = t->Inventory();
  ASSERT_TRUE(inv.ok());
  EXPECT_TRUE(inv->empty()) << "Inventory shows only registered volumes";
}

TEST_F(NvmeDeviceIdentity, ARegisteredVolumeResolvesToItsNamespaceWithItsPaths) {
  ASSERT_TRUE(Registry().Record(kUuidA, kSubsys).ok());
  auto t = Transport();
  auto found = t->FindDevice(kUuidA);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->name, "nvme1n1");
  EXPECT_EQ((*found)->paths_total, 2u);
  EXPECT_EQ((*found)->paths_live, 2u);
  EXPECT_EQ((*found)->size_bytes, 2097152ull * 512);
  auto inv = t->Inventory();
  ASSERT_TRUE(inv.ok());
  ASSERT_EQ(inv->size(), 1u);
  EXPECT_EQ((*inv)[0].volume_uuid, kUuidA);
}

TEST_F(NvmeDeviceIdentity, TheNodesOwnDiskAndOtherDriversVolumesStayOutOfReach) {
  // Even registered under their own subsystems (a compromised agent's Attach
  // that failed the prefix check would not get here; the registry is written
  // by hand to show the sysfs check holds on its own).
  // Real PCIe controllers often print "nqn.2014.08.…", which is not even an NQN to the registry.
  EXPECT_FALSE(Registry().Record(kUuidDisk, "nqn.2014.08.org.nvmexpress:144d144dS4EWNX0R").ok());
  ASSERT_TRUE(Registry().Record(kUuidDisk, kPcieSubsys).ok());
  ASSERT_TRUE(Registry().Record(kUuidB, kForeignVendorSubsys).ok());
  auto t = Transport();
  for (const char* uuid : {kUuidDisk, kUuidB}) {
    auto found = t->FindDevice(uuid);
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_FALSE(found->has_value()) << uuid;
  }
  // A namespace elsewhere that copies our volume's UUID is ignored.
  sysfs_.Controller("nvme4", "tcp", kHostNqn, kOtherSubsys);
  sysfs_.Namespace("nvme4n1", kUuidA, kOtherSubsys, {"nvme4"}, 4);
  ASSERT_TRUE(Registry().Record(kUuidA, kSubsys).ok());
  auto a = t->FindDevice(kUuidA);
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->name, "nvme1n1");
}

TEST_F(NvmeDeviceIdentity, TwoNamespacesOfTheSubsystemWithOneUuidAreRefused) {
  sysfs_.Controller("nvme5", "tcp", kHostNqn, kSubsys);
  sysfs_.Namespace("nvme5n1", kUuidA, kSubsys, {"nvme5"}, 5);
  ASSERT_TRUE(Registry().Record(kUuidA, kSubsys).ok());
  auto found = Transport()->FindDevice(kUuidA);
  EXPECT_EQ(found.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(NvmeDeviceIdentity, AttachRefusesSubsystemsOutsideThePrefixesAndConflicts) {
  auto t = Transport();
  AttachSpec spec;
  spec.volume_uuid = kUuidDisk;
  spec.subsystem_nqn = kPcieSubsys;
  spec.deadline = absl::Now() + absl::Seconds(5);
  EXPECT_EQ(t->Attach(spec).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(Registry().All()->empty()) << "nothing recorded for a refused attach";
  // Already attached: found without a connect, and recorded.
  spec.volume_uuid = kUuidA;
  spec.subsystem_nqn = kSubsys;
  auto dev = t->Attach(spec);
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(dev->name, "nvme1n1");
  EXPECT_EQ(Registry().SubsystemOf(kUuidA)->value_or(""), kSubsys);
  // The same volume from another subsystem is a conflict, not a second identity.
  spec.subsystem_nqn = kOtherSubsys;
  EXPECT_EQ(t->Attach(spec).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(NvmeDeviceIdentity, DetachTouchesOnlyWhatTheHelperAttached) {
  auto t = Transport();
  // Not registered: nothing to do, and nothing is disconnected.
  auto none = t->Detach(kUuidB, kForeignVendorSubsys);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->was_attached);
  EXPECT_FALSE(none->controllers_disconnected);
  ASSERT_TRUE(Registry().Record(kUuidA, kSubsys).ok());
  EXPECT_EQ(t->Detach(kUuidA, kOtherSubsys).status().code(), absl::StatusCode::kFailedPrecondition);
  // Another volume of the subsystem is registered (attached, maybe not yet
  // mounted): the shared controllers stay; A is forgotten.
  constexpr char kUuidC[] = "0a1b2c3d-0000-4000-8000-00000000000c";
  ASSERT_TRUE(Registry().Record(kUuidC, kSubsys).ok());
  auto kept = t->Detach(kUuidA, "");
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_TRUE(kept->was_attached);
  EXPECT_FALSE(kept->controllers_disconnected);
  EXPECT_FALSE(Registry().SubsystemOf(kUuidA)->has_value());
  EXPECT_TRUE(Registry().SubsystemOf(kUuidC)->has_value());
}

TEST_F(NvmeDeviceIdentity, AFirstStartAdoptsOnlyOurClustersVolumes) {
  bool created = false;
  auto t = Transport(&created);
  ASSERT_TRUE(created);
  auto adopted = t->SeedRegistry();
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_EQ(*adopted, 1);
  auto all = Registry().All();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ(all->begin()->first, kUuidA);
  EXPECT_EQ(all->begin()->second, kSubsys);
  bool created_again = true;
  Transport(&created_again);
  EXPECT_FALSE(created_again) << "seeding happens once";
}

TEST(UuidRecords, RoundTripAndRefusals) {
  char tmpl[] = "/tmp/lbcsi-records-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  auto records = UuidRecords::Open(dir, "r");
  ASSERT_TRUE(records.ok());
  EXPECT_EQ(records->Put("../etc", "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(records->Put(kUuidA, "a\nb").code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(records->Put(kUuidA, "one").ok());
  ASSERT_TRUE(records->Put(kUuidA, "two").ok());
  EXPECT_EQ(records->Get(kUuidA)->value_or(""), "two");
  std::ofstream(dir + "/r/" + kUuidB) << std::string(4096, 'x');
  EXPECT_EQ(records->Get(kUuidB).status().code(), absl::StatusCode::kDataLoss);
  std::ofstream(dir + "/r/" + std::string(kUuidA) + ".tmp") << "half";
  ASSERT_TRUE(records->Remove(kUuidB).ok());
  auto all = records->All();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 1u) << "temp files are not records";
  ASSERT_TRUE(records->Remove(kUuidA).ok());
  EXPECT_TRUE(records->Remove(kUuidA).ok()) << "removing twice is fine";
  auto format = FormatState::Open(dir);
  ASSERT_TRUE(format.ok());
  ASSERT_TRUE(format->Record(kUuidA, v1::FS_TYPE_XFS).ok());
  EXPECT_EQ(format->Get(kUuidA)->value_or(v1::FS_TYPE_UNSPECIFIED), v1::FS_TYPE_XFS);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lbcsi::helper
