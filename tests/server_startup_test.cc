// The real gradserve-server at start-up and at its edges: --help and --version, ports in use or
// out of range refused, errors that stay within gRPC's trailers however large the caller's shape,
// and idle connections that cannot take the server's descriptors for good.
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "base/version.h"
#include "gradserve/v1/gradserve.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"
#include "tests/server_test_util.h"

namespace gradserve {
namespace {

using testing::ServerProcess;
namespace pb = ::gradserve::v1;

struct Ran {
  int exit_code = -1;  // -1: killed after the timeout
  std::string output;  // stdout and stderr together
};

// Runs gradserve-server with `args` to its end (at most `timeout_s`), capturing what it prints.
Ran RunServer(std::vector<std::string> args, int timeout_s = 10) {
  int out[2];
  if (pipe(out) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(out[1], STDERR_FILENO);
    close(out[0]);
    close(out[1]);
    std::string binary = GRADSERVE_SERVER_BINARY;
    std::vector<char*> argv{binary.data()};
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(out[1]);
  Ran ran;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()).count();
    pollfd p{out[0], POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    char buf[4096];
    const ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    ran.output.append(buf, n);
  }
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) ran.exit_code = WEXITSTATUS(status);
  return ran;
}

// The flags in the README's "Server flags" table.
std::set<std::string> ReadmeFlags() {
  const char* root = std::getenv("GRADSERVE_SOURCE_DIR");
  std::ifstream in(std::string(root ? root : GRADSERVE_SOURCE_DIR) + "/README.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::string readme = text.str();
  const size_t start = readme.find("## Server flags"), end = readme.find("\n## ", start + 1);
  std::set<std::string> flags;
  if (start == std::string::npos) return flags;
  std::istringstream section(readme.substr(start, end - start));
  const std::regex flag("`(--[a-z_]+)`");
  for (std::string line; std::getline(section, line);) {
    if (line.rfind("| `--", 0) != 0) continue;
    const std::string first_cell = line.substr(0, line.find('|', 1));
    for (std::sregex_iterator m(first_cell.begin(), first_cell.end(), flag), e; m != e; ++m) {
      flags.insert((*m)[1]);
    }
  }
  return flags;
}

TEST(ServerUsageTest, HelpListsEveryFlagWithItsDefaultAndTheReadmeDocumentsThem) {
  const Ran help = RunServer({"--help"});
  EXPECT_EQ(help.output.find("No flags matched"), std::string::npos) << help.output;
  EXPECT_NE(help.output.find("--listen (address to listen on"), std::string::npos) << help.output;
  EXPECT_NE(help.output.find("default: \"127.0.0.1:50051\""), std::string::npos) << help.output;
  EXPECT_NE(help.output.find("--handshake_timeout_seconds"), std::string::npos) << help.output;
  std::set<std::string> listed;
  const std::regex flag("\n    (--[a-z_]+) \\(");
  for (std::sregex_iterator m(help.output.begin(), help.output.end(), flag), e; m != e; ++m) {
    listed.insert((*m)[1]);
  }
  EXPECT_GE(listed.size(), 15u) << help.output;
  const std::set<std::string> documented = ReadmeFlags();
  for (const std::string& f : listed) EXPECT_EQ(documented.count(f), 1u) << f << " is not in README's Server flags";
  for (const std::string& f : documented) EXPECT_EQ(listed.count(f), 1u) << f << " is in README but not in --help";
}

TEST(ServerUsageTest, VersionIsTheProjectsAndExitsZero) {
  const Ran version = RunServer({"--version"});
  EXPECT_EQ(version.exit_code, 0) << version.output;
  EXPECT_EQ(version.output.rfind(std::string("gradserve-server ") + kVersion, 0), 0u) << version.output;
  if (kGitCommit[0] != '\0') {
    EXPECT_NE(version.output.find(kGitCommit), std::string::npos) << version.output;
  }
  EXPECT_EQ(version.output.find("NDEBUG"), std::string::npos) << version.output;
}

TEST(ServerPortTest, ASecondServerOnAPortInUseFailsAtStart) {
  auto first = ServerProcess::Start();
  ASSERT_TRUE(first.ok()) << first.status();
  const Ran second = RunServer({"--listen=" + (*first)->address()});
  EXPECT_EQ(second.exit_code, 1) << second.output;
  EXPECT_NE(second.output.find("cannot listen on " + (*first)->address() + ": Address already in use"),
            std::string::npos) << second.output;
  EXPECT_EQ(second.output.find("listening on"), std::string::npos) << second.output;
  EXPECT_TRUE((*first)->running());
}

TEST(ServerPortTest, APortOutOfRangeIsRefused) {
  for (const char* listen : {"--listen=127.0.0.1:99999", "--listen=127.0.0.1:http", "--listen=127.0.0.1"}) {
    const Ran ran = RunServer({listen});
    EXPECT_EQ(ran.exit_code, 2) << listen << ": " << ran.output;
    EXPECT_NE(ran.output.find(listen), std::string::npos) << ran.output;
    EXPECT_EQ(ran.output.find("listening on"), std::string::npos) << ran.output;
  }
}

// A limit near int64_t's range would overflow the shape products it bounds (limit + 1 when a
// shape is over it, bytes = elements · 8), so the flags stop at 2^50 and name the bad value.
TEST(ServerFlagTest, LimitsOutsideTheirRangeAreRefusedWithTheValue) {
  for (const char* flag : {"--max_elements=9223372036854775807", "--max_jacobian_elements=0",
                           "--max_verify_work=-3", "--max_elements=1125899906842625"}) {
    const Ran ran = RunServer({"--listen=127.0.0.1:0", flag});
    EXPECT_EQ(ran.exit_code, 2) << flag << ": " << ran.output;
    EXPECT_NE(ran.output.find(flag), std::string::npos) << ran.output;
    EXPECT_NE(ran.output.find("1125899906842624"), std::string::npos) << ran.output;
    EXPECT_EQ(ran.output.find("listening on"), std::string::npos) << ran.output;
  }
}

// A caller's shape of 200,000 dimensions (0.6 MB of varints) must give its own error, not the
// client's "received initial metadata size exceeds limit" for a message that embeds all of it.
TEST(ServerErrorTest, ErrorsAboutHugeShapesStayWithinTheTrailers) {
  auto server = ServerProcess::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = pb::GradientService::NewStub(
      grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials()));
  const struct {
    int64_t dim;               // every dimension
    grpc::StatusCode code;
    const char* message_part;  // the shape, elided
  } cases[] = {
      {1, grpc::StatusCode::INVALID_ARGUMENT, "got shape [1, 1, 1, ..., 1, 1, 1] (rank 200000)"},
      {-1, grpc::StatusCode::INVALID_ARGUMENT, "[-1, -1, -1, ..., -1, -1, -1] (rank 200000) has a negative"},
      {2, grpc::StatusCode::RESOURCE_EXHAUSTED, "[2, 2, 2, ..., 2, 2, 2] (rank 200000) has"},
  };
  for (const auto& c : cases) {
    pb::ForwardRequest req;
    for (int k = 0; k < 200000; ++k) req.mutable_logits()->add_shape(c.dim);
    req.mutable_logits()->add_values(0.5);
    pb::ForwardResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status s = stub->Forward(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), c.code) << s.error_message().substr(0, 300);
    EXPECT_NE(s.error_message().find(c.message_part), std::string::npos) << s.error_message().substr(0, 300);
    EXPECT_LT(s.error_message().size(), 300u);
  }
}

// Connects to `port` on loopback and says nothing.
int IdleConnection(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// More idle connections than the server has descriptors: gRPC 1.51's own listener stops
// accepting for good at the first EMFILE. Here accepting pauses, the handshake timeout closes the
// idle connections, and a legitimate call is served soon after.
TEST(ServerConnectionLimitTest, IdleConnectionsBeyondTheDescriptorLimitDoNotStopTheServer) {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizers' runtime needs descriptors of its own (UBSan's vptr check probes memory
  // through a pipe), so in a sanitized server out of descriptors it reports a bad vptr and aborts.
  // The normal build runs this test.
  GTEST_SKIP() << "not under the sanitizers: their runtime needs descriptors the test takes away";
#endif
  auto server = ServerProcess::Start({"--handshake_timeout_seconds=1"});
  ASSERT_TRUE(server.ok()) << server.status();
  // A hard limit of 64 descriptors (the server uses about 12 of them idle) that the server cannot
  // raise: a few hundred connections then exhaust it.
  const rlimit low{64, 64};
  ASSERT_EQ(prlimit((*server)->pid(), RLIMIT_NOFILE, &low, nullptr), 0) << std::strerror(errno);
  const std::string& address = (*server)->address();
  const int port = std::stoi(address.substr(address.rfind(':') + 1));
  std::vector<int> idle;
  for (int k = 0; k < 200; ++k) {
    const int fd = IdleConnection(port);  // the kernel completes these from the listen queue
    if (fd >= 0) idle.push_back(fd);
  }
  ASSERT_GE(idle.size(), 150u);
  auto stub = pb::GradientService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  const pb::ForwardRequest req = testing::SeedForward();
  pb::ForwardResponse resp;
  grpc::ClientContext ctx;
  // Each second the handshake timeout frees ~50 descriptors: 200 idle connections are gone in
  // about 4 s; 30 s leaves room for a loaded machine (gRPC's default timeout alone is 120 s).
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  const grpc::Status s = stub->Forward(&ctx, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.probabilities().values_size(), 2);
  // The idle connections were closed by the server, not left to hold its descriptors.
  // (The server may have sent its HTTP/2 SETTINGS before closing: read past them to the end.)
  int closed = 0;
  for (int fd : idle) {
    char buf[256];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {}
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) ++closed;
    close(fd);
  }
  EXPECT_GE(closed, 100) << "of " << idle.size();
  EXPECT_TRUE((*server)->running());
}

}  // namespace
}  // namespace gradserve
