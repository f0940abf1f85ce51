#include "agent/helper_client.h"

#include "agent/metrics.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>

#include "common/logging.h"
#include "common/status.h"
#include "common/unix_endpoint.h"

namespace lbcsi::agent {

HelperClient::HelperClient(std::shared_ptr<grpc::Channel> channel)
    : stub_(hv1::NodeHelper::NewStub(std::move(channel))) {}

std::unique_ptr<HelperClient> HelperClient::ForSocket(const std::string& socket_path) {
  grpc::ChannelArguments args;
  // The helper may restart; reconnect quickly rather than back off for minutes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return std::make_unique<HelperClient>(grpc::CreateCustomChannel(
      GrpcUnixTarget(socket_path), grpc::InsecureChannelCredentials(), args));
}

template <typename Req, typename Resp>
absl::StatusOr<Resp> HelperClient::Call(Method<Req, Resp> method, std::string_view name,
                                        const Req& req, absl::Time deadline) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  // Wait for a restarting helper within the deadline instead of failing at once.
  ctx.set_wait_for_ready(true);
  Resp resp;
  LOG(kDebug, "helper call", {"method", name}, log::Field::Proto("request", req));
  absl::Time start = absl::Now();
  grpc::Status st = ((*stub_).*method)(&ctx, req, &resp);
  RecordHelperCall(metrics_, name, FromGrpcStatus(st), absl::ToDoubleSeconds(absl::Now() - start));
  if (!st.ok()) {
    absl::Status s = FromGrpcStatus(st);
    LOG(kDebug, "helper call failed", {"method", name}, {"status", s});
    return Annotate(s, Cat("helper ", name));
  }
  return resp;
}

absl::StatusOr<hv1::GetInfoResponse> HelperClient::GetInfo(absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::GetInfo, "GetInfo", hv1::GetInfoRequest(), deadline);
}
absl::StatusOr<hv1::PrepareSocketDirResponse> HelperClient::PrepareSocketDir(
    const hv1::PrepareSocketDirRequest& req, absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::PrepareSocketDir, "PrepareSocketDir", req, deadline);
}
absl::StatusOr<hv1::AttachResponse> HelperClient::Attach(const hv1::AttachRequest& req,
                                                         absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::Attach, "Attach", req, deadline);
}
absl::StatusOr<hv1::DetachResponse> HelperClient::Detach(const hv1::DetachRequest& req,
                                                         absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::Detach, "Detach", req, deadline);
}
absl::StatusOr<hv1::ProbeResponse> HelperClient::Probe(const hv1::ProbeRequest& req,
                                                       absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::Probe, "Probe", req, deadline);
}
absl::StatusOr<hv1::FormatResponse> HelperClient::Format(const hv1::FormatRequest& req,
                                                         absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::Format, "Format", req, deadline);
}
absl::StatusOr<hv1::MountResponse> HelperClient::Mount(const hv1::MountRequest& req,
                                                       absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::Mount, "Mount", req, deadline);
}
absl::StatusOr<hv1::UnmountResponse> HelperClient::Unmount(const hv1::UnmountRequest& req,
                                                           absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::Unmount, "Unmount", req, deadline);
}
absl::StatusOr<hv1::PublishResponse> HelperClient::Publish(const hv1::PublishRequest& req,
                                                           absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::Publish, "Publish", req, deadline);
}
absl::StatusOr<hv1::UnpublishResponse> HelperClient::Unpublish(const hv1::UnpublishRequest& req,
                                                               absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::Unpublish, "Unpublish", req, deadline);
}
absl::StatusOr<hv1::ExpandFilesystemResponse> HelperClient::ExpandFilesystem(
    const hv1::ExpandFilesystemRequest& req, absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::ExpandFilesystem, "ExpandFilesystem", req, deadline);
}
absl::StatusOr<hv1::StatsResponse> HelperClient::Stats(const hv1::StatsRequest& req,
                                                       absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::Stats, "Stats", req, deadline);
}
absl::StatusOr<hv1::FormatEncryptedResponse> HelperClient::FormatEncrypted(
    const hv1::FormatEncryptedRequest& req, absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::FormatEncrypted, "FormatEncrypted", req, deadline);
}
absl::StatusOr<hv1::OpenEncryptedResponse> HelperClient::OpenEncrypted(
    const hv1::OpenEncryptedRequest& req, absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::OpenEncrypted, "OpenEncrypted", req, deadline);
}
absl::StatusOr<hv1::CloseEncryptedResponse> HelperClient::CloseEncrypted(
    const hv1::CloseEncryptedRequest& req, absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::CloseEncrypted, "CloseEncrypted", req, deadline);
}
absl::StatusOr<hv1::InventoryResponse> HelperClient::Inventory(absl::Time deadline) {
  return Call(&hv1::NodeHelper::StubInterface::Inventory, "Inventory", hv1::InventoryRequest(),
              deadline);
}

}  // namespace lbcsi::agent
