#include "common/grpc_server.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "common/strings.h"

#include <cerrno>
#include <cstring>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "common/logging.h"
#include "common/unix_endpoint.h"

namespace lbcsi {

absl::Status RemoveStaleSocket(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::InternalError(Cat("stat ", path, ": ", std::strerror(errno)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        Cat(path, " exists and is not a socket; refusing to remove it"));
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(Cat("socket: ", std::strerror(errno)));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  close(fd);
  if (rc == 0) {
    return absl::AlreadyExistsError(
        Cat("another process is serving on ", path, "; refusing to take it over"));
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(Cat("unlink ", path, ": ", std::strerror(errno)));
  }
  LOG(kInfo, "removed stale socket", {"path", path});
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<UnixGrpcServer>> UnixGrpcServer::Start(
    UnixServerOptions options, const std::vector<grpc::Service*>& services) {
  absl::StatusOr<std::string> path = ParseUnixEndpoint(options.endpoint);
  if (!path.ok()) return path.status();
  if (absl::Status s = RemoveStaleSocket(*path); !s.ok()) return s;

  grpc::ServerBuilder builder;
  builder.AddListeningPort(GrpcUnixTarget(*path), grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(options.max_receive_bytes);
  builder.SetMaxSendMessageSize(options.max_send_bytes);
  for (grpc::Service* service : services) builder.RegisterService(service);
  if (!options.interceptors.empty()) {
    builder.experimental().SetInterceptorCreators(std::move(options.interceptors));
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    return absl::UnavailableError(Cat("cannot listen on ", *path));
  }
  if (chmod(path->c_str(), options.socket_mode) != 0) {
    server->Shutdown();
    return absl::InternalError(Cat("chmod ", *path, ": ", std::strerror(errno)));
  }
  LOG(kInfo, "serving", {"socket", *path});
  return std::unique_ptr<UnixGrpcServer>(new UnixGrpcServer(*path, std::move(server)));
}

UnixGrpcServer::~UnixGrpcServer() {
  Shutdown(absl::ZeroDuration());
  Wait();
}

void UnixGrpcServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoSeconds(grace));
  unlink(socket_path_.c_str());
}

void UnixGrpcServer::Wait() {
  server_->Wait();
}

namespace {
sigset_t TerminationSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}
}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

bool TerminationSignalPending() {
  sigset_t pending;
  if (sigpending(&pending) != 0) return false;
  return sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1;
}

int WaitForTerminationSignal() {
  sigset_t set = TerminationSet();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

}  // namespace lbcsi
