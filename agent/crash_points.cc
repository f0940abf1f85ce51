#include "agent/crash_points.h"

#include <absl/strings/cord.h>

#include "common/strings.h"

namespace lbcsi::agent {
namespace {
constexpr char kPayloadUrl[] = "lbcsi.agent/simulated-crash";
}

absl::Status SimulatedCrash(std::string_view point) {
  absl::Status s = absl::UnavailableError(Cat("simulated crash at ", point));
  s.SetPayload(kPayloadUrl, absl::Cord(AbslView(point)));
  return s;
}

bool IsSimulatedCrash(const absl::Status& status) {
  return status.GetPayload(kPayloadUrl).has_value();
}

}  // namespace lbcsi::agent
