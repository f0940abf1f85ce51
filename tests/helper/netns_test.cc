#include "helper/confinement/netns.h"

#include <errno.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "tests/helper/confine_test_util.h"

namespace lbcsi::helper {
namespace {

int InChild(const std::function<int()>& body) {
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) _exit(body());
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

bool Mentions(const absl::Status& s, const std::string& text) {
  return std::string(s.message()).find(text) != std::string::npos;
}

TEST(Namespaces, SameFileIsSameNamespace) {
  EXPECT_TRUE(CheckSameNamespace("/proc/self/ns/net", "/proc/self/ns/net", "x").ok());
  const absl::Status missing = CheckSameNamespace("/proc/self/ns/net", "/nonexistent", "x");
  EXPECT_EQ(missing.code(), absl::StatusCode::kFailedPrecondition);
}

// Against PID 1: OK when we share its namespaces; when PID 1's namespaces are
// unreadable (some sandboxes deny ptrace access to PID 1), the check must fail
// closed and name the file it could not read.
TEST(Namespaces, AgainstPid1PassesOrFailsClosed) {
  LBCSI_REQUIRE_ROOT();
  struct stat st {};
  const bool readable = stat("/proc/1/ns/net", &st) == 0;
  const absl::Status net = CheckHostNetworkNamespace();
  const absl::Status mnt = CheckHostMountNamespace();
  if (readable) {
    EXPECT_TRUE(net.ok()) << net;
    EXPECT_TRUE(mnt.ok()) << mnt;
  } else {
    std::cout << "note: /proc/1/ns is not readable here (" << strerror(errno)
              << "); checking that the helper refuses to run\n";
    EXPECT_EQ(net.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(Mentions(net, "/proc/1/ns/net")) << net;
    EXPECT_EQ(mnt.code(), absl::StatusCode::kFailedPrecondition);
  }
}

// The test process plays PID 1: a child that moves to a new namespace must be refused.
TEST(Namespaces, PrivateNetworkNamespaceIsRefusedWithAnExplanation) {
  LBCSI_REQUIRE_ROOT();
  const std::string reference = "/proc/" + std::to_string(getpid());
  const int rc = InChild([&] {
    if (!CheckHostNetworkNamespace(reference).ok()) return 9;
    if (unshare(CLONE_NEWNET) != 0) return 10;
    const absl::Status s = CheckHostNetworkNamespace(reference);
    if (s.code() != absl::StatusCode::kFailedPrecondition) return 11;
    if (!Mentions(s, "host network namespace") || !Mentions(s, "NVMe/TCP")) return 12;
    if (!CheckHostMountNamespace(reference).ok()) return 13;  // the other check is unaffected
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

TEST(Namespaces, PrivateMountNamespaceIsRefused) {
  LBCSI_REQUIRE_ROOT();
  const std::string reference = "/proc/" + std::to_string(getpid());
  const int rc = InChild([&] {
    if (!CheckHostMountNamespace(reference).ok()) return 9;
    if (unshare(CLONE_NEWNS) != 0) return 10;
    const absl::Status s = CheckHostMountNamespace(reference);
    if (s.code() != absl::StatusCode::kFailedPrecondition || !Mentions(s, "mount namespace")) {
      return 11;
    }
    if (!CheckHostNetworkNamespace(reference).ok()) return 12;
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

}  // namespace
}  // namespace lbcsi::helper
