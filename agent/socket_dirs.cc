#include "agent/socket_dirs.h"

#include <algorithm>

#include "common/logging.h"
#include "common/strings.h"

namespace lbcsi::agent {
namespace {

const char* DirName(hv1::SocketDir dir) {
  return dir == hv1::SOCKET_DIR_PLUGIN ? "plugin" : "registration";
}

}  // namespace

absl::Status PrepareSocketDirs(HelperClient& helper, std::string_view endpoint_dir,
                               absl::Time deadline, const std::function<bool()>& stop_requested) {
  for (hv1::SocketDir dir : {hv1::SOCKET_DIR_PLUGIN, hv1::SOCKET_DIR_REGISTRATION}) {
    absl::Duration backoff = absl::Milliseconds(100);
    for (;;) {
      hv1::PrepareSocketDirRequest req;
      req.set_dir(dir);
      // One attempt never waits past the overall deadline, nor hangs on a wedged helper; short, so
      // a stop request is seen soon.
      const absl::Time attempt = std::min(deadline, absl::Now() + absl::Seconds(2));
      absl::StatusOr<hv1::PrepareSocketDirResponse> resp = helper.PrepareSocketDir(req, attempt);
      if (resp.ok()) {
        LOG(kInfo, "socket directory prepared by the helper", {"dir", DirName(dir)},
            {"path", resp->path()});
        if (dir == hv1::SOCKET_DIR_PLUGIN && resp->path() != endpoint_dir) {
          LOG(kWarn, "the helper prepared another plugin directory than the one holding --endpoint",
              {"prepared", resp->path()}, {"endpoint_dir", endpoint_dir});
        }
        break;
      }
      const absl::StatusCode code = resp.status().code();
      if (code == absl::StatusCode::kFailedPrecondition ||
          code == absl::StatusCode::kUnimplemented) {
        LOG(kInfo, "socket directory not managed by the helper; using it as it is",
            {"dir", DirName(dir)}, {"status", resp.status()});
        break;
      }
      const bool retriable =
          code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded;
      if (!retriable) {
        return absl::Status(code,
                            Cat("preparing the ", DirName(dir),
                                " socket directory through the helper: ", resp.status().message()));
      }
      if (absl::Now() >= deadline) {
        return absl::UnavailableError(Cat("preparing the ", DirName(dir),
                                          " socket directory: the helper did not answer in time (",
                                          resp.status().message(), ")"));
      }
      LOG(kWarn, "helper not reachable yet; retrying the socket directory preparation",
          {"dir", DirName(dir)}, {"status", resp.status()},
          {"retry_in", absl::FormatDuration(backoff)});
      for (absl::Time until = std::min(absl::Now() + backoff, deadline); absl::Now() < until;) {
        if (stop_requested && stop_requested()) {
          return absl::CancelledError("stopped while waiting for the helper");
        }
        absl::SleepFor(absl::Milliseconds(50));
      }
      backoff = std::min(backoff * 2, absl::Seconds(5));
    }
  }
  return absl::OkStatus();
}

}  // namespace lbcsi::agent
