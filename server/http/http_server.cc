#include "server/http/http_server.h"

#include <signal.h>

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "httplib.h"
#include "server/http/client_gone.h"
#include "server/http/http_errors.h"
#include "server/http/json_gateway.h"
#include "server/http/json_tensors.h"
#include "server/http/page.h"
#include "server/http/prometheus_text.h"

namespace gradserve {
namespace {

constexpr char kJson[] = "application/json";

// cpp-httplib serves each connection on one pool thread for as long as it is kept alive, and a
// /v1 call holds its thread while it computes: room for many clients beyond the cores.
size_t HttpThreads() { return std::max(16u, 4 * std::thread::hardware_concurrency()); }

void SendError(httplib::Response& res, const absl::Status& status) {
  res.status = HttpStatusFor(status.code());
  res.set_content(ErrorJson(status), kJson);
}

// A successful /v1 answer, sent from where it was printed (memory of this thread, valid until
// its next call; cpp-httplib writes the response on the thread that ran the handler).
// Response::set_content would copy it, and would compress it for a client that accepts gzip
// or br, which costs more CPU than the computation for a tensor of a few MB.
void SendJson(httplib::Response& res, std::string_view json) {
  res.set_content_provider(json.size(), kJson, [json](size_t offset, size_t length, httplib::DataSink& sink) {
    return sink.write(json.data() + offset, length);
  });
}

// The request body, in memory this thread keeps from call to call (see json_gateway.cc on
// why), up to the same bound.
std::string& ThreadBody() {
  thread_local std::string body;
  if (body.capacity() > kKeptBytesPerThread) std::string().swap(body);
  body.clear();
  return body;
}

// A body over the message limit is HTTP's 413, not grpc-gateway's 429 for RESOURCE_EXHAUSTED:
// retrying it will not help.
constexpr int kPayloadTooLarge = 413;

absl::Status TooLarge(uint64_t bytes, int64_t limit) {
  return absl::ResourceExhaustedError(absl::StrFormat(
      "request body is %d bytes (%.1f MiB), over the %.0f MiB limit set by --max_message_mib", bytes,
      bytes / 1048576.0, limit / 1048576.0));
}

// Calls with bodies at least this big stop computing when their client hangs up.
constexpr size_t kWatchedBodyBytes = 256 << 10;

struct Route {
  const char* path;
  Rpc rpc;
};
constexpr Route kRoutes[] = {
    {"/v1/forward", Rpc::kForward}, {"/v1/backward", Rpc::kBackward}, {"/v1/verify", Rpc::kVerifyGradient}};

}  // namespace

HttpServer::HttpServer(GradientService& service)
    : service_(service), server_(std::make_unique<httplib::Server>()) {}

HttpServer::~HttpServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& listen,
                                                              GradientService& service) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--http_listen=", listen, " is not HOST:PORT"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);

  // Debian's libcpp-httplib sends without MSG_NOSIGNAL: a client that goes away mid-response
  // would otherwise kill the process with SIGPIPE. The write then fails with EPIPE instead.
  signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<HttpServer> http(new HttpServer(service));
  httplib::Server& server = *http->server_;
  server.new_task_queue = [] { return new httplib::ThreadPool(HttpThreads()); };
  server.set_payload_max_length(static_cast<size_t>(service.options().limits.max_message_bytes));
  server.set_keep_alive_max_count(1000);
  server.set_keep_alive_timeout(2);
  // Answers go out as soon as they are written, not after the client's delayed ACK (40 ms).
  server.set_tcp_nodelay(true);
  http->Routes();
  if (port == 0) {
    port = server.bind_to_any_port(host);
    if (port < 0) return absl::UnavailableError(absl::StrCat("cannot listen on --http_listen=", listen));
  } else if (!server.bind_to_port(host, port)) {
    return absl::UnavailableError(absl::StrCat("cannot listen on --http_listen=", listen));
  }
  http->address_ = absl::StrCat(listen.substr(0, colon), ":", port);
  http->thread_ = std::thread([&server] { server.listen_after_bind(); });
  return http;
}

void HttpServer::BeginDrain() { draining_.store(true); }

void HttpServer::Drain(absl::Time deadline) {
  BeginDrain();
  {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(
                              +[](int* active) { return *active == 0; }, &active_calls_),
                          deadline);
  }
  server_->stop();
}

void HttpServer::Routes() {
  httplib::Server& server = *server_;
  const int64_t limit = service_.options().limits.max_message_bytes;

  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(PrometheusText(service_.metrics(), service_.options().limits.max_inflight_bytes),
                    kPrometheusContentType);
  });
  server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    res.status = draining() ? 503 : 200;
    res.set_content(draining() ? "draining\n" : "ok\n", "text/plain");
  });
  server.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    res.status = draining() ? 503 : 200;
    res.set_content(draining() ? R"({"status":"NOT_SERVING"})" : R"({"status":"SERVING"})", kJson);
  });
  server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    const std::string_view page = VerifierPage();
    res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
    // Everything the page needs is inline; it may talk only to this server.
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                   "connect-src 'self'; img-src data:; form-action 'none'; frame-ancestors 'none'");
    res.set_header("X-Content-Type-Options", "nosniff");
  });

  // A client that asks before sending (Expect: 100-continue, curl's habit for big bodies) is
  // told 413 before it sends anything.
  server.set_expect_100_continue_handler([this, limit](const httplib::Request& req, httplib::Response& res) {
    const uint64_t length = req.get_header_value<uint64_t>("Content-Length");
    if (length > static_cast<uint64_t>(limit)) {
      for (const Route& route : kRoutes) {
        if (req.path != route.path) continue;
        service_.metrics().RecordCall(route.rpc, Protocol::kHttp, absl::StatusCode::kResourceExhausted,
                                      Metrics::NowNanos(), 0, 0, 0);
        service_.metrics().RecordRejection(Rejection::kMessageSize);
      }
      SendError(res, TooLarge(length, limit));
      res.status = kPayloadTooLarge;
      return kPayloadTooLarge;
    }
    return 100;
  });

  for (const Route& route : kRoutes) {
    const Rpc rpc = route.rpc;
    server.Post(route.path, [this, rpc, limit](const httplib::Request& req, httplib::Response& res,
                                               const httplib::ContentReader& read) {
      const int64_t start = Metrics::NowNanos();
      {
        absl::MutexLock lock(&mu_);
        ++active_calls_;
      }
      std::string& body = ThreadBody();
      JsonAnswer answer;
      bool too_large = false;
      const bool has_length = req.has_header("Content-Length");
      const uint64_t length = req.get_header_value<uint64_t>("Content-Length");
      if (has_length && length > static_cast<uint64_t>(limit)) {
        // Refused from the header alone; the unread body makes the connection unusable.
        answer.status = TooLarge(length, limit);
        too_large = true;
        service_.metrics().RecordRejection(Rejection::kMessageSize);
        res.set_header("Connection", "close");
      } else if (draining()) {
        answer.status = absl::UnavailableError("the server is shutting down; retry on another replica");
      } else {
        // The padding lets the JSON parser read the body where it lies (json_tensors.h).
        body.reserve((has_length ? length : 0) + kJsonPadding);
        // A chunked body declares no length. Past the limit it is no longer kept, but read on
        // (up to 4x the limit, as the gRPC transport admits) so that the answer is not sent
        // while the client is still writing, which cpp-httplib cannot follow with a close.
        uint64_t received = 0;
        read([&](const char* data, size_t n) {
          received += n;
          too_large = received > static_cast<uint64_t>(limit);
          if (too_large) {
            std::string().swap(body);
          } else {
            body.append(data, n);
          }
          return received <= 4 * static_cast<uint64_t>(limit);
        });
        if (too_large) {
          answer.status = absl::ResourceExhaustedError(absl::StrFormat(
              "request body (sent without Content-Length) is %s%d bytes, over the %.0f MiB limit "
              "set by --max_message_mib", received > 4 * static_cast<uint64_t>(limit) ? "over " : "",
              received, limit / 1048576.0));
          service_.metrics().RecordRejection(Rejection::kMessageSize);
        } else {
          answer.status = service_.AuthenticateHeader(req.has_header("Authorization"),
                                                      req.get_header_value("Authorization"));
        }
        absl::StatusOr<std::optional<absl::Time>> deadline = DeadlineFromTimeout(req.get_header_value("Grpc-Timeout"));
        if (answer.status.ok() && !deadline.ok()) answer.status = deadline.status();
        if (answer.status.ok()) {
          // Only calls big enough to compute for a while are worth finding the socket for.
          std::function<bool()> client_gone;
          if (body.size() >= kWatchedBodyBytes) {
            client_gone = ClientGoneProbe(req.remote_addr, req.remote_port, req.local_port);
          }
          answer = ServeJson(service_, rpc, body, *deadline, std::move(client_gone));
        }
      }
      size_t response_bytes = 0;
      if (answer.status.ok()) {
        res.status = 200;
        response_bytes = answer.json.size();
        SendJson(res, answer.json);
      } else {
        SendError(res, answer.status);
        if (too_large) res.status = kPayloadTooLarge;
      }
      service_.metrics().RecordCall(rpc, Protocol::kHttp, answer.status.code(), start, body.size(),
                                    response_bytes, answer.rows);
      absl::MutexLock lock(&mu_);
      --active_calls_;
    });
    server.Get(route.path, [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Allow", "POST");
      SendError(res, absl::UnimplementedError("this path takes POST with a JSON body"));
      res.status = 405;
    });
  }

  // Anything else that failed without a body of its own (unknown path: 404; a body cpp-httplib
  // refused: 400 or 413) gets the same JSON error shape.
  const httplib::Server::HandlerWithResponse json_errors = [](const httplib::Request& req,
                                                              httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    absl::Status status;
    switch (res.status) {
      case 404: status = absl::NotFoundError(absl::StrCat("no such path: ", req.method, " ", req.path)); break;
      case 413: status = absl::ResourceExhaustedError("request body over the --max_message_mib limit"); break;
      default: status = absl::InvalidArgumentError(absl::StrCat("HTTP ", res.status, " for ", req.method, " ", req.path));
    }
    res.set_content(ErrorJson(status), kJson);
    return httplib::Server::HandlerResponse::Handled;
  };
  server.set_error_handler(json_errors);
}

}  // namespace gradserve
