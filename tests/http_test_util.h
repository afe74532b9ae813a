// Helpers for the HTTP integration tests: a free loopback port for --http_listen, a server
// started with HTTP on it, and /metrics parsed into a map.
#ifndef GRADSERVE_TESTS_HTTP_TEST_UTIL_H_
#define GRADSERVE_TESTS_HTTP_TEST_UTIL_H_

#include <arpa/inet.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "tests/server_process.h"

namespace gradserve::testing {

// A port the kernel just handed out and released: free unless another process grabs it now.
inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

struct HttpServerProcess {
  std::unique_ptr<ServerProcess> process;
  int http_port = 0;
  std::unique_ptr<httplib::Client> Client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", http_port);
    c->set_read_timeout(30, 0);
    return c;
  }
};

inline absl::StatusOr<HttpServerProcess> StartWithHttp(std::vector<std::string> flags = {}) {
  signal(SIGPIPE, SIG_IGN);  // cpp-httplib's client writes without MSG_NOSIGNAL
  HttpServerProcess s;
  s.http_port = FreePort();
  flags.push_back(absl::StrCat("--http_listen=127.0.0.1:", s.http_port));
  auto process = ServerProcess::Start(std::move(flags));
  if (!process.ok()) return process.status();
  s.process = std::move(*process);
  return s;
}

// Sends `bytes` on a fresh connection, then reads until the server closes it (or 10 s pass):
// for requests a server must answer before they are sent whole.
inline std::string RawExchange(int port, const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size())) {
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) answer.append(buf, n);
  }
  close(fd);
  return answer;
}

// A POST's head, declaring `length` body bytes (or chunked when length < 0).
inline std::string PostHead(const std::string& path, long length, const std::string& token) {
  return absl::StrCat("POST ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n",
                      token.empty() ? "" : absl::StrCat("Authorization: Bearer ", token, "\r\n"),
                      length < 0 ? std::string("Transfer-Encoding: chunked\r\n")
                                 : absl::StrCat("Content-Length: ", length, "\r\n"),
                      "\r\n");
}

// "name{labels}" -> value for every sample line of a Prometheus text exposition.
inline std::map<std::string, double> ParseMetrics(const std::string& text) {
  std::map<std::string, double> samples;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return samples;
}

}  // namespace gradserve::testing

#endif  // GRADSERVE_TESTS_HTTP_TEST_UTIL_H_
