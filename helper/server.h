#pragma once
// Serves one gRPC service on a unix socket whose connections the helper
// accepts itself: SO_PEERCRED is checked on each accepted connection and a
// refused one is closed before gRPC reads a byte; accepted fds are handed to
// gRPC with AddInsecureChannelFromFd. The sync server's thread pool is capped
// by a ResourceQuota sized so that calls stuck in the kernel do not starve
// calls for other volumes.

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <absl/status/statusor.h>
#include <grpcpp/server.h>

namespace lbcsi::helper {

struct ServerOptions {
  std::string socket_path;
  uid_t allowed_uid = 0;
  gid_t allowed_gid = 0;
  bool allow_root_client = false;  // tests: also accept uid 0
  int max_threads = 64;
  int max_receive_bytes = 64 << 10;  // requests are small and typed
  int max_send_bytes = 4 << 20;      // Inventory may list many mounts
};

class HelperServer {
 public:
  static absl::StatusOr<std::unique_ptr<HelperServer>> Start(const ServerOptions& options,
                                                             grpc::Service* service);
  ~HelperServer();
  void Shutdown();
  uint64_t refused() const { return refused_.load(); }
  uint64_t accepted() const { return accepted_.load(); }

 private:
  HelperServer() = default;
  void AcceptLoop();
  ServerOptions options_;
  std::unique_ptr<grpc::Server> server_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd that wakes the accept loop
  std::thread acceptor_;
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> accepted_{0};
  bool shut_down_ = false;
};

}  // namespace lbcsi::helper
