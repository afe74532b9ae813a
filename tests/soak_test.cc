// Bounded soak test: several client threads against the real gradserve-server mix good calls
// (checked against closed forms) with bad inputs, oversized messages, cancelled calls, deadlines
// that expire mid-request, streams abandoned half way and dropped connections (channels released
// with calls in flight, client processes killed mid-call, raw TCP connections reset mid-request),
// for
// $GRADSERVE_SOAK_SECONDS seconds (default 30; CI runs 120). The server must stay up and answer
// every good call correctly, and its memory (VmRSS) and open file descriptors must stay flat after
// warm-up:
//   final RSS <= max(1.2 × after-warm-up RSS, after-warm-up RSS + 64 MiB)
//   |final fds - after-warm-up fds| <= 16
// "after warm-up" is the server sampled once the first quarter of the run is over, with every
// worker running; "final" is sampled after the workers have stopped and closed their channels.
// In a sanitizer build RSS is reported, not checked: ASan's quarantine holds freed memory.
//
//   GRADSERVE_SOAK_SECONDS=900 build/tests/soak_test
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gradserve/v1/gradserve.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"
#include "tests/tensor_values.h"

extern char** environ;

namespace gradserve {
namespace {

using Clock = std::chrono::steady_clock;
using testing::ServerProcess;
using testing::TensorValues;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

constexpr int kMaxMessageMib = 4;

double SoakSeconds() {
  const char* s = std::getenv("GRADSERVE_SOAK_SECONDS");
  return s != nullptr && std::atof(s) > 0 ? std::atof(s) : 30.0;
}

struct ProcSample {
  int64_t rss_kib = -1;
  int fds = -1;
};

ProcSample Sample(int pid) {
  ProcSample s;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = std::atoll(line.c_str() + 6);
  }
  if (DIR* d = opendir(absl::StrCat("/proc/", pid, "/fd").c_str())) {
    s.fds = 0;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++s.fds;
    }
    closedir(d);
  }
  return s;
}

// What every worker reports: counts per (category, status), and the failures of good calls.
class Tally {
 public:
  void Count(const std::string& category, grpc::StatusCode code) {
    std::lock_guard<std::mutex> lock(mu_);
    ++counts_[absl::StrCat(category, " ", CodeName(code))];
  }
  void Fail(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    if (failures_.size() < 20) failures_.push_back(what);
    ++failure_count_;
  }
  // A call whose status must be one of `allowed`.
  void Expect(const std::string& category, const grpc::Status& s,
              std::initializer_list<grpc::StatusCode> allowed) {
    Count(category, s.error_code());
    if (std::find(allowed.begin(), allowed.end(), s.error_code()) == allowed.end()) {
      Fail(absl::StrCat(category, ": unexpected status ", CodeName(s.error_code()), " ",
                        s.error_message()));
    }
  }
  std::string Report() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& [k, v] : counts_) absl::StrAppendFormat(&out, "  %-44s %8d\n", k, v);
    return out;
  }
  int64_t failure_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return failure_count_;
  }
  std::vector<std::string> failures() {
    std::lock_guard<std::mutex> lock(mu_);
    return failures_;
  }
  int64_t good_calls() {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t n = 0;
    for (const auto& [k, v] : counts_) {
      if (k.rfind("good", 0) == 0) n += v;
    }
    return n;
  }

  static std::string CodeName(grpc::StatusCode c) {
    static const char* names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                  "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                  "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
                                  "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
    return c >= 0 && c <= 16 ? names[c] : absl::StrCat(static_cast<int>(c));
  }

 private:
  std::mutex mu_;
  std::map<std::string, int64_t> counts_;
  std::vector<std::string> failures_;
  int64_t failure_count_ = 0;
};

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  grpc::ChannelArguments args;
  // Each channel gets its own connection, so that dropping one drops a real connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxSendMessageSize(64 << 20);
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

std::chrono::system_clock::time_point In(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             std::chrono::duration<double>(seconds));
}

// A random small problem with class-index targets, and its closed-form loss and gradient
// (MEAN: loss = mean(logsumexp(z) - z_y), grad = (softmax(z) - onehot(y)) / batch).
struct Problem {
  int64_t n, c;
  std::vector<double> z;
  std::vector<int64_t> y;
  double loss;
  std::vector<double> grad;
  bool f32;
};

Problem RandomProblem(std::mt19937_64& rng) {
  Problem p;
  p.n = std::uniform_int_distribution<int64_t>(1, 8)(rng);
  p.c = std::uniform_int_distribution<int64_t>(1, 16)(rng);
  p.f32 = rng() & 1;
  std::uniform_real_distribution<double> u(-20, 20);
  p.z.resize(p.n * p.c);
  for (double& v : p.z) v = p.f32 ? static_cast<float>(u(rng)) : u(rng);
  p.y.resize(p.n);
  for (int64_t& v : p.y) v = std::uniform_int_distribution<int64_t>(0, p.c - 1)(rng);
  p.grad.resize(p.n * p.c);
  p.loss = 0;
  for (int64_t i = 0; i < p.n; ++i) {
    const double* z = &p.z[i * p.c];
    const double m = *std::max_element(z, z + p.c);
    double s = 0;
    for (int64_t j = 0; j < p.c; ++j) s += std::exp(z[j] - m);
    p.loss += (m + std::log(s) - z[p.y[i]]) / p.n;
    for (int64_t j = 0; j < p.c; ++j) {
      p.grad[i * p.c + j] = (std::exp(z[j] - m) / s - (j == p.y[i] ? 1.0 : 0.0)) / p.n;
    }
  }
  return p;
}

void SetLogits(const Problem& p, v1::Tensor* t) {
  t->add_shape(p.n);
  t->add_shape(p.c);
  if (p.f32) {
    t->set_dtype(v1::DATA_TYPE_FLOAT32);
    std::string raw(p.z.size() * 4, '\0');
    for (size_t k = 0; k < p.z.size(); ++k) {
      const float v = static_cast<float>(p.z[k]);
      std::memcpy(&raw[k * 4], &v, 4);
    }
    t->set_raw(raw);
  } else {
    for (double v : p.z) t->add_values(v);
  }
}

// Empty when `got` matches the closed form within the contract's float32 bound (or 1e-12 in float64).
std::string CheckClose(const char* what, const std::vector<double>& got,
                       const std::vector<double>& want, const Problem& p) {
  if (got.size() != want.size()) {
    return absl::StrFormat("%s has %d values, expected %d", what, got.size(), want.size());
  }
  double scale = 1;
  for (double v : want) scale = std::max(scale, std::abs(v));
  const double tol =
      (p.f32 ? std::max(1e-5, 0.1 * static_cast<double>(p.c) / 16777216.0) : 1e-12) * scale;
  for (size_t k = 0; k < got.size(); ++k) {
    if (!(std::abs(got[k] - want[k]) <= tol)) {
      return absl::StrFormat("%s[%d] is %.17g, expected %.17g (n %d, c %d, %s)", what, k, got[k],
                             want[k], p.n, p.c, p.f32 ? "float32" : "float64");
    }
  }
  return "";
}

class Soak {
 public:
  Soak(std::string address, int port) : address_(std::move(address)), port_(port) {}

  // Good calls: Forward, Backward (both methods), VerifyGradient's motivating case, and a
  // BackwardStream of several requests; every answer checked.
  void GoodWorker(uint64_t seed) {
    std::mt19937_64 rng(seed);
    auto channel = NewChannel(address_);
    auto stub = v1::GradientService::NewStub(channel);
    while (!stop_.load()) {
      const int kind = static_cast<int>(rng() % 4);
      const Problem p = RandomProblem(rng);
      grpc::ClientContext ctx;
      ctx.set_deadline(In(30));
      if (kind == 0) {
        v1::ForwardRequest req;
        SetLogits(p, req.mutable_logits());
        for (int64_t v : p.y) req.mutable_targets()->mutable_class_indices()->add_values(v);
        v1::ForwardResponse resp;
        const grpc::Status s = stub->Forward(&ctx, req, &resp);
        tally_.Expect("good Forward", s, {grpc::StatusCode::OK});
        if (s.ok()) Check(CheckClose("Forward loss", TensorValues(resp.loss()), {p.loss}, p));
      } else if (kind == 1) {
        v1::BackwardRequest req;
        SetLogits(p, req.mutable_logits());
        for (int64_t v : p.y) req.mutable_targets()->mutable_class_indices()->add_values(v);
        req.set_method(rng() & 1 ? v1::METHOD_CHAIN_RULE : v1::METHOD_FUSED);
        v1::BackwardResponse resp;
        const grpc::Status s = stub->Backward(&ctx, req, &resp);
        tally_.Expect("good Backward", s, {grpc::StatusCode::OK});
        if (s.ok()) {
          Check(CheckClose("Backward grad_logits", TensorValues(resp.grad_logits()), p.grad, p));
          Check(CheckClose("Backward loss", TensorValues(resp.loss()), {p.loss}, p));
        }
      } else if (kind == 2) {
        // The motivating case: J evaluated at the logits.
        v1::VerifyGradientRequest req;
        req.mutable_logits()->add_shape(2);
        req.mutable_logits()->add_values(1.75);
        req.mutable_logits()->add_values(1.75);
        auto* t = req.mutable_targets()->mutable_probabilities();
        t->add_shape(2);
        t->add_values(0);
        t->add_values(1);
        req.mutable_candidate_grad()->add_shape(2);
        req.mutable_candidate_grad()->add_values(6.125);
        req.mutable_candidate_grad()->add_values(2.625);
        v1::VerifyGradientResponse resp;
        const grpc::Status s = stub->VerifyGradient(&ctx, req, &resp);
        tally_.Expect("good VerifyGradient", s, {grpc::StatusCode::OK});
        if (s.ok()) {
          bool jacobian_at_logits = false;
          for (const auto& f : resp.findings()) {
            jacobian_at_logits |= f.code() == v1::FINDING_CODE_JACOBIAN_AT_LOGITS;
          }
          const std::vector<double> g = TensorValues(resp.analytic_grad());
          if (resp.candidate_ok() || !jacobian_at_logits || g.size() != 2 || g[0] != 0.5 ||
              g[1] != -0.5) {
            Check("VerifyGradient: the motivating case lost its JACOBIAN_AT_LOGITS finding or "
                  "its analytic gradient (0.5, -0.5): " + resp.ShortDebugString());
          }
        }
      } else {
        // A stream of several good requests, one response each, in order.
        auto stream = stub->BackwardStream(&ctx);
        std::vector<Problem> sent;
        const int k = 1 + static_cast<int>(rng() % 4);
        bool ok = true;
        for (int m = 0; m < k && ok; ++m) {
          sent.push_back(RandomProblem(rng));
          v1::BackwardRequest req;
          SetLogits(sent.back(), req.mutable_logits());
          for (int64_t v : sent.back().y) req.mutable_targets()->mutable_class_indices()->add_values(v);
          ok = stream->Write(req);
          v1::BackwardResponse resp;
          ok = ok && stream->Read(&resp);
          if (ok) Check(CheckClose("BackwardStream grad_logits", TensorValues(resp.grad_logits()), sent.back().grad, sent.back()));
        }
        stream->WritesDone();
        const grpc::Status s = stream->Finish();
        tally_.Expect("good BackwardStream", s, {grpc::StatusCode::OK});
        if (s.ok() && !ok) Check("BackwardStream: a response was missing");
      }
    }
  }

  // Bad inputs (INVALID_ARGUMENT) and oversized messages (RESOURCE_EXHAUSTED).
  void BadWorker(uint64_t seed) {
    std::mt19937_64 rng(seed);
    auto channel = NewChannel(address_);
    auto stub = v1::GradientService::NewStub(channel);
    // Over --max_message_mib=4 but under the transport's 4x allowance: the server's own check.
    v1::BackwardRequest oversized;
    oversized.mutable_logits()->add_shape(5 << 18);
    oversized.mutable_logits()->set_dtype(v1::DATA_TYPE_FLOAT32);
    oversized.mutable_logits()->set_raw(std::string(5 << 20, '\0'));
    oversized.mutable_targets()->mutable_class_indices()->add_values(0);
    // Over the transport's limit (4 x 4 MiB): gRPC refuses it before the handler.
    v1::ForwardRequest huge;
    huge.mutable_logits()->add_shape(17 << 18);
    huge.mutable_logits()->set_dtype(v1::DATA_TYPE_FLOAT32);
    huge.mutable_logits()->set_raw(std::string(17 << 20, '\0'));
    while (!stop_.load()) {
      grpc::ClientContext ctx;
      ctx.set_deadline(In(30));
      const int kind = static_cast<int>(rng() % 8);
      if (kind == 0) {
        v1::BackwardResponse resp;
        tally_.Expect("oversized (server limit)", stub->Backward(&ctx, oversized, &resp),
                      {grpc::StatusCode::RESOURCE_EXHAUSTED});
      } else if (kind == 1) {
        v1::ForwardResponse resp;
        tally_.Expect("oversized (transport limit)", stub->Forward(&ctx, huge, &resp),
                      {grpc::StatusCode::RESOURCE_EXHAUSTED});
      } else {
        Problem p = RandomProblem(rng);
        v1::BackwardRequest req;
        SetLogits(p, req.mutable_logits());
        for (int64_t v : p.y) req.mutable_targets()->mutable_class_indices()->add_values(v);
        switch (kind) {
          case 2: req.mutable_logits()->clear_values(); req.mutable_logits()->clear_raw();
                  req.mutable_logits()->add_values(std::nan("")); break;   // wrong count
          case 3: req.mutable_targets()->mutable_class_indices()->set_values(0, p.c); break;
          case 4: req.mutable_options()->set_label_smoothing(2); break;
          case 5: req.mutable_options()->add_class_weights(-1); break;
          case 6: req.mutable_logits()->set_dtype(static_cast<v1::DataType>(7)); break;
          default: req.mutable_grad_probabilities()->add_shape(1); break;  // both kinds
        }
        v1::BackwardResponse resp;
        tally_.Expect("bad input", stub->Backward(&ctx, req, &resp),
                      {grpc::StatusCode::INVALID_ARGUMENT});
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  // Large requests, cancelled (TryCancel) or given a deadline, at random moments mid-flight;
  // and streams abandoned half way.
  void InterruptWorker(uint64_t seed) {
    std::mt19937_64 rng(seed);
    auto channel = NewChannel(address_);
    auto stub = v1::GradientService::NewStub(channel);
    const v1::BackwardRequest big = BigRequest();
    while (!stop_.load()) {
      const int kind = static_cast<int>(rng() % 3);
      const double delay_ms = std::uniform_real_distribution<double>(0, 8)(rng);
      if (kind == 0) {  // TryCancel mid-flight
        grpc::ClientContext ctx;
        v1::BackwardResponse resp;
        std::mutex mu;
        std::condition_variable cv;
        bool done = false;
        grpc::Status status;
        stub->async()->Backward(&ctx, &big, &resp, [&](grpc::Status s) {
          std::lock_guard<std::mutex> lock(mu);
          status = std::move(s);
          done = true;
          cv.notify_one();
        });
        std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(delay_ms));
        ctx.TryCancel();
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return done; });
        tally_.Expect("cancelled mid-flight", status,
                      {grpc::StatusCode::OK, grpc::StatusCode::CANCELLED,
                       grpc::StatusCode::RESOURCE_EXHAUSTED});
      } else if (kind == 1) {  // a deadline that expires mid-request
        grpc::ClientContext ctx;
        ctx.set_deadline(In(delay_ms / 1000));
        v1::BackwardResponse resp;
        tally_.Expect("deadline mid-request", stub->Backward(&ctx, big, &resp),
                      {grpc::StatusCode::OK, grpc::StatusCode::DEADLINE_EXCEEDED,
                       grpc::StatusCode::RESOURCE_EXHAUSTED});
      } else {  // a stream abandoned half way: requests written, responses not all read
        grpc::ClientContext ctx;
        auto stream = stub->BackwardStream(&ctx);
        const int writes = 1 + static_cast<int>(rng() % 4);
        for (int m = 0; m < writes; ++m) {
          if (!stream->Write(big)) break;
          if (rng() & 1) {
            v1::BackwardResponse resp;
            if (!stream->Read(&resp)) break;
          }
        }
        std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(delay_ms));
        ctx.TryCancel();
        tally_.Expect("stream abandoned", stream->Finish(),
                      {grpc::StatusCode::CANCELLED, grpc::StatusCode::OK,
                       grpc::StatusCode::RESOURCE_EXHAUSTED});
      }
    }
  }

  // Connections dropped: a channel destroyed with calls in flight; a client process killed
  // (SIGKILL) with calls in flight, so that the kernel closes its connections; and raw TCP
  // connections reset half way through the HTTP/2 preface, headers or a request body.
  void DropWorker(uint64_t seed, bool drops, bool resets) {
    std::mt19937_64 rng(seed);
    const v1::BackwardRequest big = BigRequest();
    while (!stop_.load()) {
      const int kind = drops && resets ? static_cast<int>(rng() % 3) : drops ? static_cast<int>(rng() % 2) : 2;
      if (kind == 0) {
        DropChannelInFlight(rng, big);
      } else if (kind == 1) {
        KillClientInFlight(rng);
      } else {
        ResetMidRequest(rng, big);
        tally_.Count("raw TCP reset mid-request", grpc::StatusCode::OK);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  void Check(const std::string& failure) {
    if (!failure.empty()) tally_.Fail(failure);
  }

  void Stop() { stop_.store(true); }
  Tally& tally() { return tally_; }

  // [256, 3000] float32: 3 MB, under the 4 MiB limit; a few ms of transfer and compute.
  static v1::BackwardRequest BigRequest() {
    v1::BackwardRequest req;
    const int64_t n = 256, c = 3000;
    req.mutable_logits()->add_shape(n);
    req.mutable_logits()->add_shape(c);
    req.mutable_logits()->set_dtype(v1::DATA_TYPE_FLOAT32);
    std::string raw(n * c * 4, '\0');
    for (int64_t k = 0; k < n * c; ++k) {
      const float v = static_cast<float>((k * 7919) % 1000) / 100.0f;
      std::memcpy(&raw[k * 4], &v, 4);
    }
    req.mutable_logits()->set_raw(raw);
    for (int64_t i = 0; i < n; ++i) req.mutable_targets()->mutable_class_indices()->add_values(i % c);
    return req;
  }

 private:
  // The channel (its own connection) and stub are released while k big calls are in flight; the
  // calls keep the connection until they end, then it closes. Not cancelled too: gRPC 1.51's
  // client, when a call is cancelled while its request is still being sent, keeps that
  // connection open in the client process after the channel is gone (the server then counts one
  // more fd per such channel, held by the client). Cancellation is covered by InterruptWorker
  // and by killed client processes instead.
  void DropChannelInFlight(std::mt19937_64& rng, const v1::BackwardRequest& big) {
    struct Call {
      grpc::ClientContext ctx;
      v1::BackwardResponse resp;
      grpc::Status status;
    };
    const int k = 1 + static_cast<int>(rng() % 4);
    std::vector<std::unique_ptr<Call>> calls;
    std::mutex mu;
    std::condition_variable cv;
    int done = 0;
    {
      auto channel = NewChannel(address_);
      auto stub = v1::GradientService::NewStub(channel);
      for (int m = 0; m < k; ++m) {
        calls.push_back(std::make_unique<Call>());
        Call* call = calls.back().get();
        call->ctx.set_deadline(In(30));
        stub->async()->Backward(&call->ctx, &big, &call->resp, [&, call](grpc::Status s) {
          std::lock_guard<std::mutex> lock(mu);
          call->status = std::move(s);
          ++done;
          cv.notify_one();
        });
      }
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 4000));
    }
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done == k; });
    for (auto& call : calls) {
      tally_.Expect("channel dropped in flight", call->status,
                    {grpc::StatusCode::OK, grpc::StatusCode::RESOURCE_EXHAUSTED});
    }
  }

  // Runs this binary as a client process (DropClientHelper below) that starts big calls, and
  // kills it with SIGKILL a few milliseconds after they are under way.
  void KillClientInFlight(std::mt19937_64& rng) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    const std::string self = "/proc/self/exe";
    std::string filter = "--gtest_filter=SoakTest.DropClientHelper";
    char* argv[] = {const_cast<char*>(self.c_str()), filter.data(), nullptr};
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    env_strings.push_back(absl::StrCat("GRADSERVE_SOAK_DROP_CLIENT=", address_));
    std::vector<char*> envp;
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, self.c_str(), &actions, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    if (rc != 0) {
      close(out[0]);
      tally_.Fail("could not spawn the drop client");
      return;
    }
    // Wait (up to 10 s) for "calls started", then kill mid-flight.
    pollfd p{out[0], POLLIN, 0};
    char byte = 0;
    const bool started = poll(&p, 1, 10000) > 0 && read(out[0], &byte, 1) == 1;
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 5000));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(out[0]);
    tally_.Count(started ? "client killed in flight" : "client killed before its calls",
                 grpc::StatusCode::OK);
  }

  static std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
    std::string f;
    f += static_cast<char>(payload.size() >> 16);
    f += static_cast<char>(payload.size() >> 8);
    f += static_cast<char>(payload.size());
    f += static_cast<char>(type);
    f += static_cast<char>(flags);
    for (int shift = 24; shift >= 0; shift -= 8) f += static_cast<char>(stream >> shift);
    return f + payload;
  }

  // Opens a TCP connection, sends a random prefix of a real HTTP/2 gRPC Backward call (preface,
  // SETTINGS, HEADERS, part of the body) and resets the connection (SO_LINGER 0 → RST).
  void ResetMidRequest(std::mt19937_64& rng, const v1::BackwardRequest& big) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      std::string out = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + Frame(4, 0, 0, "");
      std::string hpack;
      auto literal = [&](const std::string& name, const std::string& value) {
        hpack += '\0';  // literal header field without indexing, new name
        hpack += static_cast<char>(name.size());
        hpack += name;
        hpack += static_cast<char>(value.size());
        hpack += value;
      };
      literal(":method", "POST");
      literal(":scheme", "http");
      literal(":path", "/gradserve.v1.GradientService/Backward");
      literal(":authority", "localhost");
      literal("content-type", "application/grpc");
      literal("te", "trailers");
      out += Frame(1, 0x4, 1, hpack);  // END_HEADERS
      const std::string message = big.SerializeAsString();
      // Part of the message, within the initial 64 KiB flow-control window.
      const size_t part = rng() % 60000;
      std::string body;
      body += '\0';
      for (int shift = 24; shift >= 0; shift -= 8) body += static_cast<char>(message.size() >> shift);
      body += message.substr(0, part);
      for (size_t at = 0; at < body.size(); at += 16384) {
        out += Frame(0, 0, 1, body.substr(at, 16384));
      }
      const size_t cut = rng() % (out.size() + 1);
      size_t sent = 0;
      while (sent < cut) {
        const ssize_t w = send(fd, out.data() + sent, cut - sent, MSG_NOSIGNAL);
        if (w <= 0) break;
        sent += static_cast<size_t>(w);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    }
    linger hard{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
    close(fd);
  }

  const std::string address_;
  const int port_;
  std::atomic<bool> stop_{false};
  Tally tally_;
};

// Not a test of its own: the client process that Soak::KillClientInFlight starts and kills.
// Without $GRADSERVE_SOAK_DROP_CLIENT it returns at once.
TEST(SoakTest, DropClientHelper) {
  const char* address = std::getenv("GRADSERVE_SOAK_DROP_CLIENT");
  if (address == nullptr) return;
  auto channel = NewChannel(address);
  auto stub = v1::GradientService::NewStub(channel);
  const v1::BackwardRequest big = Soak::BigRequest();
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<v1::BackwardResponse>> responses;
  for (int m = 0; m < 3; ++m) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    responses.push_back(std::make_unique<v1::BackwardResponse>());
    stub->async()->Backward(contexts.back().get(), &big, responses.back().get(), [](grpc::Status) {});
  }
  const char started = 's';
  if (write(STDOUT_FILENO, &started, 1) != 1) _exit(1);
  std::this_thread::sleep_for(std::chrono::seconds(60));  // killed long before
  _exit(0);
}

TEST(SoakTest, ServerStaysUpCorrectAndFlatUnderMisbehavingClients) {
  const double seconds = SoakSeconds();
  auto server = ServerProcess::Start(
      {absl::StrCat("--max_message_mib=", kMaxMessageMib), "--max_inflight_mib=256"});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = (*server)->address();
  const int port = std::atoi(address.substr(address.rfind(':') + 1).c_str());
  const int pid = (*server)->pid();

  Soak soak(address, port);
  // $GRADSERVE_SOAK_ONLY (e.g. "good,reset") runs only the named workers, to isolate a problem.
  const char* only_env = std::getenv("GRADSERVE_SOAK_ONLY");
  const std::string only = only_env != nullptr ? absl::StrCat(",", only_env, ",") : "";
  auto wanted = [&](const char* name) {
    return only.empty() || only.find(absl::StrCat(",", name, ",")) != std::string::npos;
  };
  std::vector<std::thread> workers;
  if (wanted("good")) {
    workers.emplace_back([&] { soak.GoodWorker(1); });
    workers.emplace_back([&] { soak.GoodWorker(2); });
  }
  if (wanted("bad")) workers.emplace_back([&] { soak.BadWorker(3); });
  if (wanted("interrupt")) {
    workers.emplace_back([&] { soak.InterruptWorker(4); });
    workers.emplace_back([&] { soak.InterruptWorker(5); });
  }
  if (wanted("drop") || wanted("reset")) {
    workers.emplace_back([&] { soak.DropWorker(6, wanted("drop"), wanted("reset")); });
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
    const ProcSample s = Sample(pid);
    ASSERT_TRUE((*server)->running()) << "the server died at t = " << t << " s";
    peak.rss_kib = std::max(peak.rss_kib, s.rss_kib);
    peak.fds = std::max(peak.fds, s.fds);
    if (!warmed && t >= warm_up) {
      after_warm_up = s;
      warmed = true;
    }
    if (t >= next_report) {
      std::printf("soak: t=%5.0f s  RSS %7.1f MiB  fds %4d  good calls %lld\n", t,
                  s.rss_kib / 1024.0, s.fds, static_cast<long long>(soak.tally().good_calls()));
      std::fflush(stdout);
      next_report += std::max(5.0, seconds / 12);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  soak.Stop();
  for (auto& w : workers) w.join();
  // Let the server notice closed connections and finish cancelled work.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_TRUE((*server)->running()) << "the server died";

  // Still serving: a good call and a big one (the in-flight accounting came back to zero).
  {
    auto channel = NewChannel(address);
    auto stub = v1::GradientService::NewStub(channel);
    std::mt19937_64 rng(99);
    const Problem p = RandomProblem(rng);
    v1::BackwardRequest req;
    SetLogits(p, req.mutable_logits());
    for (int64_t v : p.y) req.mutable_targets()->mutable_class_indices()->add_values(v);
    grpc::ClientContext ctx;
    v1::BackwardResponse resp;
    const grpc::Status s = stub->Backward(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(CheckClose("final grad_logits", TensorValues(resp.grad_logits()), p.grad, p), "");
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const ProcSample final_sample = Sample(pid);

  std::printf("soak: calls by category and status:\n%s", soak.tally().Report().c_str());
  std::printf("soak: RSS after warm-up %.1f MiB, peak %.1f MiB, final %.1f MiB\n",
              after_warm_up.rss_kib / 1024.0, peak.rss_kib / 1024.0, final_sample.rss_kib / 1024.0);
  std::printf("soak: fds after warm-up %d, peak %d, final %d\n", after_warm_up.fds, peak.fds,
              final_sample.fds);
  std::fflush(stdout);

  EXPECT_EQ(soak.tally().failure_count(), 0);
  for (const std::string& f : soak.tally().failures()) ADD_FAILURE() << f;
  if (wanted("good")) {
    EXPECT_GT(soak.tally().good_calls(), 0);
  }
  ASSERT_TRUE(warmed);
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
}  // namespace gradserve
