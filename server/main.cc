// gradserve-server: serves gradserve.v1.GradientService, grpc.health.v1.Health and server
// reflection. Stops on SIGTERM/SIGINT: refuses new calls, lets in-flight ones finish within
// --shutdown_grace_seconds, exits 0.
#include <malloc.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "base/status_macros.h"
#include "base/version.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "lib/kernels/kernel_dispatch.h"
#include "server/descriptor_limit.h"
#include "server/gradient_service.h"
#include "server/http/http_server.h"
#include "server/listener.h"
#include "server/server_options.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "address to listen on (HOST:PORT; port 0 picks a free one)");
ABSL_FLAG(int64_t, max_message_mib, 64, "largest request or response, in MiB");
ABSL_FLAG(int64_t, max_elements, int64_t{1} << 25, "largest tensor, in elements");
ABSL_FLAG(int64_t, max_jacobian_elements, int64_t{1} << 24,
          "largest Jacobian returned or checked, batch·classes² elements");
ABSL_FLAG(int64_t, max_verify_work, int64_t{1} << 31,
          "largest VerifyGradient with a candidate_jacobian, batch·classes²");
ABSL_FLAG(int, compute_threads, 0,
          "threads the server computes on in all: big requests run on them, one each, and idle "
          "ones help with a request's rows; also the most one request uses (0: every core the "
          "process may use, a container's CPU limit included)");
ABSL_FLAG(std::string, token_file, "",
          "file holding a bearer token that every GradientService call must carry (health and "
          "reflection stay open); empty: no auth");
ABSL_FLAG(double, shutdown_grace_seconds, 20, "how long in-flight calls may run after SIGTERM");
ABSL_FLAG(double, max_connection_age_seconds, 0,
          "close each client connection gracefully after this long (0: never), so that clients "
          "re-resolve and spread over replicas added since they connected");
ABSL_FLAG(double, keepalive_seconds, 60,
          "ping a connection idle this long; close it if the ping is not answered within 20 s");
ABSL_FLAG(int, max_concurrent_streams, 100,
          "calls one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS)");
ABSL_FLAG(double, handshake_timeout_seconds, 5,
          "close a connection that has not completed its TLS and HTTP/2 handshake within this "
          "long, so idle sockets cannot hold the server's descriptors");
ABSL_FLAG(int64_t, max_inflight_mib, 1024,
          "requests admitted at once, counted as 3x their size; beyond it RESOURCE_EXHAUSTED");
ABSL_FLAG(std::string, tls_cert, "", "PEM server certificate chain; with --tls_key enables TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)");
ABSL_FLAG(std::string, http_listen, "",
          "HOST:PORT for HTTP: /metrics, /healthz, /readyz, the JSON gateway /v1/* and the "
          "verification page /; empty: no HTTP");

namespace gradserve {

constexpr char kServiceName[] = "gradserve.v1.GradientService";

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* flag) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", flag, " ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<ServerOptions> OptionsFromFlags() {
  ServerOptions o;
  o.listen = absl::GetFlag(FLAGS_listen);
  const int64_t mib = absl::GetFlag(FLAGS_max_message_mib);
  if (mib <= 0 || mib > 1024) return absl::InvalidArgumentError("--max_message_mib must be in [1, 1024]");
  o.limits.max_message_bytes = mib << 20;
  o.limits.max_elements = absl::GetFlag(FLAGS_max_elements);
  o.limits.max_jacobian_elements = absl::GetFlag(FLAGS_max_jacobian_elements);
  o.limits.max_verify_work = absl::GetFlag(FLAGS_max_verify_work);
  // The limits bound products of a shape's dimensions (and those products times 8 bytes), which
  // must stay far from int64_t's range; 2^50 elements is 8 PiB of float64, beyond any machine.
  constexpr int64_t kLargestLimit = int64_t{1} << 50;
  for (const auto& [name, value] : {std::pair{"--max_elements", o.limits.max_elements},
                                    std::pair{"--max_jacobian_elements", o.limits.max_jacobian_elements},
                                    std::pair{"--max_verify_work", o.limits.max_verify_work}}) {
    if (value <= 0 || value > kLargestLimit) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s=%d must be in [1, %d]", name, value, kLargestLimit));
    }
  }
  o.compute_threads = absl::GetFlag(FLAGS_compute_threads);
  o.shutdown_grace_seconds = absl::GetFlag(FLAGS_shutdown_grace_seconds);
  o.max_connection_age_seconds = absl::GetFlag(FLAGS_max_connection_age_seconds);
  o.keepalive_seconds = absl::GetFlag(FLAGS_keepalive_seconds);
  o.handshake_timeout_seconds = absl::GetFlag(FLAGS_handshake_timeout_seconds);
  if (!(o.max_connection_age_seconds >= 0) || !(o.keepalive_seconds > 0) ||
      !(o.handshake_timeout_seconds > 0)) {
    return absl::InvalidArgumentError(
        "--max_connection_age_seconds must be >= 0, --keepalive_seconds and "
        "--handshake_timeout_seconds > 0");
  }
  o.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  if (o.max_concurrent_streams < 1) return absl::InvalidArgumentError("--max_concurrent_streams must be >= 1");
  GRADSERVE_RETURN_IF_ERROR(ParseListenAddress(o.listen).status());
  o.limits.max_inflight_bytes = absl::GetFlag(FLAGS_max_inflight_mib) << 20;
  if (o.limits.max_inflight_bytes <= 0) return absl::InvalidArgumentError("--max_inflight_mib must be positive");
  const std::string token_file = absl::GetFlag(FLAGS_token_file);
  if (!token_file.empty()) {
    GRADSERVE_ASSIGN_OR_RETURN(const std::string token, ReadFile(token_file, "--token_file"));
    o.token = std::string(absl::StripAsciiWhitespace(token));
    if (o.token.empty()) return absl::InvalidArgumentError(absl::StrCat("--token_file ", token_file, " is empty"));
  }
  const std::string cert = absl::GetFlag(FLAGS_tls_cert), key = absl::GetFlag(FLAGS_tls_key),
                    client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  if (cert.empty() != key.empty()) return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  if (!client_ca.empty() && cert.empty()) return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
  if (!cert.empty()) {
    TlsFiles tls;
    GRADSERVE_ASSIGN_OR_RETURN(tls.cert_chain, ReadFile(cert, "--tls_cert"));
    GRADSERVE_ASSIGN_OR_RETURN(tls.private_key, ReadFile(key, "--tls_key"));
    if (!client_ca.empty()) {
      GRADSERVE_ASSIGN_OR_RETURN(tls.client_ca, ReadFile(client_ca, "--tls_client_ca"));
    }
    o.tls = std::move(tls);
  }
  return o;
}

std::shared_ptr<grpc::ServerCredentials> Credentials(const ServerOptions& options) {
  if (!options.tls) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(
      options.tls->client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                     : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = options.tls->client_ca;
  ssl.pem_key_cert_pairs.push_back({options.tls->private_key, options.tls->cert_chain});
  return grpc::SslServerCredentials(ssl);
}

// Tensors of several MiB would otherwise each get a fresh mmap and pay a page fault per 4 KiB
// on every call (about 2,800 per [4096, 1000] float32 Backward, most of its CPU time in a VM).
// Keeping them on the heap, and keeping up to the in-flight budget of freed heap, reuses pages.
// One arena: a buffer freed by a gRPC thread is then reused by a compute thread instead of
// each thread's arena holding its own (peak RSS of one such call 84 MiB instead of 187 MiB);
// small allocations stay lock-free in glibc's per-thread caches. Must run before any thread.
void KeepLargeBuffersOnTheHeap(int64_t inflight_bytes) {
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest allowed value on 64-bit
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(std::min<int64_t>(inflight_bytes, INT32_MAX)));
}

int Milliseconds(double seconds) {
  return static_cast<int>(std::min(seconds * 1000, double{INT32_MAX}));
}

void SetConnectionArguments(const ServerOptions& options, grpc::ServerBuilder& builder) {
  if (options.max_connection_age_seconds > 0) {
    // GOAWAY after the age; calls still running then get the shutdown grace to finish.
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               Milliseconds(options.max_connection_age_seconds));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               Milliseconds(options.shutdown_grace_seconds));
  }
  // A peer that vanished without closing its socket (a killed pod, a dropped NAT entry) is
  // found by a ping and closed, instead of holding the connection and its calls forever.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, Milliseconds(options.keepalive_seconds));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // A connection that never finishes its handshake (an idle or slow socket) is closed after this
  // instead of gRPC's default of 120 s, so such sockets cannot pile up and exhaust descriptors.
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                             Milliseconds(options.handshake_timeout_seconds));
  // Bounds the calls (and their memory) one connection holds open at once. It does not stop an
  // HTTP/2 rapid reset (streams opened and cancelled at once never count against it; gRPC 1.51
  // predates upstream's defence): see the README's threat model.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  // The listener (server/listener.h) binds without SO_REUSEPORT; gRPC must not add it either.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
}

int Serve(const ServerOptions& options) {
  // Linking health.pb.cc registers grpc.health.v1's descriptors, so reflection can describe the
  // built-in health service (grpc/grpc#36665).
  grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  const auto address = ParseListenAddress(options.listen);  // validated by OptionsFromFlags
  auto listener = Listener::Open(*address);
  if (!listener.ok()) {
    std::cerr << "gradserve-server: " << listener.status().message() << "\n";
    return 1;
  }
  GradientService service(options);
  grpc::ServerBuilder builder;
  // Connections come from our own listener (see server/listener.h for why not gRPC's).
  auto acceptor = builder.experimental().AddExternalConnectionAcceptor(
      grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD, Credentials(options));
  builder.RegisterService(&service);
  // The transport admits more than --max_message_mib so that an oversized request gets an error
  // that names its size, the limit and the flag, instead of gRPC's generic one.
  const int64_t transport = std::min<int64_t>(4 * options.limits.max_message_bytes, INT32_MAX);
  builder.SetMaxReceiveMessageSize(static_cast<int>(transport));
  builder.SetMaxSendMessageSize(static_cast<int>(transport));
  // gRPC's own buffers (requests being received) get a bound too, beside the admission limit.
  grpc::ResourceQuota quota("gradserve");
  quota.Resize(static_cast<size_t>(options.limits.max_inflight_bytes + 2 * transport));
  builder.SetResourceQuota(quota);
  SetConnectionArguments(options, builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::cerr << "gradserve-server: gRPC could not start (see its log above)\n";
    return 1;
  }
  // HTTP binds before the listen line is printed, so both accept calls once it appears.
  std::unique_ptr<HttpServer> http;
  if (const std::string http_listen = absl::GetFlag(FLAGS_http_listen); !http_listen.empty()) {
    auto started = HttpServer::Start(http_listen, service);
    if (!started.ok()) {
      std::cerr << "gradserve-server: " << started.status().message() << "\n";
      return 1;
    }
    http = std::move(*started);
  }
  server->GetHealthCheckService()->SetServingStatus(kServiceName, true);
  (*listener)->Start(acceptor.get());
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  std::cout << "gradserve-server: row kernel " << gradserve::ChosenKernel() << " (this CPU runs "
            << absl::StrJoin(gradserve::SupportedKernels(), ", ") << ")\n";
  std::cout << "gradserve-server listening on " << host << ":" << (*listener)->port()
            << (options.tls ? (options.tls->client_ca.empty() ? " (TLS)" : " (mutual TLS)") : "")
            << (options.token.empty() ? "" : " (bearer token required)") << std::endl;
  if (http) std::cout << "gradserve-server HTTP on " << http->address() << std::endl;

  // Signals were blocked before any thread started, so only this sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  std::cout << "gradserve-server: signal " << signal_number << ", draining for up to "
            << options.shutdown_grace_seconds << " s" << std::endl;
  (*listener)->Stop();                           // new connections are refused
  const absl::Time http_deadline = absl::Now() + absl::Seconds(options.shutdown_grace_seconds);
  if (http) http->BeginDrain();                 // /healthz and /readyz now answer 503
  server->GetHealthCheckService()->Shutdown();  // probes now see NOT_SERVING
  const auto grace = std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::duration<double>(options.shutdown_grace_seconds));
  server->Shutdown(std::chrono::system_clock::now() + grace);
  server->Wait();
  if (http) http->Drain(http_deadline);
  std::cout << "gradserve-server: stopped" << std::endl;
  // Every call has finished. gRPC 1.51's library teardown can then sit for seconds in an idle
  // executor's epoll timeout, so skip it: nothing is left to flush or release.
  std::_Exit(0);
}

// What --version prints: one line per fact about the build.
std::string VersionText() {
  std::string text = absl::StrCat("gradserve-server ", kVersion);
  if (kGitCommit[0] != '\0') absl::StrAppend(&text, " (git ", kGitCommit, ")");
  absl::StrAppend(&text, "\n");
  // Further build facts go here, one line each (e.g. the SIMD kernel the library chose).
  return text;
}

// --help lists the server's own flags (Abseil's default looks for flags in a file named after the
// binary and finds none); --helpfull lists Abseil's too. --version prints VersionText().
void ConfigureUsage() {
  absl::SetProgramUsageMessage(
      "Serves softmax cross-entropy gradients over gRPC (gradserve.v1).\n"
      "Usage: gradserve-server [--flag=value]...");
  absl::FlagsUsageConfig usage;
  usage.normalize_filename = [](absl::string_view file) {
    const size_t at = file.rfind("/server/");  // repository-relative: server/main.cc
    return std::string(at == absl::string_view::npos ? file : file.substr(at + 1));
  };
  usage.contains_help_flags = [](absl::string_view file) { return absl::StartsWith(file, "server/"); };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  usage.version_string = VersionText;
  absl::SetFlagsUsageConfig(usage);
}

}  // namespace gradserve

int main(int argc, char** argv) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  gradserve::ConfigureUsage();
  absl::ParseCommandLine(argc, argv);
  const auto options = gradserve::OptionsFromFlags();
  if (!options.ok()) {
    std::cerr << "gradserve-server: " << options.status().message() << "\n";
    return 2;
  }
  gradserve::RaiseDescriptorLimit();
  gradserve::KeepLargeBuffersOnTheHeap(options->limits.max_inflight_bytes);
  return gradserve::Serve(*options);
}
