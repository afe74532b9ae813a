// Deadlines observed on the server: a client sees DEADLINE_EXCEEDED from its own timer whatever
// the server does, so these tests watch the server instead: its log line when work stops at a
// deadline, and its CPU time.
//
// No wall-clock thresholds. A deadline that expires mid-computation is placed from times measured
// in the same run (the request's arrival and its full computation); on a machine too erratic for
// that to land in the computation in a few attempts, the test says so and is skipped rather than
// passing without having seen anything. Work is compared as CPU time, which a loaded machine does
// not inflate the way it does wall time.
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gradserve/v1/gradserve.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"
#include "tests/server_test_util.h"

namespace gradserve {
namespace {

using testing::ServerProcess;
namespace pb = ::gradserve::v1;

// User + system CPU seconds of process `pid`, from /proc/PID/stat.
double CpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // after "pid (comm) "
  std::string field;
  double ticks = 0;
  for (int k = 3; k <= 15 && fields >> field; ++k) {
    if (k == 14 || k == 15) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The server's CPU time once it has stopped working: no more than 20 ms of CPU in 500 ms (an idle
// gRPC server uses next to none). Gives up after 120 s, far beyond any cut-short work.
double CpuSecondsWhenIdle(int pid) {
  double before = CpuSeconds(pid);
  for (int waited = 0; waited < 240; ++waited) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const double now = CpuSeconds(pid);
    if (now - before < 0.02) return now;
    before = now;
  }
  return before;
}

// A verification of `rows` x `classes` float32 logits with a wrong candidate; `bad_label` makes it
// fail validation right after its tensors are decoded, i.e. once it has arrived.
pb::VerifyGradientRequest Verification(int64_t rows, int64_t classes, bool bad_label = false) {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> z(rows * classes);
  for (float& v : z) v = normal(rng);
  pb::VerifyGradientRequest req;
  pb::Tensor* logits = req.mutable_logits();
  logits->add_shape(rows);
  logits->add_shape(classes);
  logits->set_dtype(pb::DATA_TYPE_FLOAT32);
  logits->set_raw(std::string(reinterpret_cast<const char*>(z.data()), z.size() * sizeof(float)));
  for (int64_t i = 0; i < rows; ++i) req.mutable_targets()->mutable_class_indices()->add_values(7);
  if (bad_label) req.mutable_targets()->mutable_class_indices()->mutable_values()->Set(rows - 1, classes);
  *req.mutable_candidate_grad() = *logits;
  return req;
}

double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Times a VerifyGradient call, with a deadline `deadline_s` from now (0: none).
grpc::Status TimedCall(pb::GradientService::Stub& stub, const pb::VerifyGradientRequest& req,
                       double deadline_s, double* seconds) {
  pb::VerifyGradientResponse resp;
  grpc::ClientContext ctx;
  if (deadline_s > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::microseconds(static_cast<int64_t>(deadline_s * 1e6)));
  }
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status s = stub.VerifyGradient(&ctx, req, &resp);
  *seconds = Seconds(std::chrono::steady_clock::now() - start);
  return s;
}

bool HealthyForward(pb::GradientService::Stub& stub) {
  const pb::ForwardRequest req = testing::SeedForward();
  pb::ForwardResponse resp;
  grpc::ClientContext ctx;
  return stub.Forward(&ctx, req, &resp).ok() && resp.probabilities().values(0) == 0.5;
}

struct OverrunLine {
  int64_t past_ms = 0, worked_ms = 0;
};

// Every "work finished N ms past its deadline after M ms of work" line of the server's log.
std::vector<OverrunLine> Overruns(const std::string& log) {
  std::vector<OverrunLine> out;
  static const std::regex line(R"(work finished (\d+) ms past its deadline after (\d+) ms of work)");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator(); ++it) {
    out.push_back({std::stoll((*it)[1]), std::stoll((*it)[2])});
  }
  return out;
}

// The server logs when work stops at a deadline, and when work finishes although its deadline had
// passed (what a server that ignored deadlines would do for every expired call). Deadlines are
// placed at several points between the request's arrival and the call's end as measured in the
// same run; where each lands (transfer, computation or response) varies with the machine's load,
// so the test requires that no work overran by more than a quarter of its length, and that at
// least one deadline landed in the computation and stopped it (else it is skipped, saying why).
TEST(ServerDeadlineTest, WorkStopsWhenTheDeadlineExpiresMidComputation) {
  auto started = ServerProcess::Start({"--compute_threads=2"});
  ASSERT_TRUE(started.ok()) << started.status();
  ServerProcess& server = **started;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // the response carries two float64 gradients
  auto stub = pb::GradientService::NewStub(
      grpc::CreateCustomChannel(server.address(), grpc::InsecureChannelCredentials(), args));
  // 4000 x 500 float32, 16 MB with the candidate.
  const pb::VerifyGradientRequest req = Verification(4000, 500), arrives = Verification(4000, 500, true);
  for (int attempt = 0; attempt < 8; ++attempt) {
    double arrival = 0, full = 0, took = 0;
    ASSERT_EQ(TimedCall(*stub, arrives, 0, &arrival).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    const grpc::Status whole = TimedCall(*stub, req, 0, &full);
    ASSERT_TRUE(whole.ok()) << whole.error_message();
    // The computation is the early part of what follows the arrival (the 32 MB response takes
    // the rest), so the deadlines sit at 1/32 ... 1/4 of it.
    const double deadline = arrival + std::max(0.0, full - arrival) * (1 << (attempt % 4)) / 32;
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // one log line a second
    const grpc::Status s = TimedCall(*stub, req, deadline, &took);
    std::cout << "attempt " << attempt << ": arrives in " << arrival << " s, whole call " << full
              << " s; deadline " << deadline << " s: " << (s.ok() ? "OK" : s.error_message()) << "\n";
    EXPECT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
    std::this_thread::sleep_for(std::chrono::milliseconds(s.ok() ? 0 : 1000));  // let the work end
    const std::string log = server.Output();
    // Work may end a polling interval past its deadline (a deadline that lands in the last block
    // of rows or in the encoding), but not by a large part of the work: a server that ignored the
    // deadline would overrun by at least half of it here.
    for (const OverrunLine& o : Overruns(log)) {
      EXPECT_LE(4 * o.past_ms, o.worked_ms) << log;
    }
    if (log.find("work stopped at its deadline") != std::string::npos) {
      EXPECT_TRUE(HealthyForward(*stub));
      return;
    }
  }
  GTEST_SKIP() << "no deadline landed inside the computation in 8 attempts; log:\n" << server.Output();
}

// A 1 ms deadline expires while the 15 MB request is still being sent: the server must not do the
// work. Full work: the CPU of a run of 1/8 of the rows, times 8 (the work is linear in the rows).
TEST(ServerDeadlineTest, NoWorkForACallWhoseDeadlineExpiresWhileItIsSent) {
  auto server = ServerProcess::Start({"--compute_threads=2"});
  ASSERT_TRUE(server.ok()) << server.status();
  const int pid = (*server)->pid();
  auto stub = pb::GradientService::NewStub(
      grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials()));
  double took = 0, before = CpuSecondsWhenIdle(pid);
  ASSERT_TRUE(TimedCall(*stub, Verification(60, 4000), 0, &took).ok());
  const double full = 8 * (CpuSecondsWhenIdle(pid) - before);
  const pb::VerifyGradientRequest req = Verification(480, 4000);
  before = CpuSecondsWhenIdle(pid);
  const grpc::Status s = TimedCall(*stub, req, 0.001, &took);
  const double used = CpuSecondsWhenIdle(pid) - before;
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  std::cout << "server CPU: " << used << " s for the expired call, ~" << full << " s for the full work\n";
  EXPECT_LT(used, full / 4);
  EXPECT_TRUE(HealthyForward(*stub));
  EXPECT_TRUE((*server)->running());
}

}  // namespace
}  // namespace gradserve
