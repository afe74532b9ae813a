// How the client reaches the server: the one place a channel is made and a call is dressed.
//
// Targets are anything gRPC resolves: "host:port", "dns:///host:port" (every address the name
// resolves to) or "ipv4:10.0.0.1:50051,10.0.0.2:50051"; calls are spread over all resolved
// addresses round-robin, so one client drives every replica. With TLS the server's certificate
// is checked against a CA (or the system's roots), and a client certificate can be presented
// for a server that requires mutual TLS.
//
//   ConnectionOptions conn;
//   conn.target = "dns:///gradserve:50051";
//   conn.token = "s3cret";
//   std::shared_ptr<grpc::Channel> channel = CreateChannel(conn);
//   grpc::ClientContext context;
//   PrepareContext(conn, &context);  // deadline and "authorization: Bearer s3cret"
#ifndef GRADSERVE_CLIENT_CHANNEL_H_
#define GRADSERVE_CLIENT_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"

namespace gradserve::client {

struct ConnectionOptions {
  std::string target = "127.0.0.1:50051";
  std::string token;                         // sent as "authorization: Bearer <token>" if set
  absl::Duration timeout = absl::Seconds(30);  // per call; zero or infinite: no deadline
  // TLS. PEM contents, not paths; empty root_ca means the system's roots.
  bool tls = false;
  std::string tls_root_ca;
  std::string tls_cert_chain;   // with tls_private_key: a client certificate (mutual TLS)
  std::string tls_private_key;
  std::string tls_server_name;  // overrides the name checked against the server's certificate
};

// A channel (TLS or plaintext, as `options` say) with round-robin load balancing and no client-side message size limit
// (the server enforces its own, and a [4096, 1000] float64 answer is far beyond gRPC's 4 MiB
// default). With `own_connection` the channel does not share its connections with other channels
// to the same target (gRPC pools them by default), for a load generator that spreads its calls
// over several connections.
std::shared_ptr<grpc::Channel> CreateChannel(const ConnectionOptions& options,
                                             bool own_connection = false);

// Sets the call's deadline and credentials metadata.
void PrepareContext(const ConnectionOptions& options, grpc::ClientContext* context);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_CHANNEL_H_
