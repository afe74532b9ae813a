// /metrics of the real gradserve-server: counter and histogram deltas after a known mix of good,
// bad, refused and unauthenticated calls over gRPC and HTTP, and `promtool check metrics`.
#include <cstdio>
#include <fstream>
#include <string>

#include "gradserve/v1/gradserve.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/http_test_util.h"

namespace gradserve {
namespace {

using testing::HttpServerProcess;

v1::BackwardRequest Backward(int rows, int classes) {
  v1::BackwardRequest req;
  req.mutable_logits()->add_shape(rows);
  req.mutable_logits()->add_shape(classes);
  for (int k = 0; k < rows * classes; ++k) req.mutable_logits()->add_values(0.01 * k);
  for (int r = 0; r < rows; ++r) req.mutable_targets()->mutable_class_indices()->add_values(r % classes);
  return req;
}

class HttpMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string token_file = ::testing::TempDir() + "/http_metrics_token";
    std::ofstream(token_file) << "tok\n";
    auto s = testing::StartWithHttp({"--token_file=" + token_file, "--max_message_mib=1"});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    stub_ = v1::GradientService::NewStub(
        grpc::CreateChannel(server_.process->address(), grpc::InsecureChannelCredentials()));
  }
  std::string Scrape() {
    auto r = server_.Client()->Get("/metrics");
    EXPECT_TRUE(r && r->status == 200);
    return r ? r->body : "";
  }
  grpc::StatusCode CallGrpc(const v1::BackwardRequest& req, const char* token) {
    grpc::ClientContext ctx;
    if (token != nullptr) ctx.AddMetadata("authorization", std::string("Bearer ") + token);
    v1::BackwardResponse resp;
    return stub_->Backward(&ctx, req, &resp).error_code();
  }
  int CallHttp(const std::string& body, const char* token) {
    httplib::Headers headers;
    if (token != nullptr) headers.emplace("Authorization", std::string("Bearer ") + token);
    auto r = server_.Client()->Post("/v1/backward", headers, body, "application/json");
    return r ? r->status : -1;
  }
  HttpServerProcess server_;
  std::unique_ptr<v1::GradientService::Stub> stub_;
};

TEST_F(HttpMetricsTest, CountersAndHistogramsMoveByTheCallsMade) {
  const auto before = testing::ParseMetrics(Scrape());
  // gRPC: 3 good calls of 4 rows, 1 bad, 1 unauthenticated, 1 over --max_message_mib.
  for (int k = 0; k < 3; ++k) ASSERT_EQ(CallGrpc(Backward(4, 5), "tok"), grpc::StatusCode::OK);
  v1::BackwardRequest bad = Backward(4, 5);
  bad.mutable_logits()->mutable_values()->RemoveLast();
  ASSERT_EQ(CallGrpc(bad, "tok"), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(CallGrpc(Backward(4, 5), nullptr), grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_EQ(CallGrpc(Backward(300, 500), "tok"), grpc::StatusCode::RESOURCE_EXHAUSTED);  // 1.2 MB
  // HTTP: 2 good calls of 2 rows, 1 bad, 1 unauthenticated, 1 oversized body.
  const std::string good = R"({"logits": {"shape": [2, 3], "values": [1, 2, 3, 4, 5, 6]},
                              "targets": {"class_indices": {"values": [0, 2]}}})";
  for (int k = 0; k < 2; ++k) ASSERT_EQ(CallHttp(good, "tok"), 200);
  ASSERT_EQ(CallHttp(R"({"logits": {"shape": [2, 3], "values": [1]}})", "tok"), 400);
  ASSERT_EQ(CallHttp(good, "nope"), 401);
  ASSERT_EQ(testing::RawExchange(server_.http_port, testing::PostHead("/v1/backward", 1100000, "tok"))
                .rfind("HTTP/1.1 413 ", 0),
            0u);
  const auto after = testing::ParseMetrics(Scrape());

  auto delta = [&](const std::string& series) {
    const auto b = before.find(series), a = after.find(series);
    return (a == after.end() ? 0.0 : a->second) - (b == before.end() ? 0.0 : b->second);
  };
  const std::string grpc = R"(rpc="Backward",protocol="grpc")", http = R"(rpc="Backward",protocol="http")";
  auto requests = [&](const std::string& labels, const char* code) {
    return delta("gradserve_requests_total{" + labels + ",code=\"" + code + "\"}");
  };
  EXPECT_EQ(requests(grpc, "OK"), 3);
  EXPECT_EQ(requests(grpc, "INVALID_ARGUMENT"), 1);
  EXPECT_EQ(requests(grpc, "UNAUTHENTICATED"), 1);
  EXPECT_EQ(requests(grpc, "RESOURCE_EXHAUSTED"), 1);
  EXPECT_EQ(requests(http, "OK"), 2);
  EXPECT_EQ(requests(http, "INVALID_ARGUMENT"), 1);
  EXPECT_EQ(requests(http, "UNAUTHENTICATED"), 1);
  EXPECT_EQ(requests(http, "RESOURCE_EXHAUSTED"), 1);
  EXPECT_EQ(delta("gradserve_admission_rejections_total{reason=\"message_size\"}"), 2);
  EXPECT_EQ(delta("gradserve_admission_rejections_total{reason=\"inflight\"}"), 0);
  EXPECT_EQ(delta("gradserve_rows_total{" + grpc + "}"), 12);
  EXPECT_EQ(delta("gradserve_rows_total{" + http + "}"), 4);
  EXPECT_EQ(delta("gradserve_request_duration_seconds_count{" + grpc + "}"), 6);
  EXPECT_EQ(delta("gradserve_request_duration_seconds_count{" + http + "}"), 5);
  EXPECT_EQ(delta("gradserve_request_duration_seconds_bucket{" + http + ",le=\"+Inf\"}"), 5);
  EXPECT_EQ(delta("gradserve_request_duration_seconds_bucket{" + grpc + ",le=\"30\"}"), 6);
  EXPECT_GT(delta("gradserve_request_duration_seconds_sum{" + grpc + "}"), 0);
  // Each good gRPC call's response holds 20 doubles of gradient plus the loss.
  EXPECT_GE(delta("gradserve_response_bytes_total{" + grpc + "}"), 3 * 20 * 8);
  EXPECT_GE(delta("gradserve_request_bytes_total{" + http + "}"), 2 * good.size());
  EXPECT_EQ(after.at("gradserve_inflight_requests"), 0);
  EXPECT_EQ(after.at("gradserve_inflight_bytes"), 0);
  EXPECT_GT(after.at("process_resident_memory_bytes"), 1e6);
  EXPECT_GT(after.at("process_open_fds"), 3);
  EXPECT_GT(after.at("process_start_time_seconds"), 1.6e9);
  EXPECT_EQ(after.count("gradserve_requests_total{rpc=\"BackwardStream\",protocol=\"http\",code=\"OK\"}"), 0u);

  // promtool lints names, types, HELP and histogram consistency; it prints nothing when fine.
  const std::string path = ::testing::TempDir() + "/http_metrics_scrape.txt";
  std::ofstream(path) << Scrape();
  FILE* promtool = popen(("promtool check metrics < " + path + " 2>&1").c_str(), "r");
  ASSERT_NE(promtool, nullptr);
  std::string output;
  char buf[512];
  while (fgets(buf, sizeof buf, promtool) != nullptr) output += buf;
  EXPECT_EQ(pclose(promtool), 0) << output;
  EXPECT_EQ(output, "");
}

}  // namespace
}  // namespace gradserve
