// Everything the server is configured with, read once from flags by main.cc.
#ifndef GRADSERVE_SERVER_SERVER_OPTIONS_H_
#define GRADSERVE_SERVER_SERVER_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>

namespace gradserve {

// Request limits; each names the flag that sets it so that errors can say which one to change.
struct Limits {
  int64_t max_message_bytes = int64_t{64} << 20;      // --max_message_mib
  int64_t max_elements = int64_t{1} << 25;            // --max_elements, per tensor
  int64_t max_jacobian_elements = int64_t{1} << 24;   // --max_jacobian_elements, batch·classes²
  int64_t max_verify_work = int64_t{1} << 31;         // --max_verify_work, with a candidate_jacobian
  // Requests admitted at once, counted as 3 × their size (request, response, working copies):
  // what bounds the server's memory when many huge requests arrive together.
  int64_t max_inflight_bytes = int64_t{1} << 30;      // --max_inflight_mib
};

// TLS: a server certificate and key, and optionally a CA that client certificates must chain to.
struct TlsFiles {
  std::string cert_chain;  // PEM contents, not paths
  std::string private_key;
  std::string client_ca;   // non-empty: mutual TLS, client certificates required
};

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";
  Limits limits;
  int compute_threads = 0;          // per request, and big requests at once; 0 = every core
  std::string token;                // required bearer token; empty = no auth
  std::optional<TlsFiles> tls;      // empty: plaintext
  double shutdown_grace_seconds = 20;
  double max_connection_age_seconds = 0;  // 0: connections live until the client closes them
  double keepalive_seconds = 60;          // ping a connection after this long without data
  double handshake_timeout_seconds = 5;   // close connections not through TLS + HTTP/2 by then
  int max_concurrent_streams = 100;       // calls open at once on one connection
};

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_SERVER_OPTIONS_H_
