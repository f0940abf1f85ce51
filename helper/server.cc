#include "helper/server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <grpcpp/resource_quota.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_posix.h>

#include "common/grpc_server.h"
#include "common/logging.h"
#include "common/strings.h"

namespace lbcsi::helper {

absl::StatusOr<std::unique_ptr<HelperServer>> HelperServer::Start(const ServerOptions& options,
                                                                  grpc::Service* service) {
  std::unique_ptr<HelperServer> s(new HelperServer());
  s->options_ = options;
  sockaddr_un addr{};
  if (options.socket_path.empty() || options.socket_path[0] != '/' ||
      options.socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError("--socket must be an absolute path shorter than 108 bytes");
  }
  if (absl::Status st = RemoveStaleSocket(options.socket_path); !st.ok()) return st;

  grpc::ServerBuilder builder;
  grpc::ResourceQuota quota("lbcsi-helper");
  quota.SetMaxThreads(options.max_threads);
  builder.SetResourceQuota(quota);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 2);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 8);
  builder.SetMaxReceiveMessageSize(options.max_receive_bytes);
  builder.SetMaxSendMessageSize(options.max_send_bytes);
  builder.RegisterService(service);
  s->server_ = builder.BuildAndStart();
  if (!s->server_) return absl::InternalError("cannot start the gRPC server");

  s->listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s->listen_fd_ < 0) return absl::InternalError(Cat("socket: ", std::strerror(errno)));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, options.socket_path.c_str(), options.socket_path.size());
  if (bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::InternalError(Cat("bind ", options.socket_path, ": ", std::strerror(errno)));
  }
  // Only the agent's group (and root) may even connect; SO_PEERCRED decides.
  if (fchownat(AT_FDCWD, options.socket_path.c_str(), 0, options.allowed_gid,
               AT_SYMLINK_NOFOLLOW) != 0 ||
      fchmodat(AT_FDCWD, options.socket_path.c_str(), 0660, 0) != 0) {
    return absl::InternalError(
        Cat("chown/chmod ", options.socket_path, ": ", std::strerror(errno)));
  }
  if (listen(s->listen_fd_, 64) != 0) {
    return absl::InternalError(Cat("listen: ", std::strerror(errno)));
  }
  s->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->stop_fd_ < 0) return absl::InternalError(Cat("eventfd: ", std::strerror(errno)));
  s->acceptor_ = std::thread([p = s.get()] { p->AcceptLoop(); });
  LOG(kInfo, "serving", {"socket", options.socket_path}, {"allowed_uid", options.allowed_uid},
      {"allowed_gid", options.allowed_gid}, {"allow_root_client", options.allow_root_client});
  return s;
}

void HelperServer::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      LOG(kError, "poll failed; no longer accepting", {"error", std::strerror(errno)});
      return;
    }
    if (fds[1].revents) return;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        LOG(kWarn, "accept failed", {"error", std::strerror(errno)});
        usleep(10000);  // e.g. EMFILE: do not spin
      }
      continue;
    }
    ucred cred{};
    socklen_t len = sizeof(cred);
    bool ok = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && len == sizeof(cred);
    bool allowed = ok && ((cred.uid == options_.allowed_uid && cred.gid == options_.allowed_gid) ||
                          (options_.allow_root_client && cred.uid == 0));
    if (!allowed) {
      ++refused_;
      LOG(kWarn, "refused a connection", {"uid", ok ? static_cast<int64_t>(cred.uid) : -1},
          {"gid", ok ? static_cast<int64_t>(cred.gid) : -1}, {"pid", ok ? cred.pid : -1});
      close(fd);
      continue;
    }
    ++accepted_;
    grpc::AddInsecureChannelFromFd(server_.get(), fd);  // gRPC owns fd now
  }
}

void HelperServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
  }
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
  unlink(options_.socket_path.c_str());
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_->Wait();
  }
}

HelperServer::~HelperServer() {
  Shutdown();
}

}  // namespace lbcsi::helper
