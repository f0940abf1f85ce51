// Pins our LightOS proto to the reference table (tests/lightos/lightos_api_reference.txt,
// transcribed from reference/lightos-api.md): every field, enum value and RPC must agree
// in both directions, so the client and lightos-sim cannot merely agree with each other.

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include "lightbits/api/duros/v2/durosapi.grpc.pb.h"
#include "lightbits/api/duros/v2/durosapi.pb.h"

namespace {

namespace gpb = google::protobuf;

constexpr std::string_view kPackage = "lightbits.api.duros.v2";

// Names inside our package are written without the package prefix in the table.
std::string ShortName(const std::string& full) {
  std::string prefix = std::string(kPackage) + ".";
  if (full.rfind(prefix, 0) == 0) return full.substr(prefix.size());
  return full;
}

std::string FieldTypeName(const gpb::FieldDescriptor* f) {
  switch (f->type()) {
    case gpb::FieldDescriptor::TYPE_MESSAGE:
    case gpb::FieldDescriptor::TYPE_GROUP: return ShortName(f->message_type()->full_name());
    case gpb::FieldDescriptor::TYPE_ENUM: return ShortName(f->enum_type()->full_name());
    default: return f->type_name();
  }
}

// One canonical line per fact, in the table's own format.
std::string FieldLine(const gpb::FieldDescriptor* f) {
  std::ostringstream out;
  out << ShortName(f->containing_type()->full_name()) << ' ' << f->number() << ' ' << f->name()
      << ' ' << FieldTypeName(f) << ' ' << (f->is_repeated() ? "repeated" : "single");
  const gpb::OneofDescriptor* oneof = f->containing_oneof();
  if (oneof != nullptr && !(oneof->field_count() == 1 && f->has_optional_keyword())) {
    out << " oneof=" << oneof->name();
  }
  return out.str();
}

void CollectEnum(const gpb::EnumDescriptor* e, std::set<std::string>* out) {
  for (int i = 0; i < e->value_count(); ++i) {
    out->insert("enum " + ShortName(e->full_name()) + " " + e->value(i)->name() + " " +
                std::to_string(e->value(i)->number()));
  }
}

void CollectMessage(const gpb::Descriptor* m, std::set<std::string>* out) {
  for (int i = 0; i < m->field_count(); ++i) out->insert(FieldLine(m->field(i)));
  for (int i = 0; i < m->enum_type_count(); ++i) CollectEnum(m->enum_type(i), out);
  for (int i = 0; i < m->nested_type_count(); ++i) CollectMessage(m->nested_type(i), out);
}

// Referencing one message of each file links it in (static library) and registers it.
const gpb::DescriptorPool* LinkedPool() {
  EXPECT_NE(lightbits::api::duros::v2::Volume::descriptor(), nullptr);
  EXPECT_NE(lightbits::api::duros::v2::VolumeStatisticsApi::descriptor(), nullptr);
  return gpb::DescriptorPool::generated_pool();
}

std::set<std::string> GeneratedFacts() {
  std::set<std::string> facts;
  const gpb::DescriptorPool* pool = LinkedPool();
  for (const char* name :
       {"lightbits/api/duros/v2/durosapi.proto", "lightbits/api/duros/v2/statisticsapi.proto"}) {
    const gpb::FileDescriptor* file = pool->FindFileByName(name);
    EXPECT_NE(file, nullptr) << name;
    if (file == nullptr) continue;
    EXPECT_EQ(file->package(), kPackage);
    for (int i = 0; i < file->message_type_count(); ++i)
      CollectMessage(file->message_type(i), &facts);
    for (int i = 0; i < file->enum_type_count(); ++i) CollectEnum(file->enum_type(i), &facts);
    for (int i = 0; i < file->service_count(); ++i) {
      const gpb::ServiceDescriptor* s = file->service(i);
      EXPECT_EQ(s->full_name(), std::string(kPackage) + ".DurosAPI");
      for (int j = 0; j < s->method_count(); ++j) {
        const gpb::MethodDescriptor* m = s->method(j);
        EXPECT_FALSE(m->client_streaming() || m->server_streaming()) << m->name();
        facts.insert("rpc " + m->name() + " " + ShortName(m->input_type()->full_name()) + " " +
                     ShortName(m->output_type()->full_name()));
      }
    }
  }
  return facts;
}

// Normalises whitespace so that the comparison is about content only.
std::string Normalise(const std::string& line) {
  std::istringstream in(line);
  std::string word, out;
  while (in >> word) out += (out.empty() ? "" : " ") + word;
  return out;
}

std::set<std::string> ReferenceFacts() {
  const char* src = std::getenv("LBCSI_SOURCE_DIR");
  std::string path = std::string(src ? src : ".") + "/tests/lightos/lightos_api_reference.txt";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::set<std::string> facts;
  std::string line;
  while (std::getline(in, line)) {
    line = Normalise(line);
    if (line.empty() || line[0] == '#') continue;
    EXPECT_TRUE(facts.insert(line).second) << "duplicate reference line: " << line;
  }
  return facts;
}

TEST(ProtoFidelityTest, ReferenceTableIsSubstantial) {
  auto ref = ReferenceFacts();
  // 13 RPCs, the Volume message, the volume state enum: guards against a truncated table.
  EXPECT_GT(ref.size(), 250u);
  EXPECT_TRUE(ref.count("rpc CreateVolume CreateVolumeRequest Volume"));
  EXPECT_TRUE(ref.count("Volume 14 ETag string single"));
  EXPECT_TRUE(ref.count("enum Volume.StateEnum Failed 7"));
}

TEST(ProtoFidelityTest, EveryReferenceFactIsInTheGeneratedDescriptors) {
  auto generated = GeneratedFacts();
  for (const auto& fact : ReferenceFacts()) {
    EXPECT_TRUE(generated.count(fact)) << "reference has, proto lacks or differs: " << fact;
  }
}

TEST(ProtoFidelityTest, EveryGeneratedFactIsInTheReference) {
  auto reference = ReferenceFacts();
  for (const auto& fact : GeneratedFacts()) {
    EXPECT_TRUE(reference.count(fact)) << "proto has, reference lacks: " << fact;
  }
}

TEST(ProtoFidelityTest, EveryMessageNamedByTheReferenceExists) {
  const gpb::DescriptorPool* pool = LinkedPool();
  for (const auto& fact : ReferenceFacts()) {
    std::istringstream in(fact);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    std::vector<std::string> types;
    if (words[0] == "rpc") {
      types = {words[2], words[3]};
    } else if (words[0] != "enum") {
      types = {words[0]};
    }
    for (const auto& t : types) {
      EXPECT_NE(pool->FindMessageTypeByName(std::string(kPackage) + "." + t), nullptr) << t;
    }
  }
}

TEST(ProtoFidelityTest, FullMethodNamesMatchTheWireNames) {
  // The path the server dispatches on: /lightbits.api.duros.v2.DurosAPI/<Rpc>.
  const gpb::ServiceDescriptor* s =
      LinkedPool()->FindServiceByName(lightbits::api::duros::v2::DurosAPI::service_full_name());
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->method_count(), 13);
  EXPECT_NE(s->FindMethodByName("GetClusterInfo"), nullptr);
}

}  // namespace
