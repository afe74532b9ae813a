// VerifyGradient through the real gradserve-server: rows of the sizes the contract serves, which
// need no batch · classes² work, and --max_verify_work, which only a candidate Jacobian meets.
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

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
namespace pb = ::gradserve::v1;

using testing::Labels;
using testing::Raw;

// softmax of one row, in float64 from the float32 logits the server widens exactly.
std::vector<double> Softmax(const std::vector<float>& z) {
  double m = z[0], sum = 0;
  for (float v : z) m = std::max(m, static_cast<double>(v));
  std::vector<double> a(z.size());
  for (size_t j = 0; j < z.size(); ++j) sum += a[j] = std::exp(z[j] - m);
  for (double& v : a) v /= sum;
  return a;
}

std::vector<float> RandomRow(int64_t c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> z(c);
  for (float& v : z) v = normal(rng);
  return z;
}

class ServerVerifyTest : public ::testing::Test {
 protected:
  static std::unique_ptr<pb::GradientService::Stub> Connect(const ServerProcess& server) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    return pb::GradientService::NewStub(
        grpc::CreateCustomChannel(server.address(), grpc::InsecureChannelCredentials(), args));
  }
};

TEST_F(ServerVerifyTest, OneRowOf128000Float32ClassesVerifiesAndNamesAPlantedMistake) {
  auto server = ServerProcess::Start();  // default limits
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = Connect(**server);
  const int64_t c = 128000, y = 4242;
  const std::vector<float> z = RandomRow(c, 1);
  const std::vector<double> a = Softmax(z);

  // The right gradient a - t (SUM), sent as float32.
  std::vector<float> right(c);
  for (int64_t j = 0; j < c; ++j) right[j] = static_cast<float>(a[j] - (j == y ? 1.0 : 0.0));
  pb::VerifyGradientRequest req;
  *req.mutable_logits() = Raw<float>({1, c}, z);
  *req.mutable_targets() = Labels({y});
  req.mutable_options()->set_reduction(pb::REDUCTION_SUM);
  *req.mutable_candidate_grad() = Raw<float>({1, c}, right);
  pb::VerifyGradientResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->VerifyGradient(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.ok()) << resp.summary();
  EXPECT_TRUE(resp.candidate_ok());
  EXPECT_EQ(resp.findings_size(), 0);
  EXPECT_EQ(TensorValues(resp.numeric_grad()).size(), static_cast<size_t>(c));
  EXPECT_EQ(resp.epsilon_used(), 1e-20);

  // J(z)·dL/dA with dL/dA = -e_y / a_y: z ⊙ g - z·<z, g>.
  const double g = -1.0 / a[y];
  std::vector<double> at_logits(c);
  for (int64_t j = 0; j < c; ++j) at_logits[j] = (j == y ? z[y] * g : 0.0) - z[j] * (z[y] * g);
  *req.mutable_candidate_grad() = Raw<double>({1, c}, at_logits);
  pb::VerifyGradientResponse wrong;
  grpc::ClientContext ctx2;
  s = stub->VerifyGradient(&ctx2, req, &wrong);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(wrong.ok());
  EXPECT_FALSE(wrong.candidate_ok());
  ASSERT_EQ(wrong.findings_size(), 1) << wrong.summary().substr(0, 2000);
  EXPECT_EQ(wrong.findings(0).code(), pb::FINDING_CODE_JACOBIAN_AT_LOGITS);
  EXPECT_LT(wrong.findings(0).residual(), 1e-9 * std::abs(g));
  const std::vector<double> mistaken = TensorValues(wrong.findings(0).mistaken_grad());
  ASSERT_EQ(mistaken.size(), static_cast<size_t>(c));
  for (int64_t j = 0; j < c; j += 997) {
    EXPECT_NEAR(mistaken[j], at_logits[j], 1e-9 * std::abs(at_logits[j]) + 1e-12) << "class " << j;
  }
  EXPECT_EQ(wrong.worst_row(), 0);
}

TEST_F(ServerVerifyTest, EightRowsOf50000Float32ClassesAreServed) {
  auto server = ServerProcess::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = Connect(**server);
  const int64_t n = 8, c = 50000;
  std::vector<float> z;
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<float> row = RandomRow(c, 10 + i);
    z.insert(z.end(), row.begin(), row.end());
  }
  for (pb::NumericMethod method : {pb::NUMERIC_METHOD_COMPLEX_STEP, pb::NUMERIC_METHOD_CENTRAL_DIFFERENCE}) {
    pb::VerifyGradientRequest req;
    *req.mutable_logits() = Raw<float>({n, c}, z);
    *req.mutable_targets() = Labels({0, 1, 2, 3, 4, 5, 6, 49999});
    req.mutable_options()->set_label_smoothing(0.1);
    req.set_numeric_method(method);
    pb::VerifyGradientResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status s = stub->VerifyGradient(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(resp.ok()) << resp.summary();
    EXPECT_EQ(TensorValues(resp.analytic_grad()).size(), static_cast<size_t>(n * c));
  }
}

// --max_verify_work bounds only the batch · classes² of checking a candidate Jacobian.
TEST_F(ServerVerifyTest, MaxVerifyWorkAppliesOnlyToCandidateJacobians) {
  auto server = ServerProcess::Start({"--max_verify_work=1000"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = Connect(**server);

  pb::VerifyGradientRequest big;  // 128000^2 is far over 1000, but no Jacobian is checked
  *big.mutable_logits() = Raw<float>({1, 128000}, RandomRow(128000, 2));
  *big.mutable_targets() = Labels({5});
  pb::VerifyGradientResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->VerifyGradient(&ctx, big, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.ok()) << resp.summary();

  // [1, 30]: 900 <= 1000, served; its Jacobian diag(a) - a a^T is right.
  const std::vector<float> z = RandomRow(30, 3);
  const std::vector<double> a = Softmax(z);
  std::vector<double> jacobian(30 * 30);
  for (int j = 0; j < 30; ++j) {
    for (int k = 0; k < 30; ++k) jacobian[j * 30 + k] = (j == k ? a[j] : 0.0) - a[j] * a[k];
  }
  pb::VerifyGradientRequest small;
  *small.mutable_logits() = Raw<float>({1, 30}, z);
  *small.mutable_targets() = Labels({2});
  *small.mutable_candidate_jacobian() = Raw<double>({1, 30, 30}, jacobian);
  grpc::ClientContext ctx2;
  s = stub->VerifyGradient(&ctx2, small, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.candidate_jacobian_ok()) << resp.summary();

  // [2, 30]: 1800 > 1000, refused before any work, naming the numbers and the flag.
  std::vector<float> z2 = z;
  z2.insert(z2.end(), z.begin(), z.end());
  jacobian.insert(jacobian.end(), jacobian.begin(), jacobian.end());
  pb::VerifyGradientRequest over;
  *over.mutable_logits() = Raw<float>({2, 30}, z2);
  *over.mutable_targets() = Labels({2, 2});
  *over.mutable_candidate_jacobian() = Raw<double>({2, 30, 30}, jacobian);
  grpc::ClientContext ctx3;
  s = stub->VerifyGradient(&ctx3, over, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("batch x classes^2 = 2 x 30^2 = 1800, over the limit of 1000 set by "
                                   "--max_verify_work"),
            std::string::npos)
      << s.error_message();
}

}  // namespace
}  // namespace gradserve
