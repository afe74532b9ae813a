#include "server/http/prometheus_text.h"

#include <dirent.h>
#include <charconv>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/version.h"
#include "lib/kernels/kernel_dispatch.h"

namespace gradserve {
namespace {

constexpr Rpc kRpcs[] = {Rpc::kForward, Rpc::kBackward, Rpc::kVerifyGradient, Rpc::kBackwardStream};
constexpr Protocol kProtocols[] = {Protocol::kGrpc, Protocol::kHttp};

// BackwardStream has no HTTP form.
bool Served(Protocol p, Rpc r) { return p == Protocol::kGrpc || r != Rpc::kBackwardStream; }

// The shortest text that reads back as the same double (Prometheus parses Go's float syntax).
std::string Number(double v) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  return std::string(buf, end);
}

void Header(std::string& out, const char* name, const char* type, const char* help) {
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

std::string ReadProcFile(const char* path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// From /proc: the fields of /proc/self/stat after the command name (which may hold spaces).
void AppendProcessMetrics(std::string& out) {
  const std::string stat = ReadProcFile("/proc/self/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return;
  const std::vector<absl::string_view> f =
      absl::StrSplit(absl::string_view(stat).substr(paren + 2), ' ', absl::SkipEmpty());
  // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
  if (f.size() < 22) return;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  double utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
  if (!absl::SimpleAtod(f[11], &utime) || !absl::SimpleAtod(f[12], &stime) ||
      !absl::SimpleAtod(f[19], &start) || !absl::SimpleAtod(f[20], &vsize) ||
      !absl::SimpleAtod(f[21], &rss)) {
    return;
  }
  double boot_time = 0;
  for (absl::string_view line : absl::StrSplit(ReadProcFile("/proc/stat"), '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) absl::SimpleAtod(line, &boot_time);
  }
  int fds = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (const dirent* e = readdir(dir)) fds += e->d_name[0] != '.';
    closedir(dir);
    fds -= 1;  // the directory stream's own descriptor
  }
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);

  Header(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
  absl::StrAppend(&out, "process_cpu_seconds_total ", Number((utime + stime) / ticks), "\n");
  Header(out, "process_resident_memory_bytes", "gauge", "Resident memory size, in bytes.");
  absl::StrAppend(&out, "process_resident_memory_bytes ", Number(rss * page), "\n");
  Header(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size, in bytes.");
  absl::StrAppend(&out, "process_virtual_memory_bytes ", Number(vsize), "\n");
  Header(out, "process_open_fds", "gauge", "Open file descriptors.");
  absl::StrAppend(&out, "process_open_fds ", fds, "\n");
  Header(out, "process_max_fds", "gauge", "Limit on open file descriptors.");
  absl::StrAppend(&out, "process_max_fds ", Number(static_cast<double>(nofile.rlim_cur)), "\n");
  Header(out, "process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds.");
  absl::StrAppend(&out, "process_start_time_seconds ", Number(boot_time + start / ticks), "\n");
}

}  // namespace

std::string PrometheusText(const Metrics& metrics, int64_t max_inflight_bytes) {
  Metrics::Series series[kProtocolCount][kRpcCount];
  for (Protocol p : kProtocols) {
    for (Rpc r : kRpcs) series[static_cast<int>(p)][static_cast<int>(r)] = metrics.Read(r, p);
  }
  std::string out;
  out.reserve(16 << 10);

  Header(out, "gradserve_requests_total", "counter",
         "Calls finished, by RPC, protocol and gRPC status code (errors and refusals included).");
  for (Protocol p : kProtocols) {
    for (Rpc r : kRpcs) {
      if (!Served(p, r)) continue;
      const Metrics::Series& s = series[static_cast<int>(p)][static_cast<int>(r)];
      for (int code = 0; code < kStatusCodeCount; ++code) {
        // OK is always listed, so that rates start from zero; other codes once they happen.
        if (code != 0 && s.calls[code] == 0) continue;
        absl::StrAppend(&out, "gradserve_requests_total{rpc=\"", RpcName(r), "\",protocol=\"",
                        ProtocolName(p), "\",code=\"",
                        absl::StatusCodeToString(static_cast<absl::StatusCode>(code)), "\"} ",
                        s.calls[code], "\n");
      }
    }
  }

  Header(out, "gradserve_request_duration_seconds", "histogram",
         "Time from a call's arrival to its answer (a stream: to its end), in seconds.");
  for (Protocol p : kProtocols) {
    for (Rpc r : kRpcs) {
      if (!Served(p, r)) continue;
      const Metrics::Series& s = series[static_cast<int>(p)][static_cast<int>(r)];
      const std::string labels = absl::StrCat("rpc=\"", RpcName(r), "\",protocol=\"", ProtocolName(p), "\"");
      uint64_t cumulative = 0;
      for (size_t b = 0; b < s.buckets.size(); ++b) {
        cumulative += s.buckets[b];
        const std::string le = b < kLatencyBuckets.size() ? Number(kLatencyBuckets[b]) : "+Inf";
        absl::StrAppend(&out, "gradserve_request_duration_seconds_bucket{", labels, ",le=\"", le,
                        "\"} ", cumulative, "\n");
      }
      absl::StrAppend(&out, "gradserve_request_duration_seconds_sum{", labels, "} ",
                      Number(s.duration_seconds), "\n");
      absl::StrAppend(&out, "gradserve_request_duration_seconds_count{", labels, "} ", cumulative, "\n");
    }
  }

  struct Total {
    const char* name;
    const char* help;
    uint64_t Metrics::Series::*field;
  };
  const Total totals[] = {
      {"gradserve_request_bytes_total", "Request bytes received (protobuf or JSON as sent).",
       &Metrics::Series::request_bytes},
      {"gradserve_response_bytes_total", "Response bytes sent for successful calls.",
       &Metrics::Series::response_bytes},
      {"gradserve_rows_total", "Logits rows computed by successful calls.", &Metrics::Series::rows},
  };
  for (const Total& t : totals) {
    Header(out, t.name, "counter", t.help);
    for (Protocol p : kProtocols) {
      for (Rpc r : kRpcs) {
        if (!Served(p, r)) continue;
        absl::StrAppend(&out, t.name, "{rpc=\"", RpcName(r), "\",protocol=\"", ProtocolName(p), "\"} ",
                        series[static_cast<int>(p)][static_cast<int>(r)].*t.field, "\n");
      }
    }
  }

  Header(out, "gradserve_inflight_requests", "gauge", "Requests admitted and not yet answered.");
  absl::StrAppend(&out, "gradserve_inflight_requests ", metrics.inflight_requests(), "\n");
  Header(out, "gradserve_inflight_bytes", "gauge",
         "Bytes of the requests admitted and not yet answered (admission counts each 3x).");
  absl::StrAppend(&out, "gradserve_inflight_bytes ", metrics.inflight_bytes(), "\n");
  Header(out, "gradserve_inflight_limit_bytes", "gauge",
         "The admission budget, --max_inflight_mib in bytes, against 3x gradserve_inflight_bytes.");
  absl::StrAppend(&out, "gradserve_inflight_limit_bytes ", max_inflight_bytes, "\n");
  Header(out, "gradserve_compute_queue_length", "gauge",
         "Big requests waiting for a compute pool thread.");
  absl::StrAppend(&out, "gradserve_compute_queue_length ", metrics.queued(), "\n");
  Header(out, "gradserve_admission_rejections_total", "counter",
         "Requests refused RESOURCE_EXHAUSTED at admission: over --max_message_mib (message_size) "
         "or over --max_inflight_mib (inflight).");
  for (Rejection why : {Rejection::kMessageSize, Rejection::kInflight}) {
    absl::StrAppend(&out, "gradserve_admission_rejections_total{reason=\"", RejectionName(why), "\"} ",
                    metrics.rejections(why), "\n");
  }
  Header(out, "gradserve_build_info", "gauge", "1, labelled with the version, commit and kernel ISA.");
  absl::StrAppend(&out, "gradserve_build_info{version=\"", kVersion, "\",commit=\"", kGitCommit,
                  "\",kernel=\"", ChosenKernel(), "\"} 1\n");
  AppendProcessMetrics(out);
  return out;
}

}  // namespace gradserve
