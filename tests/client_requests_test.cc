// Requests built from what the user typed: shapes fitted, tensors encoded in the chosen dtype and
// encoding, and the usage errors that stop a call before it is sent.
#include "client/requests.h"
#include "client/tensor_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client_test_util.h"

namespace gradserve::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<double> Values(const gradserve::v1::Tensor& t) {
  auto host = DecodeTensor(t);
  EXPECT_TRUE(host.ok()) << host.status();
  return host.ok() ? host->values : std::vector<double>{};
}

TEST(ClientBuildVerifyRequestTest, MotivatingCase) {
  VerifyInputs in;
  in.loss.logits = "1.75,1.75";
  in.loss.target_probs = "0,1";
  in.candidate = "6.125,2.625";
  auto r = BuildVerifyRequest(in);
  CLIENT_ASSERT_OK(r);
  EXPECT_THAT(r->logits().shape(), ElementsAre(2));
  EXPECT_EQ(r->logits().dtype(), gradserve::v1::DATA_TYPE_FLOAT64);
  EXPECT_THAT(Values(r->logits()), ElementsAre(1.75, 1.75));
  EXPECT_THAT(Values(r->targets().probabilities()), ElementsAre(0, 1));
  EXPECT_THAT(Values(r->candidate_grad()), ElementsAre(6.125, 2.625));
  EXPECT_FALSE(r->has_candidate_jacobian());
}

TEST(ClientBuildVerifyRequestTest, CandidateJacobianRowsBecomeOneMatrixPerRow) {
  VerifyInputs in;
  in.loss.logits = "1,2;3,4";
  in.loss.labels = "0,1";
  in.candidate_jacobian = "1,0;0,1;1,0;0,1";
  auto r = BuildVerifyRequest(in);
  CLIENT_ASSERT_OK(r);
  EXPECT_THAT(r->candidate_jacobian().shape(), ElementsAre(2, 2, 2));
}

TEST(ClientBuildVerifyRequestTest, TargetsAreRequired) {
  VerifyInputs in;
  in.loss.logits = "1,2";
  EXPECT_EQ(BuildVerifyRequest(in).status().message(), "targets are required: give --labels or --target-probs");
}

TEST(ClientBuildForwardRequestTest, Float32ValuesAndOptions) {
  ForwardInputs in;
  in.loss.logits = "1,2;3,4";
  in.loss.labels = "1,0";
  in.loss.weights = "1,2";
  in.loss.reduction = gradserve::v1::REDUCTION_SUM;
  in.loss.label_smoothing = 0.1;
  in.loss.ignore_index = 0;
  in.loss.format = {gradserve::v1::DATA_TYPE_FLOAT32, Encoding::kValues};
  in.log_probabilities = true;
  auto r = BuildForwardRequest(in);
  CLIENT_ASSERT_OK(r);
  EXPECT_EQ(r->logits().dtype(), gradserve::v1::DATA_TYPE_FLOAT32);
  EXPECT_THAT(r->logits().values(), ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(r->targets().class_indices().values(), ElementsAre(1, 0));
  EXPECT_THAT(r->options().class_weights(), ElementsAre(1, 2));
  EXPECT_EQ(r->options().reduction(), gradserve::v1::REDUCTION_SUM);
  EXPECT_EQ(r->options().label_smoothing(), 0.1);
  EXPECT_TRUE(r->options().has_ignore_index());
  EXPECT_TRUE(r->return_log_probabilities());
}

TEST(ClientBuildForwardRequestTest, TargetsAreOptionalButNotBoth) {
  ForwardInputs in;
  in.loss.logits = "1,2";
  CLIENT_EXPECT_OK(BuildForwardRequest(in));
  in.loss.labels = "1";
  in.loss.target_probs = "0,1";
  EXPECT_EQ(BuildForwardRequest(in).status().message(), "give --labels or --target-probs, not both");
}

TEST(ClientBuildBackwardRequestTest, TargetProbsTakeTheLogitsShape) {
  BackwardInputs in;
  in.loss.logits = "1,2;";  // [1, 2]
  in.loss.target_probs = "0,1";
  in.method = gradserve::v1::METHOD_CHAIN_RULE;
  in.jacobian = true;
  auto r = BuildBackwardRequest(in);
  CLIENT_ASSERT_OK(r);
  EXPECT_THAT(r->targets().probabilities().shape(), ElementsAre(1, 2));
  EXPECT_EQ(r->method(), gradserve::v1::METHOD_CHAIN_RULE);
  EXPECT_TRUE(r->return_jacobian());
  EXPECT_FALSE(r->has_options());  // nothing set, nothing sent
}

TEST(ClientBuildBackwardRequestTest, GradProbsReplaceTargets) {
  BackwardInputs in;
  in.loss.logits = "1,2";
  in.grad_probs = "0,-2";
  auto r = BuildBackwardRequest(in);
  CLIENT_ASSERT_OK(r);
  EXPECT_FALSE(r->has_targets());
  EXPECT_FALSE(r->has_options());  // the contract refuses any options with grad_probabilities
  EXPECT_THAT(Values(r->grad_probabilities()), ElementsAre(0, -2));
  in.loss.labels = "1";
  EXPECT_THAT(BuildBackwardRequest(in).status().message(), HasSubstr("not both"));
}

TEST(ClientBuildBackwardRequestTest, GradLossIsScalarOrOnePerRow) {
  BackwardInputs in;
  in.loss.logits = "1,2;3,4";
  in.loss.labels = "0,1";
  in.grad_loss = "2";
  auto mean = BuildBackwardRequest(in);
  CLIENT_ASSERT_OK(mean);
  EXPECT_TRUE(mean->grad_loss().shape().empty());
  in.loss.reduction = gradserve::v1::REDUCTION_NONE;
  in.grad_loss = "1,3";
  auto none = BuildBackwardRequest(in);
  CLIENT_ASSERT_OK(none);
  EXPECT_THAT(none->grad_loss().shape(), ElementsAre(2));
}

TEST(ClientBuildBackwardRequestTest, LogitsAreRequiredAndErrorsNameTheFlag) {
  BackwardInputs in;
  EXPECT_EQ(BuildBackwardRequest(in).status().message(), "--logits is required");
  in.loss.logits = "1,2";
  in.loss.labels = "one";
  EXPECT_EQ(BuildBackwardRequest(in).status().message(),
            "--labels \"one\": column 1: expected a number, found \"one\"");
}

}  // namespace
}  // namespace gradserve::client
