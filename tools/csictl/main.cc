// csictl: call any CSI RPC (Identity, Controller, Node) on a unix socket.
//
//   csictl --endpoint unix:///csi/csi.sock list
//   csictl --endpoint unix:///csi/csi.sock GetPluginInfo
//   csictl -e unix:///csi/csi.sock CreateVolume '{"name":"pvc-1","parameters":{...}}'
//   csictl -e ... --json NodeGetInfo
//
// The request is proto3 JSON (field names as in the spec, e.g. "volume_id");
// the reply is printed as protobuf text (default) or JSON (--json). Requests
// are never printed, so secrets passed in them do not reach the terminal log.

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <string>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <CLI/CLI.hpp>

#include "common/strings.h"
#include "common/unix_endpoint.h"
#include "csi/v1/csi.pb.h"

namespace {

using google::protobuf::MethodDescriptor;

const google::protobuf::FileDescriptor* CsiFile() {
  return csi::v1::GetPluginInfoRequest::descriptor()->file();
}

const MethodDescriptor* FindMethod(const std::string& name) {
  const auto* file = CsiFile();
  for (int s = 0; s < file->service_count(); ++s) {
    const auto* service = file->service(s);
    for (int m = 0; m < service->method_count(); ++m) {
      const MethodDescriptor* method = service->method(m);
      if (method->name() == name || method->full_name() == name ||
          lbcsi::Cat(service->name(), ".", method->name()) == name) {
        return method;
      }
    }
  }
  return nullptr;
}

void ListMethods() {
  const auto* file = CsiFile();
  for (int s = 0; s < file->service_count(); ++s) {
    const auto* service = file->service(s);
    for (int m = 0; m < service->method_count(); ++m) {
      if (service->method(m)->server_streaming()) continue;
      std::cout << service->name() << "." << service->method(m)->name() << "\n";
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"csictl: call CSI RPCs on a unix socket"};
  std::string endpoint;
  std::string method_name;
  std::string request_json = "{}";
  bool json = false;
  int timeout_s = 60;
  app.add_option("-e,--endpoint", endpoint, "CSI endpoint, unix:///path")->envname("CSI_ENDPOINT");
  app.add_flag("--json", json, "print the reply as JSON");
  app.add_option("-t,--timeout", timeout_s, "deadline in seconds")->capture_default_str();
  app.add_option("method", method_name, "RPC name (e.g. NodeStageVolume) or 'list'")->required();
  app.add_option("request", request_json, "request as proto3 JSON (default {})");
  CLI11_PARSE(app, argc, argv);

  if (method_name == "list") {
    ListMethods();
    return 0;
  }
  const MethodDescriptor* method = FindMethod(method_name);
  if (method == nullptr || method->server_streaming() || method->client_streaming()) {
    std::cerr << "unknown or streaming RPC \"" << method_name << "\" (try: csictl list)\n";
    return 2;
  }
  auto path = lbcsi::ParseUnixEndpoint(endpoint);
  if (!path.ok()) {
    std::cerr << "--endpoint: " << path.status().message() << "\n";
    return 2;
  }

  google::protobuf::DynamicMessageFactory factory;
  std::unique_ptr<google::protobuf::Message> request(
      factory.GetPrototype(method->input_type())->New());
  std::unique_ptr<google::protobuf::Message> reply(
      factory.GetPrototype(method->output_type())->New());
  auto parsed = google::protobuf::util::JsonStringToMessage(request_json, request.get());
  if (!parsed.ok()) {
    std::cerr << "request is not a valid " << method->input_type()->name() << ": "
              << parsed.ToString() << "\n";
    return 2;
  }

  auto channel =
      grpc::CreateChannel(lbcsi::GrpcUnixTarget(*path), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
  std::string wire = request->SerializeAsString();
  grpc::Slice slice(wire);
  grpc::ByteBuffer send(&slice, 1);
  grpc::ByteBuffer recv;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&ctx, lbcsi::Cat("/", method->service()->full_name(), "/", method->name()), {},
                 &send, &recv, [&](grpc::Status s) {
                   std::lock_guard lock(mu);
                   status = std::move(s);
                   done = true;
                   cv.notify_one();
                 });
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
  }
  if (!status.ok()) {
    std::cerr << method->name() << " failed: " << status.error_code() << " ("
              << status.error_message() << ")\n";
    return 1;
  }
  std::vector<grpc::Slice> slices;
  (void)recv.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (!reply->ParseFromString(bytes)) {
    std::cerr << "could not decode the reply\n";
    return 1;
  }
  std::string out;
  if (json) {
    google::protobuf::util::JsonPrintOptions opts;
    opts.add_whitespace = true;
    opts.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(*reply, &out, opts);
  } else {
    google::protobuf::TextFormat::PrintToString(*reply, &out);
    if (out.empty()) out = "(empty reply: OK)\n";
  }
  std::cout << out;
  return 0;
}
