// The load generator against an in-process server that counts how many calls it holds at once:
// exactly --concurrency, every request answered, errors counted, and the report's arithmetic.
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "client/bench.h"
#include "client/bench_payload.h"
#include "client/bench_report.h"
#include "gmock/gmock.h"
#include "gradserve/v1/gradserve.grpc.pb.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "tests/client_test_util.h"

namespace gradserve::client {
namespace {

using ::testing::Each;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Holds each call for a few milliseconds so that the callers' calls overlap, and records the
// most it ever held at once.
class CountingService final : public gradserve::v1::GradientService::Service {
 public:
  grpc::Status Backward(grpc::ServerContext* context, const gradserve::v1::BackwardRequest* request,
                        gradserve::v1::BackwardResponse* response) override {
    if (fail_) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no thanks");
    const auto auth = context->client_metadata().find("authorization");
    if (auth == context->client_metadata().end() || auth->second != "Bearer s3cret") {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no token");
    }
    Hold();
    if (request->logits().shape_size() != 2) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "shape");
    *response->mutable_grad_logits() = request->logits();
    return grpc::Status::OK;
  }

  grpc::Status BackwardStream(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<gradserve::v1::BackwardResponse, gradserve::v1::BackwardRequest>* stream) override {
    gradserve::v1::BackwardRequest request;
    while (stream->Read(&request)) {
      Hold();
      stream->Write(gradserve::v1::BackwardResponse());
    }
    return grpc::Status::OK;
  }

  int max_held() const { return max_held_.load(); }
  int calls() const { return calls_.load(); }
  void set_fail(bool fail) { fail_ = fail; }

 private:
  void Hold() {
    const int now = ++held_;
    int seen = max_held_.load();
    while (now > seen && !max_held_.compare_exchange_weak(seen, now)) {}
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    --held_;
    ++calls_;
  }

  std::atomic<int> held_{0}, max_held_{0}, calls_{0};
  std::atomic<bool> fail_{false};
};

class ClientBenchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    conn_.target = "127.0.0.1:" + std::to_string(port);
    conn_.token = "s3cret";
    options_.batch = 4;
    options_.classes = 10;
    options_.concurrency = 4;
    options_.requests = 60;
  }
  void TearDown() override { server_->Shutdown(); }

  CountingService service_;
  std::unique_ptr<grpc::Server> server_;
  ConnectionOptions conn_;
  BenchOptions options_;
};

TEST_F(ClientBenchTest, UnaryKeepsExactlyConcurrencyCallsInFlight) {
  auto result = RunBench(conn_, options_, nullptr);
  CLIENT_ASSERT_OK(result);
  EXPECT_EQ(result->errors, 0) << result->first_error;
  EXPECT_EQ(result->requests, 60);
  EXPECT_EQ(service_.calls(), 60);
  EXPECT_EQ(service_.max_held(), 4);
  ASSERT_EQ(result->latencies_ms.size(), 60u);
  EXPECT_THAT(result->latencies_ms, Each(Ge(3.0)));
  EXPECT_TRUE(std::is_sorted(result->latencies_ms.begin(), result->latencies_ms.end()));
  EXPECT_EQ(result->logits_bytes_per_request, 4 * 10 * 8);
}

TEST_F(ClientBenchTest, StreamKeepsExactlyConcurrencyMessagesInFlight) {
  options_.rpc = BenchRpc::kStream;
  options_.connections = 2;
  auto result = RunBench(conn_, options_, nullptr);
  CLIENT_ASSERT_OK(result);
  EXPECT_EQ(result->errors, 0) << result->first_error;
  EXPECT_EQ(result->requests, 60);
  EXPECT_EQ(service_.calls(), 60);
  EXPECT_EQ(service_.max_held(), 4);
}

TEST_F(ClientBenchTest, DurationRunStopsInTime) {
  options_.requests = 0;
  options_.duration = absl::Milliseconds(300);
  int progress_calls = 0;
  auto result = RunBench(conn_, options_, [&](int64_t, int64_t, double) { ++progress_calls; });
  CLIENT_ASSERT_OK(result);
  EXPECT_GT(result->requests, 20);
  EXPECT_GE(result->seconds, 0.3);
  EXPECT_LT(result->seconds, 2.0);
}

TEST_F(ClientBenchTest, FailedCallsAreCountedWithTheFirstError) {
  service_.set_fail(true);
  options_.requests = 10;
  auto result = RunBench(conn_, options_, nullptr);
  CLIENT_ASSERT_OK(result);
  EXPECT_EQ(result->requests, 10);
  EXPECT_EQ(result->errors, 10);
  EXPECT_EQ(result->first_error, "INVALID_ARGUMENT: no thanks");
  EXPECT_TRUE(result->latencies_ms.empty());
}

TEST_F(ClientBenchTest, HealthNeedsNoLogits) {
  options_.rpc = BenchRpc::kHealth;
  auto result = RunBench(conn_, options_, nullptr);
  CLIENT_ASSERT_OK(result);
  EXPECT_EQ(result->errors, 0) << result->first_error;
  EXPECT_EQ(result->logits_bytes_per_request, 0);
}

TEST(ClientBenchUnreachableTest, IsUnavailableWithoutMeasuring) {
  ConnectionOptions conn;
  conn.target = "127.0.0.1:1";
  conn.timeout = absl::Milliseconds(300);
  auto result = RunBench(conn, BenchOptions(), nullptr);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(result.status().message(), "cannot connect to 127.0.0.1:1");
}

TEST(ClientBenchReportTest, NearestRankPercentiles) {
  std::vector<double> sorted;
  for (int i = 1; i <= 100; ++i) sorted.push_back(i);
  EXPECT_EQ(Percentile(sorted, 50), 50);
  EXPECT_EQ(Percentile(sorted, 90), 90);
  EXPECT_EQ(Percentile(sorted, 99), 99);
  EXPECT_EQ(Percentile(sorted, 100), 100);
  EXPECT_EQ(Percentile({7}, 50), 7);
  EXPECT_EQ(Percentile({}, 50), 0);
}

TEST(ClientBenchReportTest, JsonHasEveryFieldScriptsRead) {
  BenchResult r;
  r.requests = 200;
  r.errors = 0;
  r.seconds = 0.5;
  r.latencies_ms = {1, 2, 3, 4};
  r.logits_bytes_per_request = 320;
  BenchOptions o;
  o.batch = 4;
  o.classes = 10;
  const std::string json = BenchJson(Summarize(r), o, "127.0.0.1:50051");
  EXPECT_THAT(json, StartsWith(R"({"rpc": "backward", "target": "127.0.0.1:50051", "shape": [4, 10])"));
  EXPECT_THAT(json, HasSubstr(R"("requests": 200, "errors": 0, "seconds": 0.5, "qps": 400)"));
  EXPECT_THAT(json, HasSubstr(R"("latency_ms": {"p50": 2, "p90": 4, "p99": 4, "max": 4, "mean": 2.5})"));
  EXPECT_THAT(json, HasSubstr(R"("logits_bytes_per_s": 128000})"));
}

TEST(ClientBenchPayloadTest, HalfDtypesSendTwoBytesPerLogit) {
  BenchOptions o;
  o.batch = 3;
  o.classes = 7;
  for (auto dtype : {gradserve::v1::DATA_TYPE_FLOAT16, gradserve::v1::DATA_TYPE_BFLOAT16}) {
    o.format = {dtype, Encoding::kRaw};
    auto p = MakeBenchPayload(o);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->logits_bytes, 3 * 7 * 2);
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(p->request.Dump(&slices).ok());
    std::string bytes;
    for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    gradserve::v1::BackwardRequest request;
    ASSERT_TRUE(request.ParseFromString(bytes));
    EXPECT_EQ(request.logits().dtype(), dtype);
    EXPECT_EQ(request.logits().raw().size(), 3u * 7 * 2);
  }
  o.format = {gradserve::v1::DATA_TYPE_UNSPECIFIED, Encoding::kRaw};  // no --dtype: float64
  auto p = MakeBenchPayload(o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->logits_bytes, 3 * 7 * 8);
}

}  // namespace
}  // namespace gradserve::client
