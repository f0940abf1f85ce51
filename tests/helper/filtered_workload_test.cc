// Runs helper_confinement_workload (what the helper does, under the real
// filter) as a separate process and checks that it finished every step.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "tests/helper/confine_test_util.h"

namespace lbcsi::helper {
namespace {

// Exit status of the workload, or 1000 + signal when it was killed.
int RunWorkload(const std::string& mode, const std::string& asan_options) {
  const char* build = std::getenv("LBCSI_BUILD_DIR");
  const std::string bin =
      std::string(build ? build : ".") + "/tests/helper/helper_confinement_workload";
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    setenv("ASAN_OPTIONS", asan_options.c_str(), 1);
    execl(bin.c_str(), bin.c_str(), mode.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  if (WIFSIGNALED(status)) return 1000 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// LeakSanitizer needs ptrace, which the filter forbids: leaks are checked in
// the filter-off run instead.
TEST(FilteredWorkload, HelperWorkKeepsWorkingUnderTheEnforcedFilter) {
  LBCSI_REQUIRE_ROOT();
  const int rc = RunWorkload("enforce", "detect_leaks=0");
  EXPECT_EQ(rc, 0) << (rc == 1000 + SIGSYS ? "killed by SIGSYS: a syscall the helper needs is "
                                             "missing from the allow-list (see stderr / audit log)"
                                           : "see the workload's stderr for the failed step");
}

TEST(FilteredWorkload, FilterOffRunIsLeakChecked) {
  LBCSI_REQUIRE_ROOT();
  EXPECT_EQ(RunWorkload("off", "detect_leaks=1"), 0);
}

}  // namespace
}  // namespace lbcsi::helper
