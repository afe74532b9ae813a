// Integration tests: the real gradserve-server binary on a loopback port, spoken to through a
// real gRPC channel: every RPC's results and errors. (Health, reflection, auth, shutdown and
// connections: server_lifecycle_test; deadlines: server_deadline_test.)
#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include "gradserve/v1/gradserve.grpc.pb.h"
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


// ---------------------------------------------------------------- fixture
class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto s = ServerProcess::Start();
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
    channel_ = new std::shared_ptr<grpc::Channel>(MakeChannel(server_->address()));
  }
  static void TearDownTestSuite() {
    delete channel_;
    delete server_;
  }
  static std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  }
  std::unique_ptr<pb::GradientService::Stub> Stub() { return pb::GradientService::NewStub(*channel_); }

  // A Backward call that must succeed: the motivating case, to show the server is still well.
  void ExpectHealthyBackward() {
    pb::BackwardRequest req;
    *req.mutable_logits() = Values({2}, {1.75, 1.75});
    *req.mutable_targets() = Labels({1});
    pb::BackwardResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status s = Stub()->Backward(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ExpectNear(TensorValues(resp.grad_logits()), {0.5, -0.5}, 1e-15);
  }

  static ServerProcess* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};
ServerProcess* ServerTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* ServerTest::channel_ = nullptr;

// ---------------------------------------------------------------- happy paths
TEST_F(ServerTest, MotivatingCaseThroughEveryRpc) {
  auto stub = Stub();
  pb::VerifyGradientRequest v;
  *v.mutable_logits() = Values({1, 2}, {1.75, 1.75});
  *v.mutable_targets() = Probs(Values({1, 2}, {0, 1}));
  v.mutable_options()->set_reduction(pb::REDUCTION_SUM);
  *v.mutable_candidate_grad() = Values({1, 2}, {6.125, 2.625});
  pb::VerifyGradientResponse vr;
  grpc::ClientContext c1;
  ASSERT_TRUE(stub->VerifyGradient(&c1, v, &vr).ok());
  EXPECT_FALSE(vr.ok());
  EXPECT_FALSE(vr.candidate_ok());
  ASSERT_EQ(vr.findings_size(), 1);
  EXPECT_EQ(vr.findings(0).code(), pb::FINDING_CODE_JACOBIAN_AT_LOGITS);
  EXPECT_EQ(vr.findings(0).residual(), 0.0);
  EXPECT_EQ(TensorValues(vr.findings(0).mistaken_grad()), (std::vector<double>{6.125, 2.625}));
  EXPECT_NE(vr.findings(0).message().find("J(a) with a = (0.5, 0.5) gives (0.5, -0.5) = a - t"), std::string::npos);
  EXPECT_EQ(TensorValues(vr.analytic_grad()), (std::vector<double>{0.5, -0.5}));
  EXPECT_EQ(vr.analytic_grad().dtype(), pb::DATA_TYPE_FLOAT64);
  EXPECT_FALSE(vr.summary().empty());

  pb::BackwardRequest b;
  *b.mutable_logits() = Raw<float>({1, 2}, {1.75f, 1.75f});
  *b.mutable_targets() = Labels({1});
  b.set_method(pb::METHOD_CHAIN_RULE);
  b.set_return_jacobian(true);
  b.set_return_probabilities(true);
  pb::BackwardResponse br;
  grpc::ClientContext c2;
  ASSERT_TRUE(stub->Backward(&c2, b, &br).ok());
  EXPECT_EQ(br.grad_logits().dtype(), pb::DATA_TYPE_FLOAT32);
  EXPECT_EQ(TensorValues(br.grad_logits()), (std::vector<double>{0.5, -0.5}));
  EXPECT_EQ(TensorValues(br.grad_probabilities()), (std::vector<double>{0, -2}));
  EXPECT_EQ(TensorValues(br.jacobian()), (std::vector<double>{0.25, -0.25, -0.25, 0.25}));
  EXPECT_EQ(Shape(br.jacobian()), (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(TensorValues(br.probabilities()), (std::vector<double>{0.5, 0.5}));
  EXPECT_EQ(br.reduction_denominator(), 1.0);
  EXPECT_NEAR(TensorValues(br.loss())[0], std::log(2.0), 1e-7);
  EXPECT_TRUE(Shape(br.loss()).empty());
}

TEST_F(ServerTest, ForwardInBothEncodingsAndDtypes) {
  const std::vector<double> z = {1, 2, 3, 0, 0, 0};
  const double e1 = std::exp(1), e2 = std::exp(2), e3 = std::exp(3), s = e1 + e2 + e3;
  for (int variant = 0; variant < 4; ++variant) {
    pb::ForwardRequest req;
    if (variant == 0) *req.mutable_logits() = Values({2, 3}, z);
    if (variant == 1) *req.mutable_logits() = Values({2, 3}, z, pb::DATA_TYPE_FLOAT32);
    if (variant == 2) *req.mutable_logits() = Raw<float>({2, 3}, {1, 2, 3, 0, 0, 0});
    if (variant == 3) *req.mutable_logits() = Raw<double>({2, 3}, z);
    *req.mutable_targets() = Labels({2, 0});
    req.mutable_options()->set_reduction(pb::REDUCTION_NONE);
    req.set_return_log_probabilities(true);
    pb::ForwardResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(Stub()->Forward(&ctx, req, &resp).ok());
    const double tol = variant == 1 || variant == 2 ? 1e-6 : 1e-14;
    ExpectNear(TensorValues(resp.probabilities()), {e1 / s, e2 / s, e3 / s, 1. / 3, 1. / 3, 1. / 3}, tol);
    ExpectNear(TensorValues(resp.loss()), {std::log(s) - 3, std::log(3.0)}, tol);
    EXPECT_EQ(Shape(resp.loss()), (std::vector<int64_t>{2}));
    EXPECT_NEAR(TensorValues(resp.log_probabilities())[0], 1 - std::log(s), tol);
    EXPECT_EQ(resp.reduction_denominator(), 0.0);
    const bool raw = variant >= 2;
    EXPECT_EQ(resp.probabilities().values_size() == 0, raw);
    EXPECT_EQ(resp.probabilities().dtype(), variant == 1 || variant == 2 ? pb::DATA_TYPE_FLOAT32 : pb::DATA_TYPE_FLOAT64);
  }
}

TEST_F(ServerTest, ForwardWithoutTargetsGivesOnlyProbabilities) {
  pb::ForwardRequest req;
  *req.mutable_logits() = Values({3}, {0, 0, 0});
  pb::ForwardResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(Stub()->Forward(&ctx, req, &resp).ok());
  EXPECT_EQ(Shape(resp.probabilities()), (std::vector<int64_t>{3}));
  EXPECT_FALSE(resp.has_loss());
  EXPECT_FALSE(resp.has_log_probabilities());
}

TEST_F(ServerTest, BackwardVjpAndUpstreamGradient) {
  pb::BackwardRequest req;
  *req.mutable_logits() = Values({1, 3}, {0, 0, 0});
  *req.mutable_grad_probabilities() = Values({1, 3}, {3, 0, 0});
  pb::BackwardResponse resp;
  grpc::ClientContext c1;
  ASSERT_TRUE(Stub()->Backward(&c1, req, &resp).ok());
  ExpectNear(TensorValues(resp.grad_logits()), {2. / 3, -1. / 3, -1. / 3}, 1e-15);  // a ⊙ (g - <g, a>)
  EXPECT_FALSE(resp.has_loss());

  pb::BackwardRequest up;
  *up.mutable_logits() = Values({2, 2}, {1.75, 1.75, 0, 0});
  *up.mutable_targets() = Labels({1, 0});
  up.mutable_options()->set_reduction(pb::REDUCTION_NONE);
  *up.mutable_grad_loss() = Values({2}, {2, -1});
  grpc::ClientContext c2;
  ASSERT_TRUE(Stub()->Backward(&c2, up, &resp).ok());
  ExpectNear(TensorValues(resp.grad_logits()), {1, -1, 0.5, -0.5}, 1e-15);
}

TEST_F(ServerTest, ServesTheContractsLargestFusedRequest) {
  std::vector<double> z(8 * 50000);
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal;
  for (double& v : z) v = normal(rng);
  pb::BackwardRequest req;
  *req.mutable_logits() = Raw<double>({8, 50000}, z);
  *req.mutable_targets() = Labels({0, 1, 2, 3, 4, 5, 6, 49999});
  pb::BackwardResponse resp;
  grpc::ClientContext ctx;
  const grpc::Status s = Stub()->Backward(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(TensorValues(resp.grad_logits()).size(), z.size());
}

// ---------------------------------------------------------------- errors
struct BadCall {
  std::string name;
  std::function<grpc::Status(pb::GradientService::Stub&)> call;
  grpc::StatusCode code;
  std::string message_part;
};

grpc::Status CallBackward(pb::GradientService::Stub& stub, const pb::BackwardRequest& req) {
  pb::BackwardResponse resp;
  grpc::ClientContext ctx;
  return stub.Backward(&ctx, req, &resp);
}


std::function<grpc::Status(pb::GradientService::Stub&)> Backward(std::function<void(pb::BackwardRequest&)> spoil) {
  return [spoil](pb::GradientService::Stub& stub) {
    pb::BackwardRequest req = GoodBackward();
    spoil(req);
    return CallBackward(stub, req);
  };
}

TEST_F(ServerTest, EachErrorHasItsCodeAndAClearMessage) {
  const auto kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
  const auto kExhausted = grpc::StatusCode::RESOURCE_EXHAUSTED;
  const std::vector<BadCall> cases = {
      {"rank3", Backward([](auto& r) { *r.mutable_logits() = Values({1, 1, 2}, {1, 2}); }), kInvalid,
       "logits must be rank 2 [batch, classes] or rank 1 [classes]; got shape [1, 1, 2]"},
      {"raw_length", Backward([](auto& r) { *r.mutable_logits() = Raw<float>({2, 3}, {1, 2, 3}); }), kInvalid,
       "logits.raw has 12 bytes, but shape [2, 3] of float32 needs 6"},
      {"both_encodings", Backward([](auto& r) { r.mutable_logits()->set_raw("abcd"); }), kInvalid,
       "both raw and values"},
      {"no_data", Backward([](auto& r) { r.mutable_logits()->clear_values(); }), kInvalid,
       "neither raw nor values"},
      {"raw_without_dtype", Backward([](auto& r) { *r.mutable_logits() = Raw<float>({2, 3}, {1, 2, 3, 4, 5, 6}); r.mutable_logits()->set_dtype(pb::DATA_TYPE_UNSPECIFIED); }),
       kInvalid, "logits.raw needs dtype"},
      {"nan", Backward([](auto& r) { r.mutable_logits()->set_values(4, NAN); }), kInvalid, "logits[1, 1] is nan"},
      {"inf", Backward([](auto& r) { r.mutable_logits()->set_values(0, INFINITY); }), kInvalid, "logits[0, 0] is inf"},
      {"label_range", Backward([](auto& r) { *r.mutable_targets() = Labels({0, 3}); }), kInvalid,
       "targets.class_indices[1] is 3, outside [0, 3)"},
      {"label_count", Backward([](auto& r) { *r.mutable_targets() = Labels({0}); }), kInvalid,
       "targets.class_indices has 1 values, expected one per row (batch 2)"},
      {"zero_classes", Backward([](auto& r) { *r.mutable_logits() = Values({2, 0}, {}); }), kInvalid,
       "logits shape [2, 0] has 0 classes; at least 1 is needed"},
      {"label_count_unbatched", Backward([](auto& r) { *r.mutable_logits() = Values({3}, {1, 2, 3}); }), kInvalid,
       "targets.class_indices has 2 values, but rank-1 logits are one example and need 1"},
      {"prob_negative", Backward([](auto& r) { *r.mutable_targets() = Probs(Values({2, 3}, {1.5, -0.5, 0, 0, 0, 1})); }), kInvalid,
       "targets.probabilities[0, 1] is -0.5"},
      {"prob_sum", Backward([](auto& r) { *r.mutable_targets() = Probs(Values({2, 3}, {0.5, 0.4, 0, 0, 0, 1})); }), kInvalid,
       "targets.probabilities row 0 sums to 0.9"},
      {"prob_shape", Backward([](auto& r) { *r.mutable_targets() = Probs(Values({3}, {0, 0, 1})); }), kInvalid,
       "targets.probabilities has shape [3] but logits have shape [2, 3]"},
      {"smoothing", Backward([](auto& r) { r.mutable_options()->set_label_smoothing(-0.1); }), kInvalid,
       "options.label_smoothing is -0.1"},
      {"weights_length", Backward([](auto& r) { r.mutable_options()->add_class_weights(1); }), kInvalid,
       "options.class_weights has 1 weights, expected one per class (3)"},
      {"weights_negative", Backward([](auto& r) { for (double w : {1.0, -1.0, 1.0}) r.mutable_options()->add_class_weights(w); }),
       kInvalid, "options.class_weights[1] is -1"},
      {"grad_loss_shape", Backward([](auto& r) { *r.mutable_grad_loss() = Values({2}, {1, 1}); }), kInvalid,
       "grad_loss has shape [2] but the loss has shape []"},
      {"grad_loss_shape_none", Backward([](auto& r) { r.mutable_options()->set_reduction(pb::REDUCTION_NONE); *r.mutable_grad_loss() = Values({}, {1}); }),
       kInvalid, "grad_loss has shape [] but the loss (reduction NONE) has shape [2]"},
      {"targets_and_grad_probs", Backward([](auto& r) { *r.mutable_grad_probabilities() = Values({2, 3}, {1, 2, 3, 4, 5, 6}); }),
       kInvalid, "not both"},
      {"neither", Backward([](auto& r) { r.clear_targets(); }), kInvalid, "Backward needs targets"},
      {"options_with_grad_probs", Backward([](auto& r) { r.clear_targets(); *r.mutable_grad_probabilities() = Values({2, 3}, {1, 2, 3, 4, 5, 6}); r.mutable_options()->set_reduction(pb::REDUCTION_SUM); }),
       kInvalid, "do not go with grad_probabilities"},
      {"grad_loss_with_grad_probs", Backward([](auto& r) { r.clear_targets(); *r.mutable_grad_probabilities() = Values({2, 3}, {1, 2, 3, 4, 5, 6}); *r.mutable_grad_loss() = Values({}, {1}); }),
       kInvalid, "grad_loss applies to a loss"},
      {"ignore_with_probs", Backward([](auto& r) { *r.mutable_targets() = Probs(Values({2, 3}, {1, 0, 0, 0, 0, 1})); r.mutable_options()->set_ignore_index(0); }),
       kInvalid, "options.ignore_index (0) applies only to class-index targets"},
      {"unknown_method", Backward([](auto& r) { r.set_method(static_cast<pb::Method>(9)); }), kInvalid, "method 9"},
      {"jacobian_limit", Backward([](auto& r) { *r.mutable_logits() = Raw<float>({100, 2000}, std::vector<float>(200000)); *r.mutable_targets() = Labels(std::vector<int64_t>(100, 0)); r.set_return_jacobian(true); }),
       kExhausted, "--max_jacobian_elements"},
      {"oversized_request", Backward([](auto& r) { *r.mutable_logits() = Raw<double>({9, 1 << 20}, std::vector<double>(9 << 20)); }),
       kExhausted, "over the 64 MiB limit set by --max_message_mib"},
      {"verify_without_targets", [](auto& stub) {
         pb::VerifyGradientRequest req;
         *req.mutable_logits() = Values({2}, {1, 2});
         pb::VerifyGradientResponse resp;
         grpc::ClientContext ctx;
         return stub.VerifyGradient(&ctx, req, &resp);
       }, kInvalid, "VerifyGradient needs targets"},
      {"verify_work", [](auto& stub) {
         pb::VerifyGradientRequest req;
         *req.mutable_logits() = Raw<double>({8, 50000}, std::vector<double>(400000));
         *req.mutable_targets() = Labels(std::vector<int64_t>(8, 0));
         *req.mutable_candidate_jacobian() = Values({1}, {0});  // only a Jacobian costs classes^2
         pb::VerifyGradientResponse resp;
         grpc::ClientContext ctx;
         return stub.VerifyGradient(&ctx, req, &resp);
       }, kExhausted, "VerifyGradient with candidate_jacobian needs batch x classes^2 = 8 x 50000^2 = 20000000000, over the limit of 2147483648 set by --max_verify_work"},
      {"verify_rtol", [](auto& stub) {
         pb::VerifyGradientRequest req;
         *req.mutable_logits() = Values({2}, {1, 2});
         *req.mutable_targets() = Labels({0});
         req.set_rtol(-1);
         pb::VerifyGradientResponse resp;
         grpc::ClientContext ctx;
         return stub.VerifyGradient(&ctx, req, &resp);
       }, kInvalid, "rtol is -1"},
      {"forward_options_without_targets", [](auto& stub) {
         pb::ForwardRequest req;
         *req.mutable_logits() = Values({2}, {1, 2});
         req.mutable_options()->set_label_smoothing(2);
         pb::ForwardResponse resp;
         grpc::ClientContext ctx;
         return stub.Forward(&ctx, req, &resp);
       }, kInvalid, "options.label_smoothing is 2"},
      {"forward_zero_classes_unbatched", [](auto& stub) {
         pb::ForwardRequest req;
         *req.mutable_logits() = Values({0}, {});
         pb::ForwardResponse resp;
         grpc::ClientContext ctx;
         return stub.Forward(&ctx, req, &resp);
       }, kInvalid, "logits shape [0] has 0 classes; at least 1 is needed"},
  };
  auto stub = Stub();
  for (const BadCall& c : cases) {
    const grpc::Status s = c.call(*stub);
    EXPECT_EQ(s.error_code(), c.code) << c.name << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(c.message_part), std::string::npos) << c.name << ": " << s.error_message();
    ExpectHealthyBackward();  // a bad request never poisons the next one
  }
}

// ---------------------------------------------------------------- stream
TEST_F(ServerTest, StreamAnswersInOrderAndEndsWithTheBadMessagesStatus) {
  grpc::ClientContext ctx;
  auto stream = Stub()->BackwardStream(&ctx);
  for (int k = 0; k < 5; ++k) {
    pb::BackwardRequest req;
    *req.mutable_logits() = Values({2}, {0, static_cast<double>(k)});
    *req.mutable_targets() = Labels({0});
    req.mutable_options()->set_reduction(pb::REDUCTION_SUM);
    ASSERT_TRUE(stream->Write(req));
  }
  pb::BackwardRequest bad;
  *bad.mutable_logits() = Values({2}, {0, NAN});
  *bad.mutable_targets() = Labels({0});
  stream->Write(bad);
  stream->WritesDone();
  pb::BackwardResponse resp;
  for (int k = 0; k < 5; ++k) {
    ASSERT_TRUE(stream->Read(&resp)) << "response " << k;
    const double a1 = std::exp(k) / (1 + std::exp(k));  // softmax of (0, k), class 1
    EXPECT_NEAR(TensorValues(resp.grad_logits())[1], a1, 1e-12) << "response " << k << " out of order";
  }
  EXPECT_FALSE(stream->Read(&resp));
  const grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("logits[0, 1] is nan"), std::string::npos) << s.error_message();
}

TEST_F(ServerTest, EmptyBatchCandidatesAreGivenAndCorrect) {
  pb::VerifyGradientRequest req;
  *req.mutable_logits() = Values({0, 3}, {});
  *req.mutable_targets() = Labels({});
  *req.mutable_candidate_grad() = Values({0, 3}, {});
  *req.mutable_candidate_jacobian() = Values({0, 3, 3}, {});
  pb::VerifyGradientResponse resp;
  grpc::ClientContext ctx;
  const grpc::Status s = Stub()->VerifyGradient(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.candidate_ok()) << resp.summary();
  EXPECT_TRUE(resp.candidate_jacobian_ok()) << resp.summary();
  EXPECT_TRUE(resp.ok());
  EXPECT_EQ(resp.findings_size(), 0);
  EXPECT_EQ(resp.summary().find("no candidate"), std::string::npos) << resp.summary();
}

// ---------------------------------------------------------------- concurrency
// (Deadlines are observed on the server, in server_deadline_test.)

TEST_F(ServerTest, SixteenConcurrentCallersGetTheirOwnAnswers) {
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 16; ++t) {
    callers.emplace_back([&, t] {
      auto stub = Stub();
      for (int k = 0; k < 20; ++k) {
        const double shift = t + 0.01 * k;
        pb::BackwardRequest req;
        *req.mutable_logits() = Raw<double>({1, 2}, {0.0, shift});
        *req.mutable_targets() = Labels({0});
        pb::BackwardResponse resp;
        grpc::ClientContext ctx;
        if (!stub->Backward(&ctx, req, &resp).ok()) {
          ++wrong;
          continue;
        }
        const double a1 = 1 / (1 + std::exp(-shift));
        if (std::abs(TensorValues(resp.grad_logits())[1] - a1) > 1e-12) ++wrong;
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace gradserve
