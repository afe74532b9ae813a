// ClientGoneProbe / PeerClosed (server/http/client_gone.h) on real loopback TCP connections, and
// the gateway stopping a big computation whose HTTP client hung up (counted as CANCELLED).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/http/client_gone.h"
#include "tests/http_test_util.h"

namespace gradserve {
namespace {

struct Connection {
  int listener = -1, client = -1, server = -1;
  int listen_port = 0, client_port = 0;
  ~Connection() {
    for (int fd : {listener, client, server}) {
      if (fd >= 0) close(fd);
    }
  }
};

int Port(int fd, bool peer) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  (peer ? getpeername : getsockname)(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

void Connect(Connection& c) {
  c.listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(c.listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(c.listener, 4), 0);
  c.listen_port = Port(c.listener, false);
  addr.sin_port = htons(c.listen_port);
  c.client = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(c.client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  c.server = accept(c.listener, nullptr, nullptr);
  ASSERT_GE(c.server, 0);
  c.client_port = Port(c.client, false);
}

TEST(ClientGoneTest, FindsTheConnectionAndSeesThePeerClose) {
  Connection c;
  ASSERT_NO_FATAL_FAILURE(Connect(c));
  const auto gone = ClientGoneProbe("127.0.0.1", c.client_port, c.listen_port);
  ASSERT_TRUE(gone) << "no socket from port " << c.client_port << " to " << c.listen_port;
  EXPECT_FALSE(gone());
  ASSERT_EQ(send(c.client, "GET / HTTP/1.1\r\n\r\n", 18, 0), 18);  // a pipelined request
  EXPECT_FALSE(gone());
  close(c.client);
  c.client = -1;
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    seen = gone();
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(seen);
}

TEST(ClientGoneTest, NoProbeForAConnectionThatIsNotOpen) {
  Connection c;
  ASSERT_NO_FATAL_FAILURE(Connect(c));
  EXPECT_FALSE(ClientGoneProbe("127.0.0.1", c.client_port, c.listen_port + 1));
  EXPECT_FALSE(ClientGoneProbe("127.0.0.2", c.client_port, c.listen_port));
  EXPECT_FALSE(ClientGoneProbe("127.0.0.1", c.listen_port, c.client_port) &&
               c.listen_port == c.client_port);
}

// A client that sends a big VerifyGradient (2000 x 500 values, 20 MB of JSON) and hangs up at
// once: the server still reads and parses the body (it arrived before the FIN), then finds the
// caller gone at the computation's first poll and stops, counting the call as CANCELLED.
TEST(ClientGoneTest, GatewayStopsTheWorkOfAClientThatHungUp) {
  auto s = testing::StartWithHttp({"--compute_threads=2"});
  ASSERT_TRUE(s.ok()) << s.status();
  std::mt19937 random(14);
  std::string logits, labels;
  for (int k = 0; k < 2000 * 500; ++k) absl::StrAppend(&logits, k ? "," : "", static_cast<int>(random() % 2000) - 1000, "e-3");
  for (int r = 0; r < 2000; ++r) absl::StrAppend(&labels, r ? "," : "", random() % 500);
  const std::string body = absl::StrCat(R"({"logits": {"shape": [2000, 500], "values": [)", logits,
                                        R"(]}, "targets": {"class_indices": {"values": [)", labels,
                                        R"(]}}, "candidate_grad": {"shape": [2000, 500], "values": [)", logits, "]}}");
  auto client = s->Client();
  client->set_read_timeout(120, 0);
  const std::string labels_of = R"(gradserve_requests_total{rpc="VerifyGradient",protocol="http",code=")";
  auto count = [&](const char* code) {
    auto m = client->Get("/metrics");
    return m ? testing::ParseMetrics(m->body)[labels_of + code + "\"}"] : -1.0;
  };
  // The same call, waited for, succeeds.
  auto whole = client->Post("/v1/verify", body, "application/json");
  ASSERT_TRUE(whole) << httplib::to_string(whole.error());
  ASSERT_EQ(whole->status, 200) << whole->body.substr(0, 300);
  ASSERT_EQ(count("OK"), 1);

  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(s->http_port);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string request = testing::PostHead("/v1/verify", static_cast<long>(body.size()), "") + body;
  ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  close(fd);
  double cancelled = 0;
  for (int i = 0; i < 300 && cancelled == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancelled = count("CANCELLED");
  }
  EXPECT_EQ(cancelled, 1);
  EXPECT_EQ(count("OK"), 1);
  auto seed = client->Post("/v1/forward", R"({"logits": {"shape": [2], "values": [1, 1]}})", "application/json");
  ASSERT_TRUE(seed);
  EXPECT_EQ(seed->status, 200) << seed->body;
}

}  // namespace
}  // namespace gradserve
