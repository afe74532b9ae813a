// The HTTP listener of the real gradserve-server: the JSON gateway's answers and error shapes,
// health while serving and while draining, the page, and the message limit.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "gradserve/v1/gradserve.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/http_test_util.h"

namespace gradserve {
namespace {

using nlohmann::json;
using testing::HttpServerProcess;

constexpr char kSeed[] = R"({"logits": {"shape": [2], "values": [1.75, 1.75]},
  "targets": {"probabilities": {"shape": [2], "values": [0, 1]}},
  "candidate_grad": {"shape": [2], "values": [6.125, 2.625]}})";

std::vector<double> Doubles(const json& values) { return values.get<std::vector<double>>(); }

// The error body every failure carries, with the gRPC code's number and name.
void ExpectError(const httplib::Result& r, int http_status, int code, const char* name,
                 const char* message_part) {
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, http_status) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  const json body = json::parse(r->body);
  EXPECT_EQ(body["code"], code) << r->body;
  EXPECT_EQ(body["status"], name) << r->body;
  EXPECT_NE(body["message"].get<std::string>().find(message_part), std::string::npos) << r->body;
}

class HttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    token_file_ = new std::string(::testing::TempDir() + "/http_test_token");
    std::ofstream(*token_file_) << "s3cret\n";
    auto s = testing::StartWithHttp({"--token_file=" + *token_file_, "--max_message_mib=1"});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = new HttpServerProcess(std::move(*s));
  }
  static void TearDownTestSuite() {
    delete server_;
    delete token_file_;
  }
  httplib::Result Post(const std::string& path, const std::string& body, const char* token = "s3cret") {
    auto client = server_->Client();
    httplib::Headers headers;
    if (token != nullptr) headers.emplace("Authorization", std::string("Bearer ") + token);
    return client->Post(path.c_str(), headers, body, "application/json");
  }
  static HttpServerProcess* server_;
  static std::string* token_file_;
};
HttpServerProcess* HttpTest::server_ = nullptr;
std::string* HttpTest::token_file_ = nullptr;

TEST_F(HttpTest, VerifySeedCaseFindsJacobianAtLogits) {
  auto r = Post("/v1/verify", kSeed);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json v = json::parse(r->body);
  EXPECT_EQ(v["ok"], false);
  EXPECT_EQ(v["candidate_ok"], false);
  EXPECT_DOUBLE_EQ(v["candidate_max_abs_error"].get<double>(), 5.625);
  EXPECT_EQ(Doubles(v["analytic_grad"]["values"]), (std::vector<double>{0.5, -0.5}));
  ASSERT_EQ(v["findings"].size(), 1u) << r->body;
  EXPECT_EQ(v["findings"][0]["code"], "FINDING_CODE_JACOBIAN_AT_LOGITS");
  EXPECT_NE(v["findings"][0]["message"].get<std::string>().find("(0.5, -0.5) = a - t"), std::string::npos);
}

TEST_F(HttpTest, ForwardAndBackwardAnswerInTheProtoJsonMapping) {
  auto f = Post("/v1/forward", R"({"logits": {"shape": [1, 2], "values": [0, 0]},
      "targets": {"class_indices": {"values": [1]}}, "return_log_probabilities": true})");
  ASSERT_TRUE(f);
  ASSERT_EQ(f->status, 200) << f->body;
  const json fj = json::parse(f->body);
  EXPECT_EQ(Doubles(fj["probabilities"]["values"]), (std::vector<double>{0.5, 0.5}));
  EXPECT_NEAR(Doubles(fj["loss"]["values"])[0], std::log(2.0), 1e-15);
  EXPECT_EQ(fj["probabilities"]["shape"], json::array({"1", "2"}));  // int64 is a JSON string
  // raw bytes are base64 in JSON: float32 (1.75, 1.75) is "AADgPwAA4D8=".
  auto b = Post("/v1/backward", R"({"logits": {"shape": [2], "dtype": "DATA_TYPE_FLOAT32",
      "raw": "AADgPwAA4D8="}, "targets": {"class_indices": {"values": [1]}}, "method": "METHOD_CHAIN_RULE"})");
  ASSERT_TRUE(b);
  ASSERT_EQ(b->status, 200) << b->body;
  const json bj = json::parse(b->body);
  EXPECT_EQ(bj["grad_logits"]["dtype"], "DATA_TYPE_FLOAT32");
  EXPECT_EQ(bj["grad_logits"]["raw"], "AAAAPwAAAL8=");  // float32 (0.5, -0.5)
  // Non-finite numbers are strings in protobuf's mapping, both ways: MEAN over no rows is NaN,
  // and a "NaN" logit is refused by name.
  auto nan = Post("/v1/forward", R"({"logits": {"shape": [1, 2], "values": [1, 2]},
      "targets": {"class_indices": {"values": [0]}}, "options": {"ignoreIndex": 0}})");
  ASSERT_TRUE(nan);
  ASSERT_EQ(nan->status, 200) << nan->body;
  EXPECT_EQ(json::parse(nan->body)["loss"]["values"], json::array({"NaN"})) << nan->body;
  ExpectError(Post("/v1/forward", R"({"logits": {"shape": [2], "values": [1, "NaN"]}})"), 400, 3,
              "INVALID_ARGUMENT", "logits");
}

TEST_F(HttpTest, ErrorsMapToHttpStatusesWithJsonBodies) {
  ExpectError(Post("/v1/backward", R"({"logits": {"shape": [2], "values": [1]},
      "targets": {"class_indices": {"values": [0]}}})"), 400, 3, "INVALID_ARGUMENT", "logits");
  ExpectError(Post("/v1/backward", "{not json"), 400, 3, "INVALID_ARGUMENT", "gradserve.v1.BackwardRequest");
  ExpectError(Post("/v1/backward", R"({"logitz": {}})"), 400, 3, "INVALID_ARGUMENT", "logitz");
  ExpectError(Post("/v1/verify", kSeed, nullptr), 401, 16, "UNAUTHENTICATED", "Authorization");
  ExpectError(Post("/v1/verify", kSeed, "wrong"), 401, 16, "UNAUTHENTICATED", "not valid");
  // [1000, 1000] Jacobian = 8 MB, over the 1 MiB message limit: refused before any work.
  std::string big = R"({"logits": {"shape": [1, 1000], "values": [0)";
  for (int k = 1; k < 1000; ++k) big += ",0";
  big += R"(]}, "targets": {"class_indices": {"values": [1]}}, "return_jacobian": true})";
  ExpectError(Post("/v1/backward", big), 429, 8, "RESOURCE_EXHAUSTED", "--max_message_mib");
  auto client = server_->Client();
  ExpectError(client->Post("/v1/verify", {{"Authorization", "Bearer s3cret"}, {"Grpc-Timeout", "soon"}},
                           kSeed, "application/json"),
              400, 3, "INVALID_ARGUMENT", "Grpc-Timeout");
  ExpectError(client->Get("/v1/verify"), 405, 12, "UNIMPLEMENTED", "POST");
  ExpectError(client->Get("/v2/nothing"), 404, 5, "NOT_FOUND", "/v2/nothing");
}

// The answer of a raw exchange: status line and JSON body.
void ExpectRawError(const std::string& answer, const char* message_part) {
  EXPECT_EQ(answer.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0), 0u) << answer;
  const size_t body = answer.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos) << answer;
  const json error = json::parse(answer.substr(body + 4));
  EXPECT_EQ(error["code"], 8);
  EXPECT_EQ(error["status"], "RESOURCE_EXHAUSTED");
  EXPECT_NE(error["message"].get<std::string>().find(message_part), std::string::npos) << answer;
}

TEST_F(HttpTest, BodyOverTheMessageLimitIs413BeforeItIsRead) {
  // Only the head is sent: the answer comes from Content-Length alone.
  ExpectRawError(testing::RawExchange(server_->http_port, testing::PostHead("/v1/backward", 2 << 20, "s3cret")),
                 "2097152 bytes (2.0 MiB), over the 1 MiB limit");
  // Chunked, without a length: 17 chunks of 64 KiB, refused once read (and not kept).
  std::string chunked = testing::PostHead("/v1/backward", -1, "s3cret");
  const std::string chunk(64 << 10, ' ');
  for (int k = 0; k < 17; ++k) chunked += "10000\r\n" + chunk + "\r\n";
  chunked += "0\r\n\r\n";
  ExpectRawError(testing::RawExchange(server_->http_port, chunked),
                 "(sent without Content-Length) is 1114112 bytes, over the 1 MiB limit");
  // curl's way: Expect: 100-continue gets the 413 instead of the go-ahead.
  ExpectRawError(testing::RawExchange(server_->http_port,
                                      "POST /v1/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\n"
                                      "Content-Length: 5000000\r\n\r\n"),
                 "5000000 bytes");
}

TEST_F(HttpTest, HealthPageAndMetricsAreOpenWithoutToken) {
  auto client = server_->Client();
  auto h = client->Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto ready = client->Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(json::parse(ready->body)["status"], "SERVING");
  auto page = client->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->body.find("/v1/verify"), std::string::npos);
  EXPECT_EQ(page->body.find("http://"), std::string::npos) << "the page must load nothing from elsewhere";
  auto m = client->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_EQ(m->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
}

// While gRPC drains a stream still open, HTTP says so: health 503, new calls UNAVAILABLE.
TEST(HttpDrainTest, DrainingAnswers503ThenExitsZero) {
  auto s = testing::StartWithHttp({"--shutdown_grace_seconds=3"});
  ASSERT_TRUE(s.ok()) << s.status();
  auto channel = grpc::CreateChannel(s->process->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::GradientService::NewStub(channel);
  grpc::ClientContext ctx;
  auto stream = stub->BackwardStream(&ctx);
  v1::BackwardRequest req;
  req.mutable_logits()->add_shape(2);
  req.mutable_logits()->add_values(1.75);
  req.mutable_logits()->add_values(1.75);
  req.mutable_targets()->mutable_class_indices()->add_values(1);
  v1::BackwardResponse resp;
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->Read(&resp));  // the stream is open and served

  ASSERT_EQ(kill(s->process->pid(), SIGTERM), 0);
  auto client = s->Client();
  int health = 0;
  for (int i = 0; i < 100 && health != 503; ++i) {
    auto h = client->Get("/healthz");
    ASSERT_TRUE(h);
    health = h->status;
    if (health != 503) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(health, 503);
  auto ready = client->Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_EQ(json::parse(ready->body)["status"], "NOT_SERVING");
  ExpectError(client->Post("/v1/verify", kSeed, "application/json"), 503, 14, "UNAVAILABLE",
              "shutting down");
  stream->WritesDone();
  stream->Finish();
  EXPECT_EQ(s->process->Terminate(10000), 0);
}

}  // namespace
}  // namespace gradserve
