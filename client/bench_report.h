// What `gradserve bench` prints: a summary of a run as one JSON object (for scripts and the
// README's figures) or as aligned lines.
//
//   BenchSummary s = Summarize(result, options);
//   std::cout << BenchJson(s, options, conn.target);
//   {"rpc": "backward", "requests": 200, "errors": 0, "qps": 5123.4,
//    "latency_ms": {"p50": 1.2, "p90": 1.9, "p99": 3.1, "max": 4.0, "mean": 1.3}, ...}
#ifndef GRADSERVE_CLIENT_BENCH_REPORT_H_
#define GRADSERVE_CLIENT_BENCH_REPORT_H_

#include <string>
#include <vector>

#include "client/bench.h"

namespace gradserve::client {

struct BenchSummary {
  int64_t requests = 0, errors = 0;
  double seconds = 0, qps = 0;           // qps counts every answered call, errors included
  double logits_bytes_per_s = 0;         // logits of the successful calls
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;  // ms, successful calls
  std::string first_error;
};

// The nearest-rank percentile (q in [0, 100]) of ascending `sorted`; 0 when it is empty.
double Percentile(const std::vector<double>& sorted, double q);

BenchSummary Summarize(const BenchResult& result);

std::string BenchJson(const BenchSummary& s, const BenchOptions& options, const std::string& target);
std::string BenchTable(const BenchSummary& s, const BenchOptions& options, const std::string& target);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_BENCH_REPORT_H_
