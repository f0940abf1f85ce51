#pragma once
// A gRPC server on a unix socket, with the chores every binary of ours needs:
// refuse to steal a live socket, remove a stale one, set the socket's mode,
// and shut down cleanly on SIGTERM/SIGINT.

#include <memory>
#include <string>
#include <vector>

#include <absl/status/statusor.h>
#include <absl/time/time.h>
#include <grpcpp/server.h>
#include <grpcpp/support/server_interceptor.h>

namespace lbcsi {

struct UnixServerOptions {
  std::string endpoint;         // unix:///path/to.sock
  unsigned socket_mode = 0660;  // applied after bind
  int max_receive_bytes = 4 << 20;
  int max_send_bytes = 4 << 20;
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
};

class UnixGrpcServer {
 public:
  static absl::StatusOr<std::unique_ptr<UnixGrpcServer>> Start(
      UnixServerOptions options, const std::vector<grpc::Service*>& services);
  ~UnixGrpcServer();

  const std::string& socket_path() const { return socket_path_; }
  // Stops accepting, lets calls in flight finish for `grace`, then cancels them.
  void Shutdown(absl::Duration grace);
  void Wait();

 private:
  UnixGrpcServer(std::string path, std::unique_ptr<grpc::Server> server)
      : socket_path_(std::move(path)), server_(std::move(server)) {}
  std::string socket_path_;
  std::unique_ptr<grpc::Server> server_;
  bool shut_down_ = false;
};

// Removes `path` if it is a socket nobody listens on. FAILED_PRECONDITION if
// it exists and is not a socket; ALREADY_EXISTS if a server answers on it.
absl::Status RemoveStaleSocket(const std::string& path);

// Block SIGTERM, SIGINT and SIGHUP in the calling thread; call in main() before
// any thread is started so that every thread inherits the mask.
void BlockTerminationSignals();
// Waits for one of them; returns its number.
int WaitForTerminationSignal();
// True when SIGTERM or SIGINT is pending (blocked, not yet taken by WaitForTerminationSignal):
// lets start-up loops give up early without consuming the signal.
bool TerminationSignalPending();

}  // namespace lbcsi
