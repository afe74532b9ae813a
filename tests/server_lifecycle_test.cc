// The real gradserve-server around its calls: health and reflection, bearer-token auth, SIGTERM
// draining, response limits and connection ageing.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "gradserve/v1/gradserve.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"
#include "tests/server_test_util.h"
#include "tests/tensor_values.h"

namespace gradserve {
namespace {

using testing::ServerProcess;
using testing::TensorValues;
using namespace testing;  // Values, Raw, Labels, ... (server_test_util.h)
namespace pb = ::gradserve::v1;

class ServerIntrospectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = ServerProcess::Start();
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    channel = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    channel_ = &channel;
  }
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel;
  std::shared_ptr<grpc::Channel>* channel_ = nullptr;
};

TEST_F(ServerIntrospectionTest, HealthIsServingForBothNames) {
  auto health = grpc::health::v1::Health::NewStub(*channel_);
  for (const char* name : {"", "gradserve.v1.GradientService"}) {
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(name);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(health->Check(&ctx, req, &resp).ok()) << name;
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << name;
  }
}

TEST_F(ServerIntrospectionTest, ReflectionListsAndDescribesEveryService) {
  namespace rf = grpc::reflection::v1alpha;
  auto stub = rf::ServerReflection::NewStub(*channel_);
  grpc::ClientContext ctx;
  auto stream = stub->ServerReflectionInfo(&ctx);
  rf::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  rf::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::vector<std::string> services;
  for (const auto& s : resp.list_services_response().service()) services.push_back(s.name());
  for (const char* want : {"gradserve.v1.GradientService", "grpc.health.v1.Health",
                           "grpc.reflection.v1alpha.ServerReflection"}) {
    EXPECT_NE(std::find(services.begin(), services.end(), want), services.end()) << want;
  }
  for (const std::string& name : services) {
    rf::ServerReflectionRequest describe;
    describe.set_file_containing_symbol(name);
    ASSERT_TRUE(stream->Write(describe));
    ASSERT_TRUE(stream->Read(&resp));
    EXPECT_FALSE(resp.has_error_response()) << name << ": " << resp.error_response().error_message();
    EXPECT_GT(resp.file_descriptor_response().file_descriptor_proto_size(), 0) << name;
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST(ServerAuthTest, TokenRequiredExceptForHealth) {
  char path[] = "/tmp/gradserve-token-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "s3cret\n", 7), 7);
  close(fd);
  auto server = ServerProcess::Start({std::string("--token_file=") + path});
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
  auto stub = pb::GradientService::NewStub(channel);
  const pb::BackwardRequest req = GoodBackward();
  for (const char* token : {"", "Bearer wrong", "Bearer s3cret"}) {
    pb::BackwardResponse resp;
    grpc::ClientContext ctx;
    if (*token) ctx.AddMetadata("authorization", token);
    const grpc::Status s = stub->Backward(&ctx, req, &resp);
    if (std::string(token) == "Bearer s3cret") {
      EXPECT_TRUE(s.ok()) << s.error_message();
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << token;
    }
  }
  grpc::ClientContext stream_ctx;
  auto stream = stub->BackwardStream(&stream_ctx);
  stream->WritesDone();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckResponse hr;
  grpc::ClientContext hctx;
  EXPECT_TRUE(health->Check(&hctx, grpc::health::v1::HealthCheckRequest(), &hr).ok());
  unlink(path);
}

TEST(ServerShutdownTest, SigtermLetsInFlightCallsFinishAndExitsZero) {
  auto server = ServerProcess::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
  auto stub = pb::GradientService::NewStub(channel);
  // An open stream with one answered request is certainly in flight when SIGTERM arrives.
  grpc::ClientContext ctx;
  auto stream = stub->BackwardStream(&ctx);
  pb::BackwardRequest req = GoodBackward();
  pb::BackwardResponse resp;
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->Read(&resp));
  kill((*server)->pid(), SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE((*server)->running());  // draining, not gone
  // New calls are refused while the stream still gets its answers.
  auto fresh = pb::GradientService::NewStub(
      grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials()));
  pb::ForwardRequest f;
  *f.mutable_logits() = Values({1}, {0});
  pb::ForwardResponse fr;
  grpc::ClientContext fctx;
  fctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  EXPECT_FALSE(fresh->Forward(&fctx, f, &fr).ok());
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(TensorValues(resp.grad_logits()).size(), 6u);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  const int status = (*server)->Terminate(5000);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(ServerLimitsTest, FindingsThatWouldOverflowTheMessageLimitComeWithoutTheirGradient) {
  auto server = ServerProcess::Start({"--max_message_mib=1"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = pb::GradientService::NewStub(
      grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials()));
  // 40 x 1000 float64: each gradient is 320 KB raw, so the analytic and numeric gradients and one
  // finding's fit in 1 MiB and a second finding's does not. The candidate -(a - t) has its sign
  // flipped and lacks the mean's 1/40: two findings, the same mistaken gradient each.
  const int64_t n = 40, c = 1000;
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal(0.0, 2.0);
  std::vector<double> z(n * c), candidate(n * c);
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = (i * 37) % c;
    double m = -1e300, sum = 0;
    for (int64_t j = 0; j < c; ++j) m = std::max(m, z[i * c + j] = normal(rng));
    for (int64_t j = 0; j < c; ++j) sum += std::exp(z[i * c + j] - m);
    for (int64_t j = 0; j < c; ++j) {
      candidate[i * c + j] = -(std::exp(z[i * c + j] - m) / sum - (j == labels[i] ? 1.0 : 0.0));
    }
  }
  pb::VerifyGradientRequest req;
  *req.mutable_logits() = Raw<double>({n, c}, z);
  *req.mutable_targets() = Labels(labels);
  *req.mutable_candidate_grad() = Raw<double>({n, c}, candidate);
  pb::VerifyGradientResponse resp;
  grpc::ClientContext ctx;
  const grpc::Status s = stub->VerifyGradient(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_LE(resp.ByteSizeLong(), size_t{1} << 20);
  ASSERT_EQ(resp.findings_size(), 2);
  std::set<int> codes;
  int with_gradient = 0;
  for (const pb::Finding& f : resp.findings()) {
    codes.insert(f.code());
    if (f.has_mistaken_grad()) {
      ++with_gradient;
      ExpectNear(TensorValues(f.mistaken_grad()), candidate, 1e-12);
    } else {
      EXPECT_NE(f.message().find("mistaken_grad left out"), std::string::npos) << f.message();
    }
  }
  EXPECT_EQ(codes, (std::set<int>{pb::FINDING_CODE_SIGN_FLIPPED, pb::FINDING_CODE_MEAN_SCALE}));
  EXPECT_EQ(with_gradient, 1);
}

TEST(ServerConnectionTest, MaxConnectionAgeMovesClientsToANewConnectionWithoutFailingCalls) {
  auto server = ServerProcess::Start({"--max_connection_age_seconds=0.5"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
  auto stub = pb::GradientService::NewStub(channel);
  grpc::ClientContext stream_ctx;
  auto stream = stub->BackwardStream(&stream_ctx);
  pb::BackwardRequest req = GoodBackward();
  pb::BackwardResponse resp;
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  // Past the age (0.5 s, plus gRPC's up to 10% jitter) the server says GOAWAY; the stream opened
  // before keeps its answers within the grace period, and the connection then closes.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(TensorValues(resp.grad_logits()).size(), 6u);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  // (A connection without an age would stay READY here.)
  if (channel->GetState(false) == GRPC_CHANNEL_READY) {
    channel->WaitForStateChange(GRPC_CHANNEL_READY,
                                std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
  EXPECT_NE(channel->GetState(false), GRPC_CHANNEL_READY);
  // New calls go over a new connection.
  pb::BackwardResponse unary;
  grpc::ClientContext unary_ctx;
  EXPECT_TRUE(stub->Backward(&unary_ctx, req, &unary).ok());
  EXPECT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
}

TEST(ServerConnectionTest, BadConnectionFlagsAreRefusedAtStart) {
  for (const char* flag : {"--max_connection_age_seconds=-1", "--keepalive_seconds=0"}) {
    auto server = ServerProcess::Start({flag});
    EXPECT_FALSE(server.ok()) << flag;
  }
}


}  // namespace
}  // namespace gradserve
