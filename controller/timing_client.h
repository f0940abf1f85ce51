#pragma once
// Decorators that time every LightOS call into the metrics registry:
//   lbcsi_lightos_call_seconds{op}     histogram
//   lbcsi_lightos_calls_total{op,code} counter

#include <memory>

#include "lightos/client.h"
#include "metrics/registry.h"

namespace lbcsi::controller {

std::shared_ptr<lightos::Client> WithTiming(std::shared_ptr<lightos::Client> inner,
                                            metrics::Registry& registry);

class TimingClientFactory final : public lightos::ClientFactory {
 public:
  TimingClientFactory(std::shared_ptr<lightos::ClientFactory> inner, metrics::Registry& registry)
      : inner_(std::move(inner)), registry_(registry) {}
  absl::StatusOr<std::shared_ptr<lightos::Client>> GetClient(
      const lightos::ClusterTarget& target, const lightos::TokenSource& token) override;

 private:
  std::shared_ptr<lightos::ClientFactory> inner_;
  metrics::Registry& registry_;
};

}  // namespace lbcsi::controller
