// GET /metrics: the server's Metrics, build information and the standard process_* series, in
// the Prometheus text exposition format (version 0.0.4), which `promtool check metrics` accepts.
//
// Series (every counter since the process started):
//   gradserve_requests_total{rpc,protocol,code}          calls, errors and refusals included
//   gradserve_request_duration_seconds{rpc,protocol}     histogram, 100 µs to 30 s
//   gradserve_request_bytes_total / gradserve_response_bytes_total / gradserve_rows_total
//   gradserve_inflight_requests, gradserve_inflight_bytes, gradserve_inflight_limit_bytes
//   gradserve_compute_queue_length                       big requests waiting for a pool thread
//   gradserve_admission_rejections_total{reason}         message_size, inflight
//   gradserve_build_info{version,commit,kernel}          1
//   process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
//   process_open_fds, process_max_fds, process_start_time_seconds
#ifndef GRADSERVE_SERVER_HTTP_PROMETHEUS_TEXT_H_
#define GRADSERVE_SERVER_HTTP_PROMETHEUS_TEXT_H_

#include <cstdint>
#include <string>

#include "server/metrics.h"

namespace gradserve {

inline constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4; charset=utf-8";

std::string PrometheusText(const Metrics& metrics, int64_t max_inflight_bytes);

// The instruction set the kernels were compiled for: "avx512", "avx2" or "generic".
const char* KernelName();

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_HTTP_PROMETHEUS_TEXT_H_
