#include "helper/confinement/capabilities.h"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/helper/confine_test_util.h"

namespace lbcsi::helper {
namespace {

// One line of /proc/self/status ("CapEff:\t0000...") as a bit mask: the
// kernel's own view, independent of libcap.
uint64_t StatusMask(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1), nullptr, 16);
  }
  return ~uint64_t{0};
}

uint64_t Bits(std::initializer_list<cap_value_t> caps) {
  uint64_t m = 0;
  for (cap_value_t c : caps) m |= uint64_t{1} << c;
  return m;
}

// Runs `body` in a child; its exit code is the result (0 = all good).
int InChild(const std::function<int()>& body) {
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) _exit(body());
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

TEST(Capabilities, HelperKeepListIsTheDocumentedOne) {
  EXPECT_EQ(HelperCapabilities(),
            (std::vector<cap_value_t>{CAP_SYS_ADMIN, CAP_CHOWN, CAP_FOWNER, CAP_SYS_RESOURCE}));
}

TEST(Capabilities, RefusesWhenThreadsExist) {
  const int rc = InChild([] {
    std::thread t([] { usleep(200 * 1000); });
    const absl::Status s = DropCapabilities({});
    t.join();
    return s.code() == absl::StatusCode::kFailedPrecondition ? 0 : 1;
  });
  EXPECT_EQ(rc, 0);
}

TEST(Capabilities, KeepsOnlyTheKeepList) {
  LBCSI_REQUIRE_ROOT();
  const int rc = InChild([] {
    const cap_value_t keep[] = {CAP_SYS_ADMIN, CAP_CHOWN};
    if (!DropCapabilities(keep).ok()) return 10;
    const uint64_t want = Bits({CAP_SYS_ADMIN, CAP_CHOWN});
    if (StatusMask("CapEff") != want) return 11;
    if (StatusMask("CapPrm") != want) return 12;
    if (StatusMask("CapInh") != 0) return 13;
    if (StatusMask("CapBnd") != want) return 14;
    if (StatusMask("CapAmb") != 0) return 15;
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) return 16;
    if (EffectiveCapabilitiesText() != "cap_chown,cap_sys_admin") return 17;
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

TEST(Capabilities, NeverAsksForWhatIsMissing) {
  LBCSI_REQUIRE_ROOT();
  const int rc = InChild([] {
    // First leave only SYS_ADMIN, CHOWN and SETPCAP; then ask for FOWNER too.
    const cap_value_t first[] = {CAP_SYS_ADMIN, CAP_CHOWN, CAP_SETPCAP};
    if (!DropCapabilities(first).ok()) return 10;
    const cap_value_t second[] = {CAP_SYS_ADMIN, CAP_FOWNER};
    if (!DropCapabilities(second).ok()) return 11;
    if (StatusMask("CapEff") != Bits({CAP_SYS_ADMIN})) return 12;
    if (StatusMask("CapPrm") != Bits({CAP_SYS_ADMIN})) return 13;
    // The second call still had CAP_SETPCAP, so the bounding set follows too.
    if (StatusMask("CapBnd") != Bits({CAP_SYS_ADMIN})) return 14;
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

TEST(Capabilities, WithoutSetpcapTheBoundingSetStaysButTheRestDrops) {
  LBCSI_REQUIRE_ROOT();
  const int rc = InChild([] {
    const cap_value_t first[] = {CAP_SYS_ADMIN, CAP_CHOWN};
    if (!DropCapabilities(first).ok()) return 10;
    const cap_value_t second[] = {CAP_SYS_ADMIN};
    if (!DropCapabilities(second).ok()) return 11;
    if (StatusMask("CapEff") != Bits({CAP_SYS_ADMIN})) return 12;
    if (StatusMask("CapBnd") != Bits({CAP_SYS_ADMIN, CAP_CHOWN})) return 13;
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

}  // namespace
}  // namespace lbcsi::helper
