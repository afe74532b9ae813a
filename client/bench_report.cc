#include "client/bench_report.h"

#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace gradserve::client {
namespace {

// A JSON string literal; targets and error messages may hold quotes and backslashes.
std::string Quote(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&out, absl::StrFormat("\\u%04x", c));
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

// JSON has no NaN or infinity; a run that measured nothing reports 0.
std::string Num(double v) { return std::isfinite(v) ? absl::StrFormat("%.6g", v) : "0"; }

std::string DtypeName(const BenchOptions& o) {
  switch (o.format.dtype) {
    case gradserve::v1::DATA_TYPE_FLOAT16: return "f16";
    case gradserve::v1::DATA_TYPE_BFLOAT16: return "bf16";
    case gradserve::v1::DATA_TYPE_FLOAT32: return "f32";
    default: return "f64";
  }
}

// "12.3 MB/s": decimal units, as network figures are.
std::string Rate(double bytes_per_s) {
  const char* units[] = {"B/s", "kB/s", "MB/s", "GB/s"};
  int u = 0;
  while (bytes_per_s >= 1000 && u < 3) {
    bytes_per_s /= 1000;
    ++u;
  }
  return absl::StrFormat("%.1f %s", bytes_per_s, units[u]);
}

}  // namespace

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double rank = std::ceil(q / 100.0 * sorted.size());
  const size_t index = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

BenchSummary Summarize(const BenchResult& r) {
  BenchSummary s;
  s.requests = r.requests;
  s.errors = r.errors;
  s.seconds = r.seconds;
  s.qps = r.seconds > 0 ? r.requests / r.seconds : 0;
  s.logits_bytes_per_s =
      r.seconds > 0 ? static_cast<double>(r.requests - r.errors) * r.logits_bytes_per_request / r.seconds : 0;
  s.p50 = Percentile(r.latencies_ms, 50);
  s.p90 = Percentile(r.latencies_ms, 90);
  s.p99 = Percentile(r.latencies_ms, 99);
  s.max = r.latencies_ms.empty() ? 0 : r.latencies_ms.back();
  s.mean = r.latencies_ms.empty()
               ? 0
               : std::accumulate(r.latencies_ms.begin(), r.latencies_ms.end(), 0.0) / r.latencies_ms.size();
  s.first_error = r.first_error;
  return s;
}

std::string BenchJson(const BenchSummary& s, const BenchOptions& o, const std::string& target) {
  const bool health = o.rpc == BenchRpc::kHealth;
  std::string out = absl::StrCat(
      "{\"rpc\": ", Quote(BenchRpcName(o.rpc)), ", \"target\": ", Quote(target),
      health ? "" : absl::StrCat(", \"shape\": [", o.batch, ", ", o.classes, "], \"dtype\": ",
                                 Quote(DtypeName(o)), ", \"encoding\": ",
                                 Quote(o.format.encoding == Encoding::kRaw ? "raw" : "values")),
      ", \"concurrency\": ", o.concurrency, ", \"connections\": ", o.connections,
      ", \"requests\": ", s.requests, ", \"errors\": ", s.errors, ", \"seconds\": ", Num(s.seconds),
      ", \"qps\": ", Num(s.qps), ", \"latency_ms\": {\"p50\": ", Num(s.p50), ", \"p90\": ", Num(s.p90),
      ", \"p99\": ", Num(s.p99), ", \"max\": ", Num(s.max), ", \"mean\": ", Num(s.mean), "}",
      ", \"logits_bytes_per_s\": ", Num(s.logits_bytes_per_s));
  if (!s.first_error.empty()) absl::StrAppend(&out, ", \"first_error\": ", Quote(s.first_error));
  return out + "}\n";
}

std::string BenchTable(const BenchSummary& s, const BenchOptions& o, const std::string& target) {
  std::string out = absl::StrCat("rpc          ", BenchRpcName(o.rpc), " -> ", target, "\n");
  if (o.rpc != BenchRpc::kHealth) {
    absl::StrAppend(&out, "logits       [", o.batch, ", ", o.classes, "] ", DtypeName(o), " ",
                    o.format.encoding == Encoding::kRaw ? "raw" : "values", "\n");
  }
  absl::StrAppend(&out, "concurrency  ", o.concurrency, " over ", o.connections,
                  o.connections == 1 ? " connection\n" : " connections\n");
  absl::StrAppend(&out, "requests     ", s.requests, " in ", absl::StrFormat("%.2f", s.seconds), " s, ",
                  s.errors, s.errors == 1 ? " error\n" : " errors\n");
  absl::StrAppend(&out, "qps          ", absl::StrFormat("%.1f", s.qps), "\n");
  absl::StrAppend(&out, absl::StrFormat("latency ms   p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  mean %.3f\n", s.p50,
                                        s.p90, s.p99, s.max, s.mean));
  if (o.rpc != BenchRpc::kHealth) absl::StrAppend(&out, "logits       ", Rate(s.logits_bytes_per_s), "\n");
  if (!s.first_error.empty()) absl::StrAppend(&out, "first error  ", s.first_error, "\n");
  return out;
}

}  // namespace gradserve::client
