// kubelet's CSI path layouts: every layout is recognised with its names, and every way a
// path can miss a layout is refused with the component that is wrong and without echoing it.

#include "kubeletpaths/kubelet_paths.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace lbcsi::kubeletpaths {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kRoot[] = "/var/lib/kubelet";
constexpr char kDriver[] = "csi.lightbitslabs.com";
const std::string kHash(64, 'a');
const std::string kHex40(40, '0');
constexpr char kUid[] = "0f4a1c2e-7b3d-4e5f-9a8b-1c2d3e4f5a6b";

KubeletLayouts L() {
  return *KubeletLayouts::Create(kRoot, kDriver);
}

TEST(KubeletPaths, EveryLayoutIsRecognisedWithItsNames) {
  struct Case {
    std::string path;
    PathKind kind;
    std::string name, uid;
  } cases[] = {
      {L().StageMountPath(kHash), PathKind::kStageMount, kHash, ""},
      {L().StageMountLegacyPath("pvc-1.a"), PathKind::kStageMountLegacy, "pvc-1.a", ""},
      {L().PublishMountPath(kUid, "pvc-9"), PathKind::kPublishMount, "pvc-9", kUid},
      {L().StageBlockPath("pvc-2"), PathKind::kStageBlock, "pvc-2", ""},
      {L().PublishBlockPath("pvc-3", kUid), PathKind::kPublishBlock, "pvc-3", kUid},
      {L().EphemeralPath(kHex40), PathKind::kEphemeral, kHex40, ""},
  };
  for (const Case& c : cases) {
    auto p = L().Classify("f", c.path);
    ASSERT_TRUE(p.ok()) << c.path << ": " << p.status();
    EXPECT_EQ(p->kind, c.kind) << c.path;
    EXPECT_EQ(p->path, c.path);
    EXPECT_EQ(p->volume_name, c.name) << c.path;
    EXPECT_EQ(p->pod_uid, c.uid) << c.path;
  }
  EXPECT_EQ(
      L().StageMountPath(kHash),
      "/var/lib/kubelet/plugins/kubernetes.io/csi/csi.lightbitslabs.com/" + kHash + "/globalmount");
  EXPECT_EQ(
      L().PublishBlockPath("pv", kUid),
      std::string("/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/publish/pv/") + kUid);
  EXPECT_EQ(L().EphemeralPath(kHex40),
            "/var/lib/kubelet/plugins/csi.lightbitslabs.com/ephemeral/" + kHex40);
}

TEST(KubeletPaths, StagingPathForAHandleIsNamedAfterItsSha256) {
  // sha256("abc"), FIPS 180-2 test vector.
  EXPECT_EQ(VolumeHandleSha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auto p = L().Classify("f", L().StageMountPathForHandle("abc"));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind, PathKind::kStageMount);
  EXPECT_EQ(p->volume_name, VolumeHandleSha256("abc"));
}

TEST(KubeletPaths, KindPredicates) {
  EXPECT_TRUE(IsMountKind(PathKind::kStageMount));
  EXPECT_TRUE(IsMountKind(PathKind::kEphemeral));
  EXPECT_FALSE(IsMountKind(PathKind::kStageBlock));
  EXPECT_FALSE(IsMountKind(PathKind::kPublishBlock));
  EXPECT_TRUE(IsStagingKind(PathKind::kStageBlock));
  EXPECT_FALSE(IsStagingKind(PathKind::kPublishMount));
  for (PathKind k : kAllKinds) EXPECT_FALSE(PathKindName(k).empty());
}

TEST(KubeletPaths, AllowedKindsRestrictTheMatch) {
  auto p = L().Classify("staging_path", L().PublishMountPath(kUid, "v"), kStagingKinds);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("staging_path: "));
  EXPECT_TRUE(L().Classify("t", L().PublishBlockPath("v", kUid), kPublishKinds).ok());
  EXPECT_FALSE(L().Classify("t", L().StageBlockPath("v"), kMountStagingKinds).ok());
  EXPECT_FALSE(L().Classify("t", L().StageMountPath(kHash), {}).ok());
}

struct Refusal {
  std::string path;
  std::string reason;  // substring of the message
};

class KubeletPathsRefuse : public ::testing::TestWithParam<Refusal> {};

TEST_P(KubeletPathsRefuse, NamesTheWrongComponentWithoutEchoingIt) {
  auto p = L().Classify("target_path", GetParam().path);
  ASSERT_FALSE(p.ok()) << GetParam().path << " classified as " << PathKindName(p->kind);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(p.status().message(), HasSubstr("target_path: "));
  EXPECT_THAT(p.status().message(), HasSubstr(GetParam().reason)) << GetParam().path;
  EXPECT_THAT(p.status().message(), Not(HasSubstr("EVIL")));
}

const std::string R = kRoot;
const std::string CSI = R + "/plugins/kubernetes.io/csi";
const std::string POD = R + "/pods/" + kUid + "/volumes/kubernetes.io~csi";

INSTANTIATE_TEST_SUITE_P(
    Paths, KubeletPathsRefuse,
    ::testing::Values(
        Refusal{"", "is required"}, Refusal{"relative/EVIL", "below the kubelet root"},
        Refusal{"/etc/EVIL", "below the kubelet root"}, Refusal{R, "below the kubelet root"},
        Refusal{R + "/", "must not end with '/'"},
        Refusal{R + "EVIL/pods", "below the kubelet root"},
        Refusal{std::string("/var/lib/kubelet/pods/x\0EVIL", 29), "NUL"},
        Refusal{R + "/" + std::string(5000, 'a'), "longer than 4096"},
        Refusal{POD + "/v/mount/", "must not end with '/'"},
        Refusal{R + "/pods//" + kUid, "component 2 below the kubelet root is empty"},
        Refusal{POD + "/../mount", "\".\" or \"..\""}, Refusal{POD + "/./mount", "\".\" or \"..\""},
        Refusal{POD + "/" + std::string(256, 'a') + "/mount", "longer than 255"},
        // Mount staging.
        Refusal{CSI + "/other.driver/" + kHash + "/globalmount", "component 4"},
        Refusal{CSI + "/csi.lightbitslabs.com/" + kHash.substr(1) + "/globalmount",
                "64 lowercase hex"},
        Refusal{CSI + "/csi.lightbitslabs.com/" + std::string(64, 'A') + "/globalmount",
                "64 lowercase hex"},
        Refusal{CSI + "/csi.lightbitslabs.com/" + std::string(64, 'g') + "/globalmount",
                "64 lowercase hex"},
        Refusal{CSI + "/csi.lightbitslabs.com/" + kHash + "/EVIL", "\"globalmount\""},
        Refusal{CSI + "/csi.lightbitslabs.com/" + kHash, "ends too early"},
        Refusal{CSI + "/csi.lightbitslabs.com/" + kHash + "/globalmount/EVIL", "more components"},
        Refusal{CSI + "/pv/EVIL_NAME/globalmount", "Kubernetes name"},
        Refusal{CSI + "/pv/-pv/globalmount", "Kubernetes name"},
        Refusal{CSI + "/pv/pv-/globalmount", "Kubernetes name"},
        Refusal{CSI + "/pv/" + std::string(254, 'a') + "/globalmount", "Kubernetes name"},
        Refusal{CSI + "/pv/pv1/mount", "\"globalmount\""},
        // Mount publish.
        Refusal{R + "/pods/EVIL/volumes/kubernetes.io~csi/v/mount", "pod UID"},
        Refusal{R + "/pods/" + std::string(65, 'a') + "/volumes/kubernetes.io~csi/v/mount",
                "pod UID"},
        Refusal{R + "/pods/" + kUid + "/volumes/kubernetes.io~empty-dir/v/mount",
                "\"kubernetes.io~csi\""},
        Refusal{R + "/pods/" + kUid + "/volumes/kubernetes.io~secret/EVIL",
                "\"kubernetes.io~csi\""},
        Refusal{R + "/pods/" + kUid + "/volume-subpaths/v/c/0", "\"volumes\""},
        Refusal{R + "/pods/" + kUid + "/etc-hosts", "\"volumes\""},
        Refusal{POD + "/v/EVIL", "\"mount\""}, Refusal{POD + "/v", "ends too early"},
        Refusal{POD + "/v/mount/EVIL", "more components"},
        Refusal{POD + "/V/mount", "Kubernetes name"},
        Refusal{POD + "/a_b/mount", "Kubernetes name"},
        // Block.
        Refusal{CSI + "/volumeDevices/EVIL/pv", "component 5"},
        Refusal{CSI + "/volumeDevices/staging/EVIL_pv", "Kubernetes name"},
        Refusal{CSI + "/volumeDevices/staging", "ends too early"},
        Refusal{CSI + "/volumeDevices/staging/pv/dev", "more components"},
        Refusal{CSI + "/volumeDevices/publish/pv", "ends too early"},
        Refusal{CSI + "/volumeDevices/publish/pv/EVIL_uid", "pod UID"},
        Refusal{CSI + "/volumeDevices/publish/pv/" + kUid + "/x", "more components"},
        // Ephemeral and everything else.
        Refusal{R + "/plugins/csi.lightbitslabs.com/ephemeral/" + kHash, "40-digit"},
        Refusal{R + "/plugins/csi.lightbitslabs.com/EVIL/" + kHex40, "component 3"},
        Refusal{R + "/plugins/other.driver/ephemeral/" + kHex40, "component 2"},
        Refusal{R + "/plugins/csi.lightbitslabs.com/ephemeral", "ends too early"},
        Refusal{R + "/plugins_registry/EVIL", "component 1"}, Refusal{R + "/EVIL", "component 1"}));

TEST(KubeletPaths, ComponentRules) {
  EXPECT_TRUE(IsKubernetesName("a"));
  EXPECT_TRUE(IsKubernetesName("pvc-0f4a.b"));
  EXPECT_FALSE(IsKubernetesName(""));
  EXPECT_FALSE(IsKubernetesName("."));
  EXPECT_FALSE(IsKubernetesName(".."));
  EXPECT_FALSE(IsKubernetesName("a/b"));
  EXPECT_FALSE(IsKubernetesName("A"));
  EXPECT_TRUE(IsKubernetesName(std::string(253, 'a')));
  EXPECT_FALSE(IsKubernetesName(std::string(254, 'a')));
  EXPECT_TRUE(IsPodUid(kUid));
  EXPECT_TRUE(IsPodUid(std::string(32, 'f')));
  EXPECT_FALSE(IsPodUid("a.b"));
  EXPECT_FALSE(IsPodUid("-a"));
  EXPECT_TRUE(IsLowerHex("0a", 2));
  EXPECT_FALSE(IsLowerHex("0A", 2));
  EXPECT_FALSE(IsLowerHex("0a0", 2));
  EXPECT_TRUE(IsDriverName("csi.lightbitslabs.com"));
  EXPECT_TRUE(IsDriverName("Csi-X"));
  EXPECT_FALSE(IsDriverName(std::string(64, 'a')));
  EXPECT_FALSE(IsDriverName("a/b"));
  EXPECT_FALSE(IsDriverName("-bad"));
  EXPECT_FALSE(IsDriverName("bad."));
  EXPECT_FALSE(IsDriverName("under_score"));
  EXPECT_FALSE(IsDriverName(""));
  EXPECT_FALSE(IsDriverName(".."));
}

TEST(KubeletPaths, CreateRefusesBadConfiguration) {
  for (const char* root :
       {"", "/", "relative", "/var/lib/kubelet/", "/var//lib", "/var/../x", "/a/."}) {
    EXPECT_FALSE(KubeletLayouts::Create(root, kDriver).ok()) << root;
  }
  EXPECT_FALSE(KubeletLayouts::Create(kRoot, "").ok());
  EXPECT_FALSE(KubeletLayouts::Create(kRoot, "a/b").ok());
  EXPECT_FALSE(KubeletLayouts::Create(kRoot, "..").ok());
  auto l = KubeletLayouts::Create("/tmp/k", "x.y");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->kubelet_root(), "/tmp/k");
  EXPECT_EQ(l->driver_name(), "x.y");
  EXPECT_TRUE(
      l->Classify("f", "/tmp/k/plugins/kubernetes.io/csi/x.y/" + kHash + "/globalmount").ok());
  // Another root's path does not match even when the rest is a valid layout.
  EXPECT_FALSE(l->Classify("f", L().StageMountPath(kHash)).ok());
}

}  // namespace
}  // namespace lbcsi::kubeletpaths
