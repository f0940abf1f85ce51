// Hostile input through the CSI API, over the whole stack as real processes
// (tests/conformance/stack.h): what a StorageClass or PV author, a pod author
// (inline volume attributes) or a buggy kubelet can send. Every case asserts
// the gRPC code AND that nothing happened: no mount, loop device, LightOS
// volume (emulator file), agent record or file under kubelet's root appeared
// or went away, and every process still runs. After every batch the agent and
// the controller must still be ready with nothing leaked. A capture listener
// proves that no token reaches an endpoint the operator did not list.
// Needs root (loop devices, mounts).
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include <gtest/gtest.h>

#include "tests/conformance/capture_listener.h"
#include "tests/conformance/csi_client.h"

namespace lbcsi::conformance {
namespace {

namespace fs = std::filesystem;
using grpc::StatusCode;
using Ctl = csi::v1::Controller::Stub;
using Nd = csi::v1::Node::Stub;
using Codes = std::set<StatusCode>;
using Ctx = google::protobuf::Map<std::string, std::string>;

constexpr char kMissingUuid[] = "5e1f0000-0000-4000-8000-00000000beef";
// A value no error message may echo (mount-flag values, parameter values).
constexpr char kMarker[] = "S3CRET-MARKER-VALUE";

// What the stack has done to the machine, as far as a request could change it.
struct World {
  std::vector<std::string> mounts;        // under the stack's directory
  std::vector<std::string> loops;         // backed by the emulator's volume files
  std::set<std::string> lightos_volumes;  // the emulator's volume files
  std::set<std::string> records;          // the agent's state records
  std::set<std::string> kubelet_files;    // everything under kubelet's root
  std::string dead;                       // processes that are not running
};

std::set<std::string> FilesUnder(const std::string& dir, bool recursive) {
  std::set<std::string> out;
  std::error_code ec;
  if (recursive) {
    for (auto it = fs::recursive_directory_iterator(
             dir, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      out.insert(it->path().string());
      // Never walk into a mount: its content is the volume's, not the layout's.
      if (it->is_directory(ec) && !it->is_symlink(ec)) {
        struct stat self {
        }, parent{};
        if (::lstat(it->path().c_str(), &self) == 0 &&
            ::lstat(it->path().parent_path().c_str(), &parent) == 0 &&
            self.st_dev != parent.st_dev) {
          it.disable_recursion_pending();
        }
      }
    }
  } else {
    for (const auto& e : fs::directory_iterator(dir, ec)) out.insert(e.path().string());
  }
  return out;
}

std::string Describe(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::string out;
  for (const auto& x : a) {
    if (!b.count(x)) out += " -" + x;
  }
  for (const auto& x : b) {
    if (!a.count(x)) out += " +" + x;
  }
  return out;
}

class Hostile : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    stack_ = new Stack();
    start_error_ = stack_->Start();
  }
  static void TearDownTestSuite() {
    if (stack_ == nullptr) return;
    EXPECT_TRUE(MountsUnder(stack_->kubelet_root()).empty());
    EXPECT_TRUE(LoopDevicesBackedBy(stack_->sim_volumes_dir() + "/", false).empty());
    std::cerr << "hostile cases run: " << cases_ << "\n";
    delete stack_;
    stack_ = nullptr;
  }
  void SetUp() override {
    if (::geteuid() != 0) {
      const char* ci = std::getenv("CI");
      if (ci != nullptr && std::string(ci) == "true") FAIL() << "needs root and CI=true";
      GTEST_SKIP() << "needs root (loop devices and mounts of the real helper)";
    }
    ASSERT_TRUE(start_error_.empty()) << start_error_;
    csi_ = std::make_unique<CsiClient>(*stack_);
  }
  void TearDown() override {
    if (stack_ != nullptr && HasFailure()) {
      for (Component c : {Component::kController, Component::kAgent, Component::kHelper}) {
        std::string log = stack_->Log(c);
        std::cerr << "--- " << ComponentName(c) << " log (tail) ---\n"
                  << log.substr(log.size() > 4000 ? log.size() - 4000 : 0) << "\n";
      }
    }
  }

  Stack& s() { return *stack_; }
  CsiClient& c() { return *csi_; }

  World Observe() {
    World w;
    w.mounts = MountsUnder(s().dir());
    std::sort(w.mounts.begin(), w.mounts.end());
    w.loops = LoopDevicesBackedBy(s().sim_volumes_dir() + "/", false);
    std::sort(w.loops.begin(), w.loops.end());
    w.lightos_volumes = FilesUnder(s().sim_volumes_dir(), false);
    w.records = FilesUnder(s().agent_state_dir() + "/volumes", false);
    w.kubelet_files = FilesUnder(s().kubelet_root(), true);
    for (Component comp :
         {Component::kSim, Component::kController, Component::kHelper, Component::kAgent}) {
      if (!s().Alive(comp)) w.dead += std::string(" ") + ComponentName(comp);
    }
    return w;
  }
  void ExpectSame(const World& a, const World& b, const std::string& what) {
    EXPECT_EQ(a.mounts, b.mounts) << what << ": mounts changed";
    EXPECT_EQ(a.loops, b.loops) << what << ": loop devices changed";
    EXPECT_EQ(a.lightos_volumes, b.lightos_volumes)
        << what << ": LightOS volumes changed" << Describe(a.lightos_volumes, b.lightos_volumes);
    EXPECT_EQ(a.records, b.records)
        << what << ": agent records changed" << Describe(a.records, b.records);
    EXPECT_EQ(a.kubelet_files, b.kubelet_files) << what << ": files under kubelet's root changed"
                                                << Describe(a.kubelet_files, b.kubelet_files);
    EXPECT_EQ(b.dead, "") << what << ": processes died";
  }

  // One hostile case: the code is one of `want`, the message is bounded and
  // echoes no marker value, and nothing changed.
  void Case(const std::string& name, const Codes& want, const std::function<grpc::Status()>& call) {
    const World before = Observe();
    const grpc::Status st = call();
    ++cases_;
    EXPECT_TRUE(want.count(st.error_code())) << name << ": got " << st.error_code() << " \""
                                             << st.error_message().substr(0, 300) << "\"";
    EXPECT_LE(st.error_message().size(), 1200u) << name << ": unbounded error message";
    EXPECT_EQ(st.error_message().find(kMarker), std::string::npos)
        << name << ": the error echoes a request value";
    ExpectSame(before, Observe(), name);
  }

  // After a batch: both services ready, nothing leaked since `baseline`.
  void BatchCheck(const World& baseline, const std::string& batch) {
    for (csi::v1::Identity::Stub* id : {&s().controller_identity(), &s().node_identity()}) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      csi::v1::ProbeResponse probe;
      grpc::Status st = id->Probe(&ctx, {}, &probe);
      EXPECT_TRUE(st.ok()) << batch << ": Probe " << st.error_message();
      EXPECT_TRUE(!probe.has_ready() || probe.ready().value()) << batch << ": not ready";
    }
    ExpectSame(baseline, Observe(), batch + " (whole batch)");
  }

  // A real volume, created and published to this node.
  struct Volume {
    std::string id;
    Ctx context;
  };
  Volume CreatePublished(const std::string& name) {
    Volume v;
    csi::v1::CreateVolumeResponse cr;
    grpc::Status st = c().C(&Ctl::CreateVolume, c().CreateReq(name), &cr);
    EXPECT_TRUE(st.ok()) << st.error_message();
    v.id = cr.volume().volume_id();
    csi::v1::ControllerPublishVolumeResponse pr;
    st = c().C(&Ctl::ControllerPublishVolume, c().PublishReq(v.id), &pr);
    EXPECT_TRUE(st.ok()) << st.error_message();
    v.context = pr.publish_context();
    return v;
  }
  void Remove(const Volume& v) {
    EXPECT_TRUE(c().C(&Ctl::ControllerUnpublishVolume, c().UnpublishReq(v.id)).ok());
    grpc::Status st = c().C(&Ctl::DeleteVolume, c().DeleteReq(v.id));
    EXPECT_TRUE(st.ok()) << st.error_message();
  }
  std::string IdAt(const std::string& mgmt, const std::string& scheme) const {
    return "mgmt:" + mgmt + "|nguid:" + kMissingUuid + "|scheme:" + scheme;
  }

  static Stack* stack_;
  static std::string start_error_;
  static int cases_;
  std::unique_ptr<CsiClient> csi_;
};
Stack* Hostile::stack_ = nullptr;
std::string Hostile::start_error_;
int Hostile::cases_ = 0;

// ---------------------------------------------------------------- credentials

TEST_F(Hostile, NoTokenReachesAnUnlistedEndpoint) {
  CaptureListener cap;
  ASSERT_TRUE(cap.ok());
  const World baseline = Observe();
  const std::string mixed = s().mgmt() + "," + cap.endpoint();  // one trusted, one not
  const Codes denied = {StatusCode::PERMISSION_DENIED};
  for (const std::string& mgmt : {cap.endpoint(), mixed}) {
    for (const std::string scheme : {"grpc", "grpcs"}) {
      for (bool own_secret : {false, true}) {
        // Over grpcs with its own secret a request may name any endpoint (TLS
        // to this plaintext listener fails before any header is sent); the
        // listener still must see nothing.
        if (scheme == "grpcs" && own_secret) continue;
        const std::string tag = mgmt + "|" + scheme + (own_secret ? "|own-secret" : "");
        auto secrets = [&](auto* r) {
          r->clear_secrets();
          if (own_secret) (*r->mutable_secrets())["jwt"] = "request-own-token";
        };
        const std::string id = IdAt(mgmt, scheme);
        Case("CreateVolume " + tag, denied, [&] {
          auto r = c().CreateReq("hostile-cred");
          (*r.mutable_parameters())["mgmt-endpoint"] = mgmt;
          (*r.mutable_parameters())["mgmt-scheme"] = scheme;
          secrets(&r);
          return c().C(&Ctl::CreateVolume, r);
        });
        Case("DeleteVolume " + tag, denied, [&] {
          auto r = c().DeleteReq(id);
          secrets(&r);
          return c().C(&Ctl::DeleteVolume, r);
        });
        Case("ControllerPublishVolume " + tag, denied, [&] {
          auto r = c().PublishReq(id);
          secrets(&r);
          return c().C(&Ctl::ControllerPublishVolume, r);
        });
        Case("ControllerUnpublishVolume " + tag, denied, [&] {
          auto r = c().UnpublishReq(id);
          secrets(&r);
          return c().C(&Ctl::ControllerUnpublishVolume, r);
        });
        Case("ControllerExpandVolume " + tag, denied, [&] {
          auto r = c().ExpandReq(id, 2 * kGiB);
          secrets(&r);
          return c().C(&Ctl::ControllerExpandVolume, r);
        });
        Case("CreateSnapshot " + tag, denied, [&] {
          auto r = c().SnapshotReq(id, "hostile-cred-snap");
          secrets(&r);
          return c().C(&Ctl::CreateSnapshot, r);
        });
        Case("ValidateVolumeCapabilities " + tag, denied, [&] {
          csi::v1::ValidateVolumeCapabilitiesRequest r;
          r.set_volume_id(id);
          *r.add_volume_capabilities() = MountCap();
          secrets(&r);
          return c().C(&Ctl::ValidateVolumeCapabilities, r);
        });
        Case("ControllerGetVolume " + tag, denied, [&] {
          csi::v1::ControllerGetVolumeRequest r;
          r.set_volume_id(id);
          return c().C(&Ctl::ControllerGetVolume, r);
        });
        if (scheme == "grpc") {
          // The node-stage fallback (publish_context empty, a volume of the
          // shipped plugin) with the node-stage secret's token.
          Case("NodeStageVolume fallback " + tag, denied, [&] {
            const std::string pv = "pv-hostile-cred";
            auto r = c().StageReq(id, pv, Ctx());
            (*r.mutable_secrets())["jwt"] = "node-stage-token";
            return c().C(&Nd::NodeStageVolume, r);
          });
        }
      }
    }
  }
  EXPECT_EQ(cap.Calls(), 0u) << "a request reached the unlisted endpoint";
  EXPECT_TRUE(cap.Authorizations().empty());
  BatchCheck(baseline, "credentials");
}

// The listener does capture, and it is the allow-list that keeps tokens away:
// the operator lists the endpoint, and the token arrives.
TEST_F(Hostile, ListingTheEndpointIsWhatLetsTheTokenThrough) {
  CaptureListener cap;
  ASSERT_TRUE(cap.ok());
  s().SetExtraArgs(Component::kController, {"--trusted-cluster", cap.endpoint() + "|scheme:grpc"});
  ASSERT_EQ(s().Restart(Component::kController, SIGTERM), "");
  auto r = c().CreateReq("hostile-listed");
  (*r.mutable_parameters())["mgmt-endpoint"] = cap.endpoint();
  r.clear_secrets();
  CsiClient quick(s(), /*deadline_seconds=*/10);  // the listener only ever refuses
  grpc::Status st = quick.C(&Ctl::CreateVolume, r);
  EXPECT_FALSE(st.ok());
  std::vector<std::string> auths = cap.Authorizations();
  ASSERT_FALSE(auths.empty()) << "the listed endpoint was never called: " << st.error_message();
  EXPECT_EQ(auths.front(), std::string("Bearer ") + Stack::kToken);
  s().SetExtraArgs(Component::kController, {});
  ASSERT_EQ(s().Restart(Component::kController, SIGTERM), "");
}

// ---------------------------------------------------------------- paths

std::vector<std::pair<std::string, std::string>> BadPaths(const std::string& root) {
  const std::string good = root + "/plugins/kubernetes.io/csi/csi.lightbitslabs.com/pv-x";
  return {
      {"relative", "plugins/x/globalmount"},
      {"outside /etc", "/etc/lbcsi-hostile"},
      {"outside /tmp", "/tmp/lbcsi-hostile"},
      {"the root", "/"},
      {"kubelet root", root},
      {"kubelet root/", root + "/"},
      {"prefix sibling", root + "-other/pods/x"},
      {"double slash", root + "//plugins/x/globalmount"},
      {"trailing slash", good + "/globalmount/"},
      {"dot", good + "/./globalmount"},
      {"dotdot", good + "/../../../../etc"},
      {"dotdot escape", root + "/../../etc/passwd"},
      {"NUL", good + std::string("/glob\0almount", 13)},
      {"newline", good + "/glob\nalmount"},
      {"escape byte", good + "/glob\x1b[31malmount"},
      {"DEL byte", good + "/glob\x7f"
                          "almount"},
      {"256-byte component", good + "/" + std::string(256, 'a')},
      {"PATH_MAX", root + "/" + std::string(4100, 'p')},
      {"only slashes", "////"},
      {"tab", good + "\t/globalmount"},
  };
}

TEST_F(Hostile, PathsOutsideKubeletsLayoutsAreRefusedBeforeAnyAttach) {
  const Volume v = CreatePublished("hostile-paths");
  const std::string pv = "pv-hostile-paths";
  c().PrepareNodeDirs(pv);
  const World baseline = Observe();
  const Codes invalid = {StatusCode::INVALID_ARGUMENT};
  for (const auto& [what, path] : BadPaths(s().kubelet_root())) {
    Case("NodeStageVolume staging " + what, invalid, [&] {
      auto r = c().StageReq(v.id, pv, v.context);
      r.set_staging_target_path(path);
      return c().C(&Nd::NodeStageVolume, r);
    });
    Case("NodeUnstageVolume staging " + what, invalid, [&] {
      auto r = c().UnstageReq(v.id, pv);
      r.set_staging_target_path(path);
      return c().C(&Nd::NodeUnstageVolume, r);
    });
    Case("NodePublishVolume target " + what, invalid, [&] {
      auto r = c().NodePublishReq(v.id, pv, v.context);
      r.set_target_path(path);
      return c().C(&Nd::NodePublishVolume, r);
    });
    Case("NodePublishVolume staging " + what, invalid, [&] {
      auto r = c().NodePublishReq(v.id, pv, v.context);
      r.set_staging_target_path(path);
      return c().C(&Nd::NodePublishVolume, r);
    });
    Case("NodeUnpublishVolume target " + what, invalid, [&] {
      auto r = c().NodeUnpublishReq(v.id, pv);
      r.set_target_path(path);
      return c().C(&Nd::NodeUnpublishVolume, r);
    });
    // Stats and expand look the volume up first (csi-sanity's rows): a path that cannot be one
    // of the volume's recorded paths is NOT_FOUND, and nothing is touched either way.
    Case("NodeGetVolumeStats " + what, {StatusCode::NOT_FOUND}, [&] {
      csi::v1::NodeGetVolumeStatsRequest r;
      r.set_volume_id(v.id);
      r.set_volume_path(path);
      return c().C(&Nd::NodeGetVolumeStats, r);
    });
    Case("NodeExpandVolume " + what, {StatusCode::NOT_FOUND}, [&] {
      auto r = c().NodeExpandReq(v.id, pv, 2 * kGiB);
      r.set_volume_path(path);
      return c().C(&Nd::NodeExpandVolume, r);
    });
  }
  BatchCheck(baseline, "paths");

  // A symlinked component inside kubelet's layout passes every check the agent
  // can make (it cannot see kubelet's directories); the helper refuses it, and the undo
  // must leave nothing: no loop device, no record, and the volume stages at
  // the right path afterwards.
  const std::string link_parent = s().kubelet_root() + "/plugins/kubernetes.io/csi/pv/pv-link";
  fs::create_directories(s().dir() + "/elsewhere/globalmount");
  fs::create_directories(fs::path(link_parent).parent_path());
  fs::create_symlink(s().dir() + "/elsewhere", link_parent);
  const World with_link = Observe();
  Case("NodeStageVolume through a symlinked component",
       {StatusCode::INVALID_ARGUMENT, StatusCode::PERMISSION_DENIED,
        StatusCode::FAILED_PRECONDITION},
       [&] {
         auto r = c().StageReq(v.id, pv, v.context);
         r.set_staging_target_path(link_parent + "/globalmount");
         return c().C(&Nd::NodeStageVolume, r);
       });
  grpc::Status st = c().C(&Nd::NodeStageVolume, c().StageReq(v.id, pv, v.context));
  EXPECT_TRUE(st.ok()) << "the refused stage wedged the volume: " << st.error_message();
  st = c().C(&Nd::NodeUnstageVolume, c().UnstageReq(v.id, pv));
  EXPECT_TRUE(st.ok()) << st.error_message();
  BatchCheck(with_link, "symlinked staging path");
  fs::remove(link_parent);
  Remove(v);
}

// ---------------------------------------------------------------- volume ids

TEST_F(Hostile, HostileVolumeIdsNeitherWedgeNorLeak) {
  const std::string pv = "pv-hostile-ids";
  c().PrepareNodeDirs(pv);
  const World baseline = Observe();
  const std::string ours = IdAt(s().mgmt(), "grpc");
  struct Id {
    std::string what, id;
    bool huge;  // over the agent's volume-id bound
  };
  const std::vector<Id> ids = {
      {"garbage", "not-a-volume-id", false},
      {"NUL bytes", std::string("mgmt:\0\0|nguid:\0", 15), false},
      {"control bytes", "mgmt:1.2.3.4:80|nguid:\x1b[2J\nrm -rf", false},
      {"no nguid", "mgmt:" + s().mgmt() + "|scheme:grpc", false},
      {"bad uuid", "mgmt:" + s().mgmt() + "|nguid:zzzz|scheme:grpc", false},
      {"unknown scheme", "mgmt:" + s().mgmt() + "|nguid:" + kMissingUuid + "|scheme:http", false},
      {"2000 endpoints",
       [] {
         std::string m = "mgmt:";
         for (int i = 0; i < 2000; ++i)
           m += (i ? "," : "") + std::string("10.9.") + std::to_string(i / 250) + "." +
                std::to_string(i % 250) + ":443";
         return m + "|nguid:" + kMissingUuid;
       }(),
       true},
      {"1.5 MB", "mgmt:" + std::string(1536 * 1024, 'a') + ":1|nguid:" + kMissingUuid, true},
      {"path traversal", "../../../../etc/passwd", false},
      {"missing volume", ours, false},
  };
  const Codes not_found = {StatusCode::NOT_FOUND};
  const Codes invalid = {StatusCode::INVALID_ARGUMENT};
  for (const Id& x : ids) {
    const Codes node_refusal = x.huge ? invalid : not_found;
    Case("NodeStageVolume id " + x.what,
         x.what == "missing volume" ? Codes{StatusCode::FAILED_PRECONDITION, StatusCode::NOT_FOUND}
                                    : node_refusal,
         [&] {
           // No data-path facts and no secret: refused before any attach.
           return c().C(&Nd::NodeStageVolume, c().StageReq(x.id, pv, Ctx()));
         });
    Case("NodeUnstageVolume id " + x.what,
         x.huge ? invalid : (x.what == "missing volume" ? Codes{StatusCode::OK} : not_found),
         [&] { return c().C(&Nd::NodeUnstageVolume, c().UnstageReq(x.id, pv)); });
    Case("NodeUnpublishVolume id " + x.what, x.huge ? invalid : Codes{StatusCode::OK},
         [&] { return c().C(&Nd::NodeUnpublishVolume, c().NodeUnpublishReq(x.id, pv)); });
    Case("NodeGetVolumeStats id " + x.what, x.huge ? invalid : not_found, [&] {
      csi::v1::NodeGetVolumeStatsRequest r;
      r.set_volume_id(x.id);
      r.set_volume_path(c().Target(pv));
      return c().C(&Nd::NodeGetVolumeStats, r);
    });
    Case("NodeExpandVolume id " + x.what, x.huge ? invalid : not_found,
         [&] { return c().C(&Nd::NodeExpandVolume, c().NodeExpandReq(x.id, pv, 2 * kGiB)); });
    Case("DeleteVolume id " + x.what, {StatusCode::OK},
         [&] { return c().C(&Ctl::DeleteVolume, c().DeleteReq(x.id)); });
    Case("ControllerPublishVolume id " + x.what, not_found,
         [&] { return c().C(&Ctl::ControllerPublishVolume, c().PublishReq(x.id)); });
    Case("ControllerExpandVolume id " + x.what, not_found,
         [&] { return c().C(&Ctl::ControllerExpandVolume, c().ExpandReq(x.id, 2 * kGiB)); });
    Case("CreateSnapshot id " + x.what, not_found,
         [&] { return c().C(&Ctl::CreateSnapshot, c().SnapshotReq(x.id, "hostile-id-snap")); });
  }
  BatchCheck(baseline, "volume ids");
}

// Two spellings of one id are one volume: one lock, one record, one staging.
TEST_F(Hostile, TwoSpellingsOfOneIdAreOneVolume) {
  const Volume v = CreatePublished("hostile-spelling");
  const std::string pv1 = "pv-hostile-spell-1", pv2 = "pv-hostile-spell-2";
  c().PrepareNodeDirs(pv1);
  c().PrepareNodeDirs(pv2);
  // The same endpoints in the other order: the id format accepts both.
  const std::string mgmt = s().mgmt();
  const std::string swapped =
      mgmt.substr(mgmt.find(',') + 1) + "," + mgmt.substr(0, mgmt.find(','));
  std::string other = v.id;
  other.replace(other.find(mgmt), mgmt.size(), swapped);
  ASSERT_NE(other, v.id);
  ASSERT_TRUE(c().C(&Nd::NodeStageVolume, c().StageReq(v.id, pv1, v.context)).ok());
  Case("NodeStageVolume other spelling at another path", {StatusCode::FAILED_PRECONDITION},
       [&] { return c().C(&Nd::NodeStageVolume, c().StageReq(other, pv2, v.context)); });
  Case("NodeStageVolume other spelling at the same path", {StatusCode::OK},
       [&] { return c().C(&Nd::NodeStageVolume, c().StageReq(other, pv1, v.context)); });
  EXPECT_TRUE(c().C(&Nd::NodeUnstageVolume, c().UnstageReq(other, pv1)).ok());
  EXPECT_TRUE(LoopDevicesBackedBy(s().sim_volumes_dir() + "/", false).empty());
  EXPECT_TRUE(FilesUnder(s().agent_state_dir() + "/volumes", false).empty());
  Remove(v);
}

// ---------------------------------------------------------------- foreign mounts

TEST_F(Hostile, UnknownVolumesNeverUnmountWhatIsNotTheirs) {
  const Volume v = CreatePublished("hostile-foreign");
  const std::string pv = "pv-hostile-foreign";
  c().PrepareNodeDirs(pv);
  ASSERT_TRUE(c().C(&Nd::NodeStageVolume, c().StageReq(v.id, pv, v.context)).ok());
  ASSERT_TRUE(c().C(&Nd::NodePublishVolume, c().NodePublishReq(v.id, pv, v.context)).ok());
  // Another pod's secret volume (tmpfs, outside this driver's layouts), a tmpfs
  // and another driver's bind mount at paths inside the publish layout.
  const std::string secret = s().kubelet_root() + "/pods/pod9/volumes/kubernetes.io~secret/tok";
  const std::string tmpfs_csi =
      s().kubelet_root() + "/pods/pod9/volumes/kubernetes.io~csi/pv8/mount";
  const std::string other_csi =
      s().kubelet_root() + "/pods/pod9/volumes/kubernetes.io~csi/pv9/mount";
  for (const std::string& d : {secret, tmpfs_csi, other_csi}) fs::create_directories(d);
  fs::create_directories(s().dir() + "/other-driver");
  ASSERT_EQ(::mount("tmpfs", secret.c_str(), "tmpfs", 0, "size=1m"), 0);
  ASSERT_EQ(::mount("tmpfs", tmpfs_csi.c_str(), "tmpfs", 0, "size=1m"), 0);
  ASSERT_EQ(
      ::mount((s().dir() + "/other-driver").c_str(), other_csi.c_str(), nullptr, MS_BIND, nullptr),
      0);
  const World baseline = Observe();
  const std::string unknown = IdAt(s().mgmt(), "grpc");  // well-formed, not on this node
  const StatusCode kInvalid = StatusCode::INVALID_ARGUMENT,
                   kRefused = StatusCode::FAILED_PRECONDITION;
  struct Place {
    std::string what, path;
    StatusCode unpublish, unstage;  // for the well-formed unknown id
  };
  const std::vector<Place> places = {
      {"secret tmpfs", secret, kInvalid, kInvalid},  // not a layout of this driver at all
      {"tmpfs in the publish layout", tmpfs_csi, kRefused, kInvalid},
      {"other driver's bind", other_csi, kRefused, kInvalid},
      {"another volume's target", c().Target(pv), kRefused, kInvalid},
      {"another volume's staging", c().Staging(pv), kInvalid, kRefused},
  };
  for (const auto& [what, id] : std::vector<std::pair<std::string, std::string>>{
           {"unknown id", unknown}, {"garbage id", "csi-0123456789abcdef"}}) {
    for (const Place& p : places) {
      Case("NodeUnpublishVolume " + what + " at " + p.what, {p.unpublish}, [&] {
        csi::v1::NodeUnpublishVolumeRequest r;
        r.set_volume_id(id);
        r.set_target_path(p.path);
        return c().C(&Nd::NodeUnpublishVolume, r);
      });
      // A garbage id that passes the path check cannot name a volume: NOT_FOUND.
      const StatusCode unstage =
          what == "garbage id" && p.unstage == kRefused ? StatusCode::NOT_FOUND : p.unstage;
      Case("NodeUnstageVolume " + what + " at " + p.what, {unstage}, [&] {
        csi::v1::NodeUnstageVolumeRequest r;
        r.set_volume_id(id);
        r.set_staging_target_path(p.path);
        return c().C(&Nd::NodeUnstageVolume, r);
      });
    }
  }
  BatchCheck(baseline, "foreign mounts");
  for (const std::string& d : {secret, tmpfs_csi, other_csi}) EXPECT_EQ(::umount2(d.c_str(), 0), 0);
  fs::remove_all(s().kubelet_root() + "/pods/pod9");
  EXPECT_TRUE(c().C(&Nd::NodeUnpublishVolume, c().NodeUnpublishReq(v.id, pv)).ok());
  EXPECT_TRUE(c().C(&Nd::NodeUnstageVolume, c().UnstageReq(v.id, pv)).ok());
  Remove(v);
}

// ---------------------------------------------------------------- inline volumes

TEST_F(Hostile, InlineVolumeAttributesAreCheckedBeforeAnythingIsCreated) {
  // Inline volumes need the node's ephemeral configuration: restart the agent with one.
  const std::string cfg = s().dir() + "/ephemeral.json";
  std::ofstream(cfg) << R"({"mgmt_endpoints":")" << s().mgmt()
                     << R"(","scheme":"grpc","token_file":")" << s().dir()
                     << R"(/jwt","max_size":"4Gi","default_size":"1Gi"})";
  s().SetExtraArgs(Component::kAgent,
                   {"--ephemeral-config", cfg, "--trusted-cluster", s().mgmt() + "|scheme:grpc"});
  ASSERT_EQ(s().Restart(Component::kAgent, SIGTERM), "");
  const std::string pod = "pod-inline";
  const std::string target = c().Target("inline-vol", pod);
  fs::create_directories(fs::path(target).parent_path());
  const World baseline = Observe();
  auto inline_req = [&](const std::map<std::string, std::string>& attrs,
                        const csi::v1::VolumeCapability& cap) {
    csi::v1::NodePublishVolumeRequest r;
    r.set_volume_id("csi-hostile-inline-0001");
    r.set_target_path(target);
    *r.mutable_volume_capability() = cap;
    (*r.mutable_volume_context())["csi.storage.k8s.io/ephemeral"] = "true";
    for (const auto& [k, v] : attrs) (*r.mutable_volume_context())[k] = v;
    return r;
  };
  const Codes invalid = {StatusCode::INVALID_ARGUMENT};
  for (const std::string& size : std::vector<std::string>{
           "1", "1Ki", "4095", "1Mi", "15Mi", "0", "-1", "lots", "1Pi", "99999999999999999999Gi",
           "1e9", "0x10", " 1Gi", "1Gi ", std::string("1G\0i", 4), std::string(kMarker)}) {
    Case("inline size \"" + size + "\"", invalid, [&] {
      return c().C(&Nd::NodePublishVolume, inline_req({{"size", size}}, MountCap("ext4")));
    });
  }
  Case("inline xfs of 100Mi", invalid, [&] {
    return c().C(&Nd::NodePublishVolume, inline_req({{"size", "100Mi"}}, MountCap("xfs")));
  });
  for (Mode::Mode mode : {Mode::MULTI_NODE_MULTI_WRITER, Mode::MULTI_NODE_SINGLE_WRITER,
                          Mode::MULTI_NODE_READER_ONLY}) {
    Case(std::string("inline ") + Mode::Mode_Name(mode), invalid,
         [&] { return c().C(&Nd::NodePublishVolume, inline_req({}, MountCap("ext4", mode))); });
  }
  Case("inline block", invalid,
       [&] { return c().C(&Nd::NodePublishVolume, inline_req({}, BlockCap())); });
  for (const std::string& key : std::vector<std::string>{
           "mgmt-endpoint", "mgmt-scheme", "project-name", "jwt", "csi.storage.k8s.io/fstype",
           "host-encryption", "qos-policy-name", std::string(300, 'k'), std::string("k\0y", 3)}) {
    Case("inline attribute " + key.substr(0, 40), invalid, [&] {
      return c().C(&Nd::NodePublishVolume, inline_req({{key, kMarker}}, MountCap("ext4")));
    });
  }
  for (const std::string v : {"7", "0", "a", "33"}) {
    Case("inline replica-count " + v, invalid, [&] {
      return c().C(&Nd::NodePublishVolume, inline_req({{"replica-count", v}}, MountCap("ext4")));
    });
  }
  Case("inline fs-type btrfs", invalid, [&] {
    return c().C(&Nd::NodePublishVolume, inline_req({{"fs-type", "btrfs"}}, MountCap("")));
  });
  Case("inline 1.5 MB volume id", invalid, [&] {
    auto r = inline_req({}, MountCap("ext4"));
    r.set_volume_id(std::string(1536 * 1024, 'v'));
    return c().C(&Nd::NodePublishVolume, r);
  });
  for (const auto& [what, path] : BadPaths(s().kubelet_root())) {
    Case("inline target " + what, invalid, [&] {
      auto r = inline_req({}, MountCap("ext4"));
      r.set_target_path(path);
      return c().C(&Nd::NodePublishVolume, r);
    });
  }
  BatchCheck(baseline, "inline volumes");
  s().SetExtraArgs(Component::kAgent, {});
  ASSERT_EQ(s().Restart(Component::kAgent, SIGTERM), "");
}

// ---------------------------------------------------------------- StorageClass parameters

TEST_F(Hostile, StorageClassParametersAndSizes) {
  const World baseline = Observe();
  const Codes invalid = {StatusCode::INVALID_ARGUMENT};
  const std::string huge(200 * 1024, 'h');
  for (const std::string key : {"mgmt-endpoint", "replica-count", "compression", "mgmt-scheme",
                                "project-name", "qos-policy-name", "host-encryption"}) {
    Case("CreateVolume huge " + key, invalid, [&] {
      auto r = c().CreateReq("hostile-param");
      (*r.mutable_parameters())[key] = huge + kMarker;
      return c().C(&Ctl::CreateVolume, r);
    });
  }
  Case("CreateVolume 600 unknown keys", invalid, [&] {
    auto r = c().CreateReq("hostile-param");
    for (int i = 0; i < 600; ++i) (*r.mutable_parameters())["x-" + std::to_string(i)] = kMarker;
    return c().C(&Ctl::CreateVolume, r);
  });
  Case("CreateVolume 300 KiB unknown value", invalid, [&] {
    auto r = c().CreateReq("hostile-param");
    (*r.mutable_parameters())["x-unknown"] = std::string(300 * 1024, 'u') + kMarker;
    return c().C(&Ctl::CreateVolume, r);
  });
  Case("CreateVolume 2000 endpoints", invalid, [&] {
    auto r = c().CreateReq("hostile-param");
    std::string m;
    for (int i = 0; i < 2000; ++i) {
      m += (i ? "," : "") + std::string("10.8.") + std::to_string(i / 250) + "." +
           std::to_string(i % 250) + ":443";
    }
    (*r.mutable_parameters())["mgmt-endpoint"] = m;
    return c().C(&Ctl::CreateVolume, r);
  });
  for (const std::string& flag : std::vector<std::string>{
           std::string("password=") + kMarker, std::string("context=") + kMarker + "\"",
           std::string("uid=0,") + kMarker, "bogusflag", std::string("x=\0y", 4)}) {
    Case("CreateVolume mount flag", invalid, [&] {
      auto cap = MountCap("ext4");
      cap.mutable_mount()->add_mount_flags(flag);
      return c().C(&Ctl::CreateVolume, c().CreateReq("hostile-flags", kGiB, cap));
    });
    // The volume does not exist: either answer is right, as long as nothing echoes.
    Case("ValidateVolumeCapabilities mount flag",
         {StatusCode::INVALID_ARGUMENT, StatusCode::NOT_FOUND}, [&] {
           csi::v1::ValidateVolumeCapabilitiesRequest r;
           r.set_volume_id(IdAt(s().mgmt(), "grpc"));
           auto cap = MountCap("ext4");
           cap.mutable_mount()->add_mount_flags(flag);
           *r.add_volume_capabilities() = cap;
           for (const auto& [k, v] : s().Secrets()) (*r.mutable_secrets())[k] = v;
           return c().C(&Ctl::ValidateVolumeCapabilities, r);
         });
  }
  for (const std::string& fstype :
       std::vector<std::string>{"btrfs", "ext3", std::string(300, 'z'), "xfs\n"}) {
    Case("CreateVolume fs type", invalid, [&] {
      return c().C(&Ctl::CreateVolume, c().CreateReq("hostile-fs", kGiB, MountCap(fstype)));
    });
  }
  Case("CreateVolume filesystem MULTI_NODE_MULTI_WRITER", invalid, [&] {
    return c().C(
        &Ctl::CreateVolume,
        c().CreateReq("hostile-mnmw", kGiB, MountCap("ext4", Mode::MULTI_NODE_MULTI_WRITER)));
  });
  Case("CreateVolume 1 PiB", {StatusCode::OUT_OF_RANGE, StatusCode::INVALID_ARGUMENT},
       [&] { return c().C(&Ctl::CreateVolume, c().CreateReq("hostile-pib", int64_t{1} << 50)); });
  Case("CreateVolume INT64_MAX", {StatusCode::OUT_OF_RANGE, StatusCode::INVALID_ARGUMENT},
       [&] { return c().C(&Ctl::CreateVolume, c().CreateReq("hostile-max", INT64_MAX)); });
  Case("CreateVolume negative", {StatusCode::INVALID_ARGUMENT, StatusCode::OUT_OF_RANGE},
       [&] { return c().C(&Ctl::CreateVolume, c().CreateReq("hostile-neg", -1)); });
  Case("CreateVolume limit below required",
       {StatusCode::OUT_OF_RANGE, StatusCode::INVALID_ARGUMENT}, [&] {
         auto r = c().CreateReq("hostile-limit", 2 * kGiB);
         r.mutable_capacity_range()->set_limit_bytes(kGiB);
         return c().C(&Ctl::CreateVolume, r);
       });
  Case("CreateVolume 2 MB token", invalid, [&] {
    auto r = c().CreateReq("hostile-token");
    (*r.mutable_secrets())["jwt"] = std::string(2 << 20, 't');
    return c().C(&Ctl::CreateVolume, r);
  });
  BatchCheck(baseline, "parameters");
}

// 40 distinct 2 MB tokens and 200 distinct 4 KB ones must not grow the controller
// without bound (each token used to be kept forever for log masking).
TEST_F(Hostile, DistinctTokensDoNotGrowTheController) {
  auto rss_kib = [&] {
    std::ifstream in("/proc/" + std::to_string(s().pid(Component::kController)) + "/status");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return 0L;
  };
  const World baseline = Observe();
  // Round 0 warms up gRPC's buffers and fills ASan's quarantine of freed memory (256 MB),
  // so that round 1 measures what the controller keeps: before the bound, every
  // 2 MB token stayed (~80 MB per round).
  for (int round = 0; round < 2; ++round) {
    const long before = rss_kib();
    for (int i = 0; i < 40; ++i) {
      auto r = c().CreateReq("hostile-tokens");
      (*r.mutable_secrets())["jwt"] = std::to_string(round * 100 + i) + std::string(2 << 20, 'T');
      EXPECT_EQ(c().C(&Ctl::CreateVolume, r).error_code(), StatusCode::INVALID_ARGUMENT);
    }
    for (int i = 0; i < 100; ++i) {
      auto r = c().CreateReq("hostile-tokens");
      (*r.mutable_secrets())["jwt"] = std::to_string(round * 1000 + i) + std::string(4 * 1024, 'u');
      // Sent to the emulator (a listed plaintext cluster), which refuses it.
      EXPECT_EQ(c().C(&Ctl::CreateVolume, r).error_code(), StatusCode::UNAUTHENTICATED);
    }
    const long grown = rss_kib() - before;
    std::cerr << "round " << round << ": controller RSS grew by " << grown
              << " KiB over 140 distinct tokens\n";
    if (round == 1) {
      EXPECT_LT(grown, 32 * 1024) << "KiB";
    }
  }
  BatchCheck(baseline, "tokens");
}

// ---------------------------------------------------------------- reconcile

TEST_F(Hostile, ReconcileQuarantinesAPoisonedRecordAndServesTheRest) {
  const Volume v = CreatePublished("hostile-reconcile");
  const std::string pv = "pv-hostile-reconcile";
  c().PrepareNodeDirs(pv);
  ASSERT_TRUE(c().C(&Nd::NodeStageVolume, c().StageReq(v.id, pv, v.context)).ok());
  const std::string volumes = s().agent_state_dir() + "/volumes";
  // Unreadable JSON and a record named for another volume: the start-up reconcile
  // used to fail on them forever (Probe never ready).
  std::ofstream(volumes + "/" + std::string(64, 'a') + ".json") << "{not json";
  std::ofstream(volumes + "/" + std::string(64, 'b') + ".json")
      << R"({"version":1,"volume_id":"somebody-else"})";
  s().KillComponent(Component::kAgent, SIGKILL);
  ASSERT_EQ(s().StartComponent(Component::kAgent), "")
      << "Probe never became ready with poisoned records";
  grpc::ClientContext ctx;
  csi::v1::ProbeResponse probe;
  ASSERT_TRUE(s().node_identity().Probe(&ctx, {}, &probe).ok());
  EXPECT_TRUE(probe.ready().value());
  auto trailer = ctx.GetServerTrailingMetadata().find("lbcsi-quarantined-records");
  ASSERT_NE(trailer, ctx.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(trailer->second.data(), trailer->second.size()), "2");
  EXPECT_EQ(FilesUnder(s().agent_state_dir() + "/quarantine", false).size(), 2u);
  // The good record survived and the volume is still served.
  EXPECT_TRUE(c().C(&Nd::NodeStageVolume, c().StageReq(v.id, pv, v.context)).ok());
  EXPECT_TRUE(c().C(&Nd::NodeUnstageVolume, c().UnstageReq(v.id, pv)).ok());
  EXPECT_TRUE(FilesUnder(volumes, false).empty());
  fs::remove_all(s().agent_state_dir() + "/quarantine");
  Remove(v);
}

}  // namespace
}  // namespace lbcsi::conformance
