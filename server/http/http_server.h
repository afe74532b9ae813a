// The HTTP listener beside gRPC (--http_listen): one cpp-httplib server with
//   GET  /metrics                       Prometheus text (prometheus_text.h)
//   GET  /healthz, /readyz              200 while serving, 503 once draining (readyz says it in
//                                       grpc.health.v1's words: SERVING / NOT_SERVING)
//   POST /v1/forward, /v1/backward, /v1/verify   the JSON gateway (json_gateway.h)
//   GET  /                              the verification page, embedded in the binary
// Calls to /v1/* take the same bearer token (header "Authorization: Bearer <token>"), message
// limit, admission budget and compute pool as gRPC calls, and are counted in the same metrics.
//
//   auto http = HttpServer::Start("127.0.0.1:8080", service);
//   ... on SIGTERM: http->BeginDrain(); (drain gRPC) http->Drain(deadline);
#ifndef GRADSERVE_SERVER_HTTP_HTTP_SERVER_H_
#define GRADSERVE_SERVER_HTTP_HTTP_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/gradient_service.h"

namespace httplib {
class Server;
}

namespace gradserve {

class HttpServer {
 public:
  // Binds `listen` (HOST:PORT; port 0 picks a free one) and serves on its own threads.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& listen,
                                                           GradientService& service);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  const std::string& address() const { return address_; }  // "HOST:PORT", the port bound

  // From now on health answers 503 and new /v1 calls UNAVAILABLE; /metrics and / still answer.
  void BeginDrain();
  // Waits until the /v1 calls in flight have finished or `deadline` passes, then stops listening.
  void Drain(absl::Time deadline);

 private:
  HttpServer(GradientService& service);
  void Routes();
  bool draining() const { return draining_.load(std::memory_order_relaxed); }

  GradientService& service_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::string address_;
  std::atomic<bool> draining_{false};
  absl::Mutex mu_;
  int active_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_HTTP_HTTP_SERVER_H_
