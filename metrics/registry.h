#pragma once
// A small Prometheus registry: counters and histograms with labels, rendered
// in the text exposition format (version 0.0.4). Debian has no prometheus-cpp,
// and the controller and the agent need only these two kinds.
//
//   auto& reg = metrics::Registry::Global();
//   reg.DescribeCounter("lbcsi_rpc_total", "CSI calls by method and code");
//   reg.Increment("lbcsi_rpc_total", {{"method", "CreateVolume"}, {"code", "OK"}});
//   reg.Observe("lbcsi_rpc_seconds", {{"method", "CreateVolume"}}, 0.25);

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lbcsi::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Latency buckets in seconds, 1 ms .. 2 min.
const std::vector<double>& DefaultLatencyBuckets();

class Registry {
 public:
  // The process-wide registry the exporter serves.
  static Registry& Global();

  void DescribeCounter(std::string_view name, std::string_view help);
  void DescribeHistogram(std::string_view name, std::string_view help,
                         std::vector<double> buckets = DefaultLatencyBuckets());

  // Undescribed names are created on first use (counters; histograms get the default buckets).
  void Increment(std::string_view name, const Labels& labels, double by = 1);
  void Observe(std::string_view name, const Labels& labels, double value);

  // Current value of a counter series, 0 when absent (tests).
  double CounterValue(std::string_view name, const Labels& labels) const;
  // Number of observations of a histogram series (tests).
  uint64_t HistogramCount(std::string_view name, const Labels& labels) const;

  std::string RenderText() const;

 private:
  struct HistogramSeries {
    std::vector<uint64_t> buckets;  // cumulative counts are computed when rendering
    uint64_t count = 0;
    double sum = 0;
  };
  struct Family {
    bool histogram = false;
    std::string help;
    std::vector<double> bounds;
    std::map<std::string, double> counters;  // key: rendered label set
    std::map<std::string, HistogramSeries> histograms;
  };
  Family& GetFamily(std::string_view name, bool histogram);

  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;
};

// Renders {a="x",b="y"} with Prometheus escaping; "" for no labels.
std::string RenderLabels(const Labels& labels);

}  // namespace lbcsi::metrics
