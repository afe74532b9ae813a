// Bounded soak test: several client threads against the real gradserve-server mix good calls
// (checked against closed forms) with bad inputs, oversized messages, cancelled calls, deadlines
// that expire mid-request, streams abandoned half way and dropped connections (channels released
// with calls in flight, client processes killed mid-call, raw TCP connections reset mid-request),
// for $GRADSERVE_SOAK_SECONDS seconds (default 30; CI runs 120). The server must stay up and
// answer every good call correctly, and its memory (VmRSS) and open file descriptors must stay
// flat after warm-up:
//   final RSS <= max(1.2 × after-warm-up RSS, after-warm-up RSS + 64 MiB)
//   |final fds - after-warm-up fds| <= 16
// "after warm-up" is the server sampled once the first quarter of the run is over, with every
// worker running; "final" is sampled after the workers have stopped and closed their channels.
// In a sanitizer build RSS is reported, not checked: ASan's quarantine holds freed memory.
// The clients are in soak_clients.h and soak_connections.h, the sampling in soak_proc.h.
//
//   GRADSERVE_SOAK_SECONDS=900 build/tests/soak_test
//   GRADSERVE_SOAK_ONLY=good,reset build/tests/soak_test     # only the named workers
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"
#include "tests/soak_calls.h"
#include "tests/soak_clients.h"
#include "tests/soak_proc.h"
#include "tests/tensor_values.h"

namespace gradserve::soak {
namespace {

using Clock = std::chrono::steady_clock;
using testing::ServerProcess;
using testing::TensorValues;

constexpr int kMaxMessageMib = 4;

double SoakSeconds() {
  const char* s = std::getenv("GRADSERVE_SOAK_SECONDS");
  return s != nullptr && std::atof(s) > 0 ? std::atof(s) : 30.0;
}

// $GRADSERVE_SOAK_ONLY (e.g. "good,reset") runs only the named workers, to isolate a problem.
bool Wanted(const char* name) {
  const char* only = std::getenv("GRADSERVE_SOAK_ONLY");
  if (only == nullptr || *only == '\0') return true;
  return absl::StrCat(",", only, ",").find(absl::StrCat(",", name, ",")) != std::string::npos;
}

// Still serving after everything else: a good call, checked.
void ExpectServesGoodCall(const std::string& address) {
  auto channel = NewChannel(address);
  auto stub = v1::GradientService::NewStub(channel);
  std::mt19937_64 rng(99);
  const Problem p = RandomProblem(rng);
  v1::BackwardRequest req;
  SetLogits(p, req.mutable_logits());
  SetClassIndices(p, req.mutable_targets());
  grpc::ClientContext ctx;
  v1::BackwardResponse resp;
  const grpc::Status s = stub->Backward(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(CheckClose("final grad_logits", TensorValues(resp.grad_logits()), p.grad, p), "");
}

TEST(SoakTest, ServerStaysUpCorrectAndFlatUnderMisbehavingClients) {
  const double seconds = SoakSeconds();
  auto server = ServerProcess::Start(
      {absl::StrCat("--max_message_mib=", kMaxMessageMib), "--max_inflight_mib=256"});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = (*server)->address();
  const int port = std::atoi(address.substr(address.rfind(':') + 1).c_str());
  const int pid = (*server)->pid();

  Clients clients(address, port);
  std::vector<std::thread> workers;
  if (Wanted("good")) {
    workers.emplace_back([&] { clients.GoodWorker(1); });
    workers.emplace_back([&] { clients.GoodWorker(2); });
  }
  if (Wanted("bad")) workers.emplace_back([&] { clients.BadWorker(3); });
  if (Wanted("interrupt")) {
    workers.emplace_back([&] { clients.InterruptWorker(4); });
    workers.emplace_back([&] { clients.InterruptWorker(5); });
  }
  if (Wanted("drop") || Wanted("reset")) {
    workers.emplace_back([&] { clients.DropWorker(6, Wanted("drop"), Wanted("reset")); });
  }

  const auto start = Clock::now();
  const double warm_up = seconds / 4;
  ProcSample after_warm_up, peak;
  bool warmed = false;
  double next_report = 0;
  std::printf("soak: %.0f s, server pid %d%s\n", seconds, pid, kSanitized ? " (sanitized)" : "");
  while (true) {
    const double t = std::chrono::duration<double>(Clock::now() - start).count();
    if (t >= seconds) break;
    const ProcSample s = SampleProc(pid);
    if (!(*server)->running()) {
      clients.Stop();
      for (auto& w : workers) w.join();
      FAIL() << "the server died at t = " << t << " s";
    }
    peak.rss_kib = std::max(peak.rss_kib, s.rss_kib);
    peak.fds = std::max(peak.fds, s.fds);
    if (!warmed && t >= warm_up) {
      after_warm_up = s;
      warmed = true;
    }
    if (t >= next_report) {
      std::printf("soak: t=%5.0f s  RSS %7.1f MiB  fds %4d  good calls %lld\n", t,
                  s.rss_kib / 1024.0, s.fds, static_cast<long long>(clients.tally().good_calls()));
      std::fflush(stdout);
      next_report += std::max(5.0, seconds / 12);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  clients.Stop();
  for (auto& w : workers) w.join();
  // Let the server notice closed connections and finish cancelled work.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_TRUE((*server)->running()) << "the server died";
  ExpectServesGoodCall(address);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const ProcSample final_sample = SampleProc(pid);

  std::printf("soak: calls by category and status:\n%s", clients.tally().Report().c_str());
  std::printf("soak: RSS after warm-up %.1f MiB, peak %.1f MiB, final %.1f MiB\n",
              after_warm_up.rss_kib / 1024.0, peak.rss_kib / 1024.0, final_sample.rss_kib / 1024.0);
  std::printf("soak: fds after warm-up %d, peak %d, final %d\n", after_warm_up.fds, peak.fds,
              final_sample.fds);
  std::fflush(stdout);

  EXPECT_EQ(clients.tally().failure_count(), 0);
  for (const std::string& f : clients.tally().failures()) ADD_FAILURE() << f;
  if (Wanted("good")) {
    EXPECT_GT(clients.tally().good_calls(), 0);
  }
  ASSERT_TRUE(warmed);
  ASSERT_GT(after_warm_up.rss_kib, 0) << "could not read /proc/" << pid << "/status";
  ASSERT_GT(after_warm_up.fds, 0) << "could not list /proc/" << pid << "/fd";
  const int64_t rss_limit = std::max<int64_t>(after_warm_up.rss_kib * 12 / 10,
                                              after_warm_up.rss_kib + 64 * 1024);
  if (!kSanitized) {
    EXPECT_LE(final_sample.rss_kib, rss_limit)
        << "RSS grew from " << after_warm_up.rss_kib << " KiB after warm-up to "
        << final_sample.rss_kib << " KiB";
  }
  EXPECT_LE(std::abs(final_sample.fds - after_warm_up.fds), 16)
      << "open fds went from " << after_warm_up.fds << " after warm-up to " << final_sample.fds;
  EXPECT_EQ((*server)->Terminate(), 0) << "the server did not drain and exit 0 on SIGTERM";
}

}  // namespace
}  // namespace gradserve::soak
