#include "metrics/registry.h"

#include <algorithm>
#include <cmath>

#include "common/strings.h"

namespace lbcsi::metrics {
namespace {

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string FormatNumber(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return Cat(static_cast<long long>(v));
  return fmt::format("{:.9g}", v);
}

// Joins label sets: the base set with one more label (the histogram's "le").
std::string WithLabel(const std::string& rendered, std::string_view key, std::string_view value) {
  std::string extra = Cat(key, "=\"", value, "\"");
  if (rendered.empty()) return Cat("{", extra, "}");
  return Cat(rendered.substr(0, rendered.size() - 1), ",", extra, "}");
}

}  // namespace

const std::vector<double>& DefaultLatencyBuckets() {
  static const std::vector<double> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,   1,      2.5,   5,    10,    30,   60,  120};
  return kBuckets;
}

std::string RenderLabels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ",";
    out += Cat(labels[i].first, "=\"", EscapeLabelValue(labels[i].second), "\"");
  }
  return out + "}";
}

Registry& Registry::Global() {
  static auto* registry = new Registry();
  return *registry;
}

Registry::Family& Registry::GetFamily(std::string_view name, bool histogram) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    Family f;
    f.histogram = histogram;
    if (histogram) f.bounds = DefaultLatencyBuckets();
    it = families_.emplace(std::string(name), std::move(f)).first;
  }
  return it->second;
}

void Registry::DescribeCounter(std::string_view name, std::string_view help) {
  std::lock_guard<std::mutex> lock(mu_);
  GetFamily(name, false).help = std::string(help);
}

void Registry::DescribeHistogram(std::string_view name, std::string_view help,
                                 std::vector<double> buckets) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = GetFamily(name, true);
  f.help = std::string(help);
  std::sort(buckets.begin(), buckets.end());
  if (f.histograms.empty()) f.bounds = std::move(buckets);
}

void Registry::Increment(std::string_view name, const Labels& labels, double by) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = GetFamily(name, false);
  if (f.histogram) return;  // a name is one kind forever
  f.counters[RenderLabels(labels)] += by;
}

void Registry::Observe(std::string_view name, const Labels& labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = GetFamily(name, true);
  if (!f.histogram) return;
  HistogramSeries& s = f.histograms[RenderLabels(labels)];
  if (s.buckets.empty()) s.buckets.assign(f.bounds.size(), 0);
  auto pos = std::lower_bound(f.bounds.begin(), f.bounds.end(), value);
  if (pos != f.bounds.end()) ++s.buckets[pos - f.bounds.begin()];
  ++s.count;
  s.sum += value;
}

double Registry::CounterValue(std::string_view name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  auto c = it->second.counters.find(RenderLabels(labels));
  return c == it->second.counters.end() ? 0 : c->second;
}

uint64_t Registry::HistogramCount(std::string_view name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  auto h = it->second.histograms.find(RenderLabels(labels));
  return h == it->second.histograms.end() ? 0 : h->second.count;
}

std::string Registry::RenderText() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    if (!f.help.empty()) out += Cat("# HELP ", name, " ", f.help, "\n");
    out += Cat("# TYPE ", name, f.histogram ? " histogram\n" : " counter\n");
    if (!f.histogram) {
      for (const auto& [labels, value] : f.counters) {
        out += Cat(name, labels, " ", FormatNumber(value), "\n");
      }
      continue;
    }
    for (const auto& [labels, s] : f.histograms) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i < f.bounds.size(); ++i) {
        cumulative += s.buckets[i];
        out += Cat(name, "_bucket", WithLabel(labels, "le", FormatNumber(f.bounds[i])), " ",
                   cumulative, "\n");
      }
      out += Cat(name, "_bucket", WithLabel(labels, "le", "+Inf"), " ", s.count, "\n");
      out += Cat(name, "_sum", labels, " ", FormatNumber(s.sum), "\n");
      out += Cat(name, "_count", labels, " ", s.count, "\n");
    }
  }
  return out;
}

}  // namespace lbcsi::metrics
