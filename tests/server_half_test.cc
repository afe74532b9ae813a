// Half precision through the real gradserve-server: FLOAT16 and BFLOAT16 logits, targets,
// grad_probabilities and grad_loss in raw and values encodings, through Forward, Backward (fused,
// chain rule, VJP), BackwardStream and VerifyGradient. Every result is held to the API's bound,
// (max(1e-5, 0.1·classes·2^-24) + u)·max(1, max|ref|), against float64 computed by the library
// from the inputs as rounded to the half type.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gradserve/v1/gradserve.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lib/cross_entropy.h"
#include "lib/half.h"
#include "lib/softmax.h"
#include "tests/server_process.h"

namespace gradserve {
namespace {

using testing::ServerProcess;
namespace pb = ::gradserve::v1;

struct Type {
  HalfType half;
  pb::DataType dtype;
};
const Type kTypes[] = {{HalfType::kFloat16, pb::DATA_TYPE_FLOAT16}, {HalfType::kBFloat16, pb::DATA_TYPE_BFLOAT16}};

// `v` rounded to the half type: the numbers the server computes on.
std::vector<double> Rounded(HalfType t, const std::vector<double>& v) {
  std::vector<double> out;
  for (double x : v) out.push_back(HalfToFloat(t, DoubleToHalf(t, x)));
  return out;
}

pb::Tensor HalfRaw(Type t, std::vector<int64_t> shape, const std::vector<double>& v) {
  pb::Tensor out;
  out.mutable_shape()->Assign(shape.begin(), shape.end());
  out.set_dtype(t.dtype);
  std::string raw(2 * v.size(), '\0');
  for (size_t k = 0; k < v.size(); ++k) {
    const uint16_t h = DoubleToHalf(t.half, v[k]);
    std::memcpy(&raw[2 * k], &h, 2);
  }
  out.set_raw(raw);
  return out;
}

pb::Tensor HalfValues(Type t, std::vector<int64_t> shape, const std::vector<double>& v) {
  pb::Tensor out;
  out.mutable_shape()->Assign(shape.begin(), shape.end());
  out.set_dtype(t.dtype);
  out.mutable_values()->Assign(v.begin(), v.end());
  return out;
}

// The numbers of a response tensor, checking it is in `t`'s dtype (raw: 2 bytes each; values:
// each exactly a half value).
std::vector<double> Numbers(Type t, const pb::Tensor& x) {
  EXPECT_EQ(x.dtype(), t.dtype);
  std::vector<double> out;
  if (x.values_size() > 0) {
    for (double v : x.values()) {
      EXPECT_TRUE(std::isnan(v) || HalfToFloat(t.half, DoubleToHalf(t.half, v)) == v) << v << " is not a " << HalfTypeName(t.half);
      out.push_back(v);
    }
    return out;
  }
  for (size_t k = 0; k + 1 < x.raw().size(); k += 2) {
    uint16_t h;
    std::memcpy(&h, x.raw().data() + k, 2);
    out.push_back(HalfToFloat(t.half, h));
  }
  return out;
}

std::vector<double> Float64(const pb::Tensor& x) {
  EXPECT_EQ(x.dtype(), pb::DATA_TYPE_FLOAT64);
  if (x.values_size() > 0) return {x.values().begin(), x.values().end()};
  std::vector<double> out(x.raw().size() / 8);
  if (!out.empty()) std::memcpy(out.data(), x.raw().data(), x.raw().size());
  return out;
}

::testing::AssertionResult WithinBound(HalfType t, int64_t classes, const std::vector<double>& got,
                                       const std::vector<double>& ref) {
  if (got.size() != ref.size()) return ::testing::AssertionFailure() << got.size() << " values, expected " << ref.size();
  double scale = 1.0;
  for (double r : ref) if (std::isfinite(r)) scale = std::max(scale, std::abs(r));
  const double bound = (std::max(1e-5, 0.1 * classes * 0x1p-24) + HalfUnitRoundoff(t)) * scale;
  for (size_t k = 0; k < got.size(); ++k) {
    const bool ok = std::isnan(ref[k]) ? std::isnan(got[k]) : std::abs(got[k] - ref[k]) <= bound;
    if (!ok) return ::testing::AssertionFailure() << "[" << k << "] " << got[k] << " vs float64 " << ref[k] << ", bound " << bound;
  }
  return ::testing::AssertionSuccess();
}

// The float64 reference of one cross-entropy problem on already-rounded inputs.
struct Reference {
  std::vector<double> probs, log_probs, loss, grad;
  double denominator = 0;
};

Reference Compute(int64_t n, int64_t c, const std::vector<double>& z, const std::vector<int64_t>& ids,
                  const std::vector<double>& probs, LossOptions o, const std::vector<double>& grad_loss) {
  Reference r;
  r.probs.resize(n * c);
  r.log_probs.resize(n * c);
  r.grad.resize(n * c);
  r.loss.resize(o.reduction == Reduction::kNone ? n : 1);
  const ConstMatrixMap<double> zm(z.data(), n, c);
  EXPECT_TRUE(Softmax<double>(zm, MatrixMap<double>(r.probs.data(), n, c), MatrixMap<double>(r.log_probs.data(), n, c), {}).ok());
  o.probability_sum_tolerance = 1.0;  // rounded targets: checked by the server, not here
  const LossProblem<double> p{zm, probs.empty() ? Targets<double>::ClassIndices(ids)
                                                : Targets<double>::Probabilities(ConstMatrixMap<double>(probs.data(), n, c)), o};
  const auto s = CrossEntropy<double>(p, grad_loss, Method::kFused,
                                      {absl::MakeSpan(r.loss), MatrixMap<double>(r.grad.data(), n, c)}, {});
  EXPECT_TRUE(s.ok()) << s.status();
  if (s.ok()) r.denominator = s->reduction_denominator;
  return r;
}

class ServerHalfTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto s = ServerProcess::Start();
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    stub_ = pb::GradientService::NewStub(
                grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(), args))
                .release();
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete server_;
  }
  static ServerProcess* server_;
  static pb::GradientService::Stub* stub_;
};
ServerProcess* ServerHalfTest::server_ = nullptr;
pb::GradientService::Stub* ServerHalfTest::stub_ = nullptr;

std::vector<double> RandomNormal(size_t n, double scale, std::mt19937_64& rng) {
  std::normal_distribution<double> d(0.0, scale);
  std::vector<double> v(n);
  for (double& x : v) x = d(rng);
  return v;
}

TEST_F(ServerHalfTest, ForwardAndBackwardMeetTheBoundForEveryOption) {
  std::mt19937_64 rng(3);
  int cases = 0;
  for (const Type& t : kTypes) {
    for (bool raw : {true, false}) {
      for (auto [n, c] : {std::pair<int64_t, int64_t>{6, 5}, {300, 700}}) {
        for (int variant = 0; variant < 6; ++variant) {
          const bool probs = variant >= 3;
          const pb::Reduction reduction = static_cast<pb::Reduction>(1 + variant % 3);
          SCOPED_TRACE(::testing::Message() << HalfTypeName(t.half) << (raw ? " raw" : " values") << " [" << n << ", " << c << "] variant " << variant);
          auto tensor = [&](std::vector<int64_t> shape, const std::vector<double>& v) {
            return raw ? HalfRaw(t, shape, v) : HalfValues(t, shape, v);
          };
          const std::vector<double> z = RandomNormal(n * c, 4.0, rng);
          std::vector<int64_t> ids(n);
          std::vector<double> p;
          if (probs) {
            std::uniform_real_distribution<double> u(0.0, 1.0);
            p.resize(n * c);
            for (int64_t i = 0; i < n; ++i) {
              double sum = 0;
              for (int64_t j = 0; j < c; ++j) sum += (p[i * c + j] = u(rng));
              for (int64_t j = 0; j < c; ++j) p[i * c + j] /= sum;
            }
          } else {
            for (int64_t i = 0; i < n; ++i) ids[i] = i % 4 == 3 ? -1 : static_cast<int64_t>(rng() % c);
          }
          std::vector<double> weights(c);
          for (double& w : weights) w = 0.5 + (rng() % 100) / 100.0;
          const std::vector<double> grad_loss = RandomNormal(reduction == pb::REDUCTION_NONE ? n : 1, 2.0, rng);

          pb::BackwardRequest b;
          *b.mutable_logits() = tensor({n, c}, z);
          if (probs) {
            *b.mutable_targets()->mutable_probabilities() = tensor({n, c}, p);
          } else {
            b.mutable_targets()->mutable_class_indices()->mutable_values()->Assign(ids.begin(), ids.end());
            b.mutable_options()->set_ignore_index(-1);
          }
          b.mutable_options()->set_reduction(reduction);
          b.mutable_options()->set_label_smoothing(0.1);
          b.mutable_options()->mutable_class_weights()->Assign(weights.begin(), weights.end());
          *b.mutable_grad_loss() = tensor(reduction == pb::REDUCTION_NONE ? std::vector<int64_t>{n} : std::vector<int64_t>{}, grad_loss);
          b.set_return_probabilities(true);

          LossOptions o;
          o.reduction = reduction == pb::REDUCTION_MEAN ? Reduction::kMean : reduction == pb::REDUCTION_SUM ? Reduction::kSum : Reduction::kNone;
          o.label_smoothing = 0.1;
          o.class_weights = weights;
          if (!probs) o.ignore_index = -1;
          const Reference ref = Compute(n, c, Rounded(t.half, z), ids, Rounded(t.half, p), o, Rounded(t.half, grad_loss));

          for (pb::Method m : {pb::METHOD_FUSED, pb::METHOD_CHAIN_RULE}) {
            b.set_method(m);
            pb::BackwardResponse r;
            grpc::ClientContext ctx;
            const grpc::Status s = stub_->Backward(&ctx, b, &r);
            ASSERT_TRUE(s.ok()) << s.error_message();
            EXPECT_EQ(r.grad_logits().raw().size(), raw ? 2 * static_cast<size_t>(n * c) : 0u);
            EXPECT_TRUE(WithinBound(t.half, c, Numbers(t, r.grad_logits()), ref.grad));
            EXPECT_TRUE(WithinBound(t.half, c, Numbers(t, r.loss()), ref.loss));
            EXPECT_TRUE(WithinBound(t.half, c, Numbers(t, r.probabilities()), ref.probs));
            EXPECT_EQ(r.reduction_denominator(), ref.denominator);
            EXPECT_EQ(r.has_grad_probabilities(), m == pb::METHOD_CHAIN_RULE);
            ++cases;
          }
          pb::ForwardRequest f;
          *f.mutable_logits() = b.logits();
          *f.mutable_targets() = b.targets();
          *f.mutable_options() = b.options();
          f.set_return_log_probabilities(true);
          pb::ForwardResponse fr;
          grpc::ClientContext ctx;
          const grpc::Status s = stub_->Forward(&ctx, f, &fr);
          ASSERT_TRUE(s.ok()) << s.error_message();
          EXPECT_TRUE(WithinBound(t.half, c, Numbers(t, fr.probabilities()), ref.probs));
          EXPECT_TRUE(WithinBound(t.half, c, Numbers(t, fr.log_probabilities()), ref.log_probs));
          EXPECT_TRUE(WithinBound(t.half, c, Numbers(t, fr.loss()), ref.loss));
          EXPECT_EQ(fr.reduction_denominator(), ref.denominator);
        }
      }
    }
  }
  EXPECT_EQ(cases, 2 * 2 * 2 * 6 * 2);
}


TEST_F(ServerHalfTest, VjpStreamAndVerify) {
  const Type t = kTypes[1];  // bfloat16
  const std::vector<double> z = {1.75, 1.75, -3.0, 0.5, 2.0, 0.0}, g = {0.0, -2.0, 1.0, 0.25, -1.0, 3.0};
  pb::BackwardRequest b;
  *b.mutable_logits() = HalfRaw(t, {2, 3}, z);
  *b.mutable_grad_probabilities() = HalfRaw(t, {2, 3}, g);
  b.set_method(pb::METHOD_CHAIN_RULE);
  b.set_return_jacobian(true);
  std::vector<double> a(6), vjp(6), jac(18);
  const std::vector<double> zr = Rounded(t.half, z);
  ASSERT_TRUE(Softmax<double>(ConstMatrixMap<double>(zr.data(), 2, 3), MatrixMap<double>(a.data(), 2, 3), NoMatrix<double>(), {}).ok());
  ASSERT_TRUE(SoftmaxVjp<double>(ConstMatrixMap<double>(a.data(), 2, 3), ConstMatrixMap<double>(g.data(), 2, 3), MatrixMap<double>(vjp.data(), 2, 3), {}).ok());
  ASSERT_TRUE(SoftmaxJacobian<double>(ConstMatrixMap<double>(a.data(), 2, 3), jac.data(), {}).ok());

  // Three requests over one stream, then a bad one (an Inf logit): three answers, then its error.
  grpc::ClientContext ctx;
  auto stream = stub_->BackwardStream(&ctx);
  for (int k = 0; k < 3; ++k) ASSERT_TRUE(stream->Write(b));
  pb::BackwardRequest bad = b;
  *bad.mutable_logits() = HalfRaw(t, {2, 3}, {1, 2, 3, 4, INFINITY, 6});
  ASSERT_TRUE(stream->Write(bad));
  stream->WritesDone();
  pb::BackwardResponse r;
  for (int k = 0; k < 3; ++k) {
    ASSERT_TRUE(stream->Read(&r)) << k;
    EXPECT_TRUE(WithinBound(t.half, 3, Numbers(t, r.grad_logits()), vjp));
    EXPECT_TRUE(WithinBound(t.half, 3, Numbers(t, r.jacobian()), jac));
    EXPECT_EQ(Numbers(t, r.grad_probabilities()), g) << "dL/dA is the caller's, echoed";
  }
  EXPECT_FALSE(stream->Read(&r));
  const grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("logits[1, 1] is inf"), std::string::npos) << s.error_message();

  // VerifyGradient widens half inputs and answers float64: the analytic gradient is float64
  // cross-entropy of the rounded inputs, and a bfloat16 candidate is read.
  pb::VerifyGradientRequest v;
  *v.mutable_logits() = HalfRaw(t, {2, 3}, z);
  *v.mutable_targets()->mutable_probabilities() = HalfRaw(t, {2, 3}, {0.3, 0.3, 0.4, 0.1, 0.1, 0.8});
  v.mutable_options()->set_reduction(pb::REDUCTION_SUM);
  const std::vector<double> pr = Rounded(t.half, {0.3, 0.3, 0.4, 0.1, 0.1, 0.8});
  LossOptions o;
  o.reduction = Reduction::kSum;
  const Reference ref = Compute(2, 3, zr, {}, pr, o, {});
  *v.mutable_candidate_grad() = HalfRaw(t, {2, 3}, ref.grad);
  v.set_rtol(0.01);
  pb::VerifyGradientResponse vr;
  grpc::ClientContext vctx;
  const grpc::Status vs = stub_->VerifyGradient(&vctx, v, &vr);
  ASSERT_TRUE(vs.ok()) << vs.error_message();
  const std::vector<double> analytic = Float64(vr.analytic_grad());
  for (size_t k = 0; k < 6; ++k) EXPECT_NEAR(analytic[k], ref.grad[k], 1e-15);
  EXPECT_TRUE(vr.ok());
  EXPECT_TRUE(vr.candidate_ok());
}

TEST_F(ServerHalfTest, InputErrors) {
  const Type f16 = kTypes[0];
  auto forward = [&](pb::ForwardRequest req) {
    pb::ForwardResponse r;
    grpc::ClientContext ctx;
    return stub_->Forward(&ctx, req, &r);
  };
  pb::ForwardRequest req;
  *req.mutable_logits() = HalfValues(f16, {3}, {1.0, 70000.0, 2.0});
  grpc::Status s = forward(req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("logits.values[1] is 70000, which rounds to +Inf in float16 (largest finite 65504)"), std::string::npos) << s.error_message();
  *req.mutable_logits() = HalfRaw(f16, {2, 3}, {1, 2, 3, 4, 5, 6});
  req.mutable_logits()->mutable_raw()->pop_back();
  s = forward(req);
  EXPECT_NE(s.error_message().find("logits.raw has 11 bytes, but shape [2, 3] of float16 needs 6 × 2 = 12"), std::string::npos) << s.error_message();
  // Rounded targets: (0.3, 0.3, 0.4) in bfloat16 sums to 1 only within 3 · 2^-8; (0.5, 0.5, 0.1) does not.
  const Type bf16 = kTypes[1];
  *req.mutable_logits() = HalfRaw(bf16, {1, 3}, {1, 2, 3});
  *req.mutable_targets()->mutable_probabilities() = HalfValues(bf16, {1, 3}, {0.3, 0.3, 0.4});
  EXPECT_TRUE(forward(req).ok());
  *req.mutable_targets()->mutable_probabilities() = HalfValues(bf16, {1, 3}, {0.5, 0.5, 0.1});
  s = forward(req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("each row must sum to 1 within 0.0117188 (bfloat16"), std::string::npos) << s.error_message();
  // Half targets with float32 logits get the half tolerance too.
  pb::Tensor z32;
  z32.add_shape(1);
  z32.add_shape(3);
  z32.set_dtype(pb::DATA_TYPE_FLOAT32);
  z32.add_values(1);
  z32.add_values(2);
  z32.add_values(3);
  *req.mutable_logits() = z32;
  *req.mutable_targets()->mutable_probabilities() = HalfRaw(bf16, {1, 3}, {0.3, 0.3, 0.4});
  EXPECT_TRUE(forward(req).ok());
  *req.mutable_targets()->mutable_probabilities() = HalfValues(bf16, {1, 3}, {0.5, 0.5, 0.1});
  s = forward(req);
  EXPECT_NE(s.error_message().find("within 0.0117188 (half-precision targets)"), std::string::npos) << s.error_message();
}

TEST(ServerHalfLimitsTest, MessageSizeRefusalsNameTheRemedies) {
  auto server = ServerProcess::Start({"--max_message_mib=1"});
  ASSERT_TRUE(server.ok()) << server.status();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  auto stub = pb::GradientService::NewStub(
      grpc::CreateCustomChannel((*server)->address(), grpc::InsecureChannelCredentials(), args));
  const std::vector<double> z(200000, 0.5);
  const char* remedies[] = {"DATA_TYPE_FLOAT16 or DATA_TYPE_BFLOAT16", "split the batch",
                            "BackwardStream", "--max_message_mib"};
  // float32 logits and log-probabilities of 200000 values: a 1.5 MiB response. In float16: 0.8 MiB.
  pb::ForwardRequest req;
  req.mutable_logits()->add_shape(200000);
  req.mutable_logits()->set_dtype(pb::DATA_TYPE_FLOAT32);
  std::vector<float> f(z.begin(), z.end());
  req.mutable_logits()->set_raw(std::string(reinterpret_cast<const char*>(f.data()), 4 * f.size()));
  req.set_return_log_probabilities(true);
  pb::ForwardResponse r;
  grpc::ClientContext c1;
  grpc::Status s = stub->Forward(&c1, req, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  for (const char* remedy : remedies) EXPECT_NE(s.error_message().find(remedy), std::string::npos) << s.error_message();
  *req.mutable_logits() = HalfRaw(kTypes[0], {200000}, z);
  grpc::ClientContext c2;
  s = stub->Forward(&c2, req, &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.probabilities().raw().size(), 400000u);
  // A request over the limit (1.6 MiB of float64 values) is refused with the same remedies.
  pb::BackwardRequest big;
  big.mutable_logits()->add_shape(200000);
  big.mutable_logits()->mutable_values()->Assign(z.begin(), z.end());
  big.mutable_targets()->mutable_class_indices()->add_values(0);
  pb::BackwardResponse br;
  grpc::ClientContext c3;
  s = stub->Backward(&c3, big, &br);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("request is"), std::string::npos) << s.error_message();
  for (const char* remedy : remedies) EXPECT_NE(s.error_message().find(remedy), std::string::npos) << s.error_message();
}

}  // namespace
}  // namespace gradserve
