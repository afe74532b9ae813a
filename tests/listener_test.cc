// The server's own listener: --listen parsing, and a port in use refused (gRPC's listener shares
// it through SO_REUSEPORT).
#include "server/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace gradserve {
namespace {

TEST(ParseListenAddressTest, AcceptsHostPortAndBracketedIpv6) {
  auto a = ParseListenAddress("127.0.0.1:50051");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 50051);
  a = ParseListenAddress("[::1]:0");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 0);
  a = ParseListenAddress("localhost:65535");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->port, 65535);
}

TEST(ParseListenAddressTest, RefusesBadPortsAndShapes) {
  const struct {
    const char* text;
    const char* message_part;
  } cases[] = {
      {"127.0.0.1:99999", "port \"99999\" is not a number in [0, 65535]"},
      {"127.0.0.1:65536", "port \"65536\" is not a number in [0, 65535]"},
      {"127.0.0.1:-1", "port \"-1\""},
      {"127.0.0.1:", "port \"\""},
      {"127.0.0.1:80x", "port \"80x\""},
      {"127.0.0.1:+80", "port \"+80\""},
      {"127.0.0.1", "expected HOST:PORT"},
      {":50051", "expected HOST:PORT"},
      {"::1:50051", "an IPv6 host goes in brackets"},
      {"[::1:50051", "closing ']'"},
  };
  for (const auto& c : cases) {
    const auto a = ParseListenAddress(c.text);
    ASSERT_FALSE(a.ok()) << c.text;
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(a.status().message().find(c.message_part), std::string::npos) << a.status();
    EXPECT_NE(a.status().message().find(std::string("--listen=") + c.text), std::string::npos) << a.status();
  }
}

// A socket listening with SO_REUSEPORT, as gRPC 1.51's own listener does.
int ListenWithReusePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 16) != 0) return -1;
  return fd;
}

int PortOf(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

TEST(ListenerTest, APortInUseIsRefusedEvenWhenItsOwnerAllowsSharing) {
  const int other = ListenWithReusePort();
  ASSERT_GE(other, 0);
  const auto listener = Listener::Open({"127.0.0.1", PortOf(other)});
  ASSERT_FALSE(listener.ok());
  EXPECT_EQ(listener.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(listener.status().message().find("Address already in use"), std::string::npos)
      << listener.status();
  close(other);
}

TEST(ListenerTest, PortZeroPicksAFreePortAndStopFreesIt) {
  auto first = Listener::Open({"127.0.0.1", 0});
  ASSERT_TRUE(first.ok()) << first.status();
  const int port = (*first)->port();
  EXPECT_GT(port, 0);
  EXPECT_FALSE(Listener::Open({"127.0.0.1", port}).ok());
  (*first)->Stop();
  EXPECT_TRUE(Listener::Open({"127.0.0.1", port}).ok());
}

// True if a TCP connection to `ip`:`port` succeeds (the listener's queue accepts it).
bool Connects(int family, const char* ip, int port) {
  const int fd = socket(family, SOCK_STREAM, 0);
  sockaddr_storage addr{};
  socklen_t len;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, ip, &a->sin_addr);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    len = sizeof *a;
  }
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0;
  close(fd);
  return ok;
}

// As with gRPC's own listener, 0.0.0.0 serves IPv6 too where the host has it (a dual-stack or
// IPv6-only cluster's probes and callers).
TEST(ListenerTest, TheWildcardServesBothFamilies) {
  auto listener = Listener::Open({"0.0.0.0", 0});
  ASSERT_TRUE(listener.ok()) << listener.status();
  EXPECT_TRUE(Connects(AF_INET, "127.0.0.1", (*listener)->port()));
  const int v6 = socket(AF_INET6, SOCK_STREAM, 0);
  if (v6 < 0) GTEST_SKIP() << "no IPv6 here";
  close(v6);
  EXPECT_TRUE(Connects(AF_INET6, "::1", (*listener)->port()));
}

}  // namespace
}  // namespace gradserve
