// The `gradserve` binary end to end, against a real gradserve-server: every subcommand, every
// input format, JSON output parsed back, exit statuses and the messages of usage errors.
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "client/inputs.h"
#include "client/npy.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gradserve/v1/gradserve.pb.h"
#include "gtest/gtest.h"
#include "tests/cli_server_fixture.h"
#include "tests/client_test_util.h"
#include "tests/server_process.h"
#include "tests/test_certificates.h"

namespace gradserve::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::CliResult;
using testing::CliServerTest;
using testing::RunCli;
using testing::TestDataPath;
using testing::WriteTempFile;

template <typename Message>
Message ParseJson(const std::string& json) {
  Message m;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &m);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json;
  return m;
}

class ClientCliTest : public CliServerTest {
 protected:
  static void SetUpTestSuite() { StartServer(); }
};

TEST_F(ClientCliTest, VerifyMotivatingCaseExplainsJacobianAtLogitsAndExitsOne) {
  const CliResult r = Run({"verify", "--logits", "1.75,1.75", "--target-probs", "0,1", "--candidate", "6.125,2.625"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.out, HasSubstr("verdict: WRONG, the candidate gradient is wrong\n"));
  EXPECT_THAT(r.out, HasSubstr("finding JACOBIAN_AT_LOGITS"));
  EXPECT_THAT(r.out, HasSubstr("a = (0.5, 0.5) gives (0.5, -0.5) = a - t"));
  EXPECT_THAT(r.out, HasSubstr("right gradient (analytic_grad)  [2] float64\n"
                               "    class 0  class 1\n"
                               "        0.5     -0.5\n"));
  EXPECT_THAT(r.err, IsEmpty());
}

TEST_F(ClientCliTest, VerifyRightCandidateExitsZero) {
  const CliResult r = Run({"verify", "--logits", "1.75,1.75", "--target-probs", "0,1", "--candidate", "0.5,-0.5",
                           "--reduction", "sum", "--numeric-method", "central-difference"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("verdict: OK, the candidate is right"));
}

TEST_F(ClientCliTest, VerifyJsonParsesBackIntoTheResponse) {
  const CliResult r = Run({"--format=json", "verify", "--logits", "1.75,1.75", "--target-probs", "0,1",
                           "--candidate", "6.125,2.625"});
  ASSERT_EQ(r.exit_code, 1) << r.err;
  auto v = ParseJson<gradserve::v1::VerifyGradientResponse>(r.out);
  EXPECT_FALSE(v.ok());
  EXPECT_FALSE(v.candidate_ok());
  ASSERT_GE(v.findings_size(), 1);
  EXPECT_EQ(v.findings(0).code(), gradserve::v1::FINDING_CODE_JACOBIAN_AT_LOGITS);
  EXPECT_THAT(v.analytic_grad().values(), ElementsAre(0.5, -0.5));
  EXPECT_THAT(r.out, HasSubstr(R"("ok":false)"));
}

TEST_F(ClientCliTest, ForwardPrintsProbabilitiesAndLoss) {
  const CliResult r = Run({"forward", "--logits", "0,0;0,0", "--labels", "0,1", "--log-probs"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("probabilities  [2, 2] float64\n"
                               "         class 0  class 1\n"
                               "  row 0      0.5      0.5\n"));
  EXPECT_THAT(r.out, HasSubstr("log_probabilities  [2, 2] float64"));
  EXPECT_THAT(r.out, HasSubstr("loss  0.693147  float64\n"));
}

TEST_F(ClientCliTest, ForwardJsonInFloat32Values) {
  const CliResult r = Run({"forward", "--logits", "0,0", "--dtype", "f32", "--encoding", "values", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto f = ParseJson<gradserve::v1::ForwardResponse>(r.out);
  EXPECT_EQ(f.probabilities().dtype(), gradserve::v1::DATA_TYPE_FLOAT32);
  EXPECT_THAT(f.probabilities().values(), ElementsAre(0.5, 0.5));
  EXPECT_FALSE(f.has_loss());
}

TEST_F(ClientCliTest, BackwardChainRuleWithJacobianAndProbabilities) {
  const CliResult r = Run({"backward", "--logits", "1.75,1.75;0,0", "--target-probs", "0,1;1,0", "--method",
                           "chain-rule", "--jacobian", "--probs", "--format=json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto b = ParseJson<gradserve::v1::BackwardResponse>(r.out);
  EXPECT_THAT(b.grad_logits().values(), ElementsAre(0.25, -0.25, -0.25, 0.25));
  EXPECT_THAT(b.jacobian().shape(), ElementsAre(2, 2, 2));
  EXPECT_THAT(b.probabilities().values(), ElementsAre(0.5, 0.5, 0.5, 0.5));
  EXPECT_TRUE(b.has_grad_probabilities());
}

TEST_F(ClientCliTest, BackwardTableShowsEveryReturnedTensor) {
  const CliResult r = Run({"backward", "--logits", "1.75,1.75", "--target-probs", "0,1", "--jacobian"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("grad_logits  [2] float64\n    class 0  class 1\n        0.5     -0.5\n"));
  EXPECT_THAT(r.out, HasSubstr("jacobian  [2, 2] float64\n"));
}

TEST_F(ClientCliTest, BackwardVectorJacobianProduct) {
  const CliResult r = Run({"backward", "--logits", "1.75,1.75", "--grad-probs", "0,-2", "--format=json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto b = ParseJson<gradserve::v1::BackwardResponse>(r.out);
  EXPECT_THAT(b.grad_logits().values(), ElementsAre(0.5, -0.5));
}

TEST_F(ClientCliTest, ReadsCsvJsonAndNumpyFiles) {
  const std::string csv = WriteTempFile("logits.csv", "# two rows\n2,1,0.1\n0.5,2.5,0.3\n");
  const std::string json = WriteTempFile("probs.json", "[[1, 0, 0],\n [0, 1, 0]]");
  const CliResult from_csv = Run({"backward", "--logits", csv, "--target-probs", json, "--format=json"});
  const CliResult from_npy = Run({"backward", "--logits", TestDataPath("client_logits_2x3_f32.npy"), "--labels",
                                  TestDataPath("client_labels_i64.npy"), "--format=json"});
  ASSERT_EQ(from_csv.exit_code, 0) << from_csv.err;
  ASSERT_EQ(from_npy.exit_code, 0) << from_npy.err;
  auto a = ParseJson<gradserve::v1::BackwardResponse>(from_csv.out);
  auto b = ParseJson<gradserve::v1::BackwardResponse>(from_npy.out);
  EXPECT_THAT(a.grad_logits().shape(), ElementsAre(2, 3));
  ASSERT_EQ(a.grad_logits().values_size(), 6);
  ASSERT_EQ(b.grad_logits().values_size(), 6);
  // Same targets; the .npy logits are the float32 rounding of the CSV's.
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(a.grad_logits().values(i), b.grad_logits().values(i), 1e-7) << i;
}

TEST_F(ClientCliTest, MalformedNpyIsAUsageErrorNamingTheFile) {
  const std::string path = TestDataPath("client_truncated.npy");
  const CliResult r = Run({"forward", "--logits", path});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "gradserve: " + path + ": data is 20 bytes, shape (2, 3) of <f4 needs 24\n");
  EXPECT_THAT(r.out, IsEmpty());
}

TEST_F(ClientCliTest, BadCsvAndJsonNameFileLineAndColumn) {
  const std::string csv = WriteTempFile("bad.csv", "1,2\n3,oops\n");
  const std::string json = WriteTempFile("bad.json", "[[1, 2],\n [3 4]]");
  const CliResult a = Run({"forward", "--logits", csv});
  const CliResult b = Run({"forward", "--logits", json});
  EXPECT_EQ(a.exit_code, 2);
  EXPECT_THAT(a.err, HasSubstr(csv + ":2:3: expected a number, found \"oops\""));
  EXPECT_EQ(b.exit_code, 2);
  EXPECT_THAT(b.err, HasSubstr(json + ":2:5: syntax error while parsing array"));
}

TEST_F(ClientCliTest, OutputWritesNpyAndCsv) {
  const std::string npy = WriteTempFile("grad.npy", "");
  const std::string csv = WriteTempFile("jac.csv", "");
  const CliResult a = Run({"backward", "--logits", "1.75,1.75;0,0", "--labels", "1,0", "--output", npy});
  const CliResult b = Run({"backward", "--logits", "1.75,1.75", "--labels", "1", "--jacobian", "--output", csv,
                           "--output-field", "jacobian"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto grad = ReadTensorArg("--logits", npy);
  auto jac = ReadTensorArg("--logits", csv);
  CLIENT_ASSERT_OK(grad);
  CLIENT_ASSERT_OK(jac);
  EXPECT_THAT(grad->shape, ElementsAre(2, 2));
  EXPECT_THAT(grad->values, ElementsAre(0.25, -0.25, -0.25, 0.25));
  EXPECT_THAT(jac->values, ElementsAre(0.25, -0.25, -0.25, 0.25));
}

TEST_F(ClientCliTest, HealthSaysServing) {
  const CliResult table = Run({"health"});
  const CliResult json = Run({"health", "--service", "gradserve.v1.GradientService", "--format=json"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out, "server: SERVING\n");
  EXPECT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(json.out, "{\"status\":\"SERVING\"}\n");
}

TEST_F(ClientCliTest, ServerRefusalOfTheInputExitsTwoWithCodeAndMessage) {
  const CliResult r = Run({"backward", "--logits", "1,2,3", "--labels", "5"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("gradserve: Backward failed: INVALID_ARGUMENT: "));
  EXPECT_THAT(r.out, IsEmpty());
}

TEST_F(ClientCliTest, UnreachableServerExitsThree) {
  const CliResult r = RunCli({"--target=127.0.0.1:1", "--timeout=2", "health"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("Health/Check failed: UNAVAILABLE: "));
}

TEST_F(ClientCliTest, RoundRobinTargetsReachTheServer) {
  const std::string port = server_->address().substr(server_->address().rfind(':') + 1);
  for (const std::string& target : {"ipv4:127.0.0.1:" + port + ",127.0.0.1:" + port, "dns:///127.0.0.1:" + port}) {
    const CliResult r = RunCli({"--target=" + target, "health"});
    EXPECT_EQ(r.exit_code, 0) << target << ": " << r.err;
  }
}

TEST_F(ClientCliTest, UsageErrorsExitTwoWithTheirMessage) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, "usage: gradserve [global flags] COMMAND [flags]"},
      {{"frobnicate"}, "gradserve: unknown command \"frobnicate\""},
      {{"verify", "--logit", "1"}, "gradserve: unknown flag --logit"},
      {{"health", "--logits", "1"}, "gradserve: --logits is not a flag of health (gradserve health --help)"},
      {{"forward", "--logits", "1", "--reduction=avg"}, "gradserve: --reduction=avg: expected mean, sum or none"},
      {{"forward"}, "gradserve: --logits is required"},
      {{"verify", "--logits", "1,2"}, "gradserve: targets are required: give --labels or --target-probs"},
      {{"forward", "--logits", "1,x"}, "gradserve: --logits \"1,x\": column 3: expected a number, found \"x\""},
      {{"bench", "--shape", "10"}, "gradserve: --shape=10: expected BATCH,CLASSES, e.g. 64,1000"},
      {{"bench", "--concurrency=lots"}, "gradserve: --concurrency=lots: "},
      {{"forward", "--logits", "1", "--output", "p.txt"}, "gradserve: --output p.txt: name a .npy or .csv file"},
      {{"verify", "extra"}, "gradserve: unexpected argument \"extra\""},
  };
  for (const Case& c : cases) {
    const CliResult r = Run(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.message;
    EXPECT_THAT(r.err, HasSubstr(c.message));
    EXPECT_THAT(r.out, IsEmpty()) << c.message;
  }
}

TEST_F(ClientCliTest, HelpGoesToStdoutAndExitsZero) {
  const CliResult main_help = RunCli({"--help"});
  const CliResult verify_help = RunCli({"verify", "--help"});
  EXPECT_EQ(main_help.exit_code, 0);
  EXPECT_THAT(main_help.out, HasSubstr("commands:\n  backward"));
  EXPECT_EQ(verify_help.exit_code, 0);
  EXPECT_THAT(verify_help.out, HasSubstr("--candidate-jacobian"));
  EXPECT_THAT(verify_help.out, HasSubstr("--target=127.0.0.1:50051"));
}

TEST_F(ClientCliTest, BenchJsonIsASaneObject) {
  const CliResult r = Run({"bench", "--requests", "200", "--format=json", "--shape", "8,100", "--dtype", "f32"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, IsEmpty());  // no progress line: stderr is not a terminal
  auto o = ParseJson<google::protobuf::Struct>(r.out);
  const auto& f = o.fields();
  EXPECT_EQ(f.at("rpc").string_value(), "backward");
  EXPECT_EQ(f.at("requests").number_value(), 200);
  EXPECT_EQ(f.at("errors").number_value(), 0);
  EXPECT_GT(f.at("qps").number_value(), 0);
  const auto& latency = f.at("latency_ms").struct_value().fields();
  EXPECT_GT(latency.at("p50").number_value(), 0);
  EXPECT_LE(latency.at("p50").number_value(), latency.at("p90").number_value());
  EXPECT_LE(latency.at("p90").number_value(), latency.at("p99").number_value());
  EXPECT_LE(latency.at("p99").number_value(), latency.at("max").number_value());
  EXPECT_NEAR(f.at("logits_bytes_per_s").number_value(), f.at("qps").number_value() * 8 * 100 * 4,
              f.at("logits_bytes_per_s").number_value() * 1e-3);
}

TEST_F(ClientCliTest, BenchEveryRpc) {
  for (const char* rpc : {"forward", "verify", "stream", "health"}) {
    const CliResult r = Run({"bench", "--rpc", rpc, "--requests", "50", "--concurrency", "4"});
    EXPECT_EQ(r.exit_code, 0) << rpc << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr("requests     50 in ")) << rpc;
  }
}

TEST(ClientCliTokenTest, TokenFromFlagOrEnvironment) {
  const std::string token_file = WriteTempFile("token", "s3cret\n");
  auto server = gradserve::testing::ServerProcess::Start({"--token_file=" + token_file});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string target = "--target=" + (*server)->address();
  const std::vector<std::string> call = {target, "forward", "--logits", "1,2"};
  const CliResult without = RunCli(call);
  EXPECT_EQ(without.exit_code, 2);  // a missing token is the caller's to fix: do not retry
  EXPECT_THAT(without.err, HasSubstr("UNAUTHENTICATED"));
  std::vector<std::string> with_flag = call;
  with_flag.push_back("--token=s3cret");
  EXPECT_EQ(RunCli(with_flag).exit_code, 0);
  EXPECT_EQ(RunCli(call, {"GRADSERVE_TOKEN=s3cret"}).exit_code, 0);
  // Health answers without a token, as Kubernetes probes need.
  EXPECT_EQ(RunCli({target, "health"}).exit_code, 0);
}

TEST(ClientCliTlsTest, MutualTlsNeedsTheCaAndAClientCertificate) {
  const gradserve::testing::Certificates certs;
  ASSERT_TRUE(certs.ok()) << "openssl failed";
  auto server = gradserve::testing::ServerProcess::Start(
      {"--tls_cert=" + certs.Path("server.pem"), "--tls_key=" + certs.Path("server.key"),
       "--tls_client_ca=" + certs.Path("ca.pem")});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string target = "--target=" + (*server)->address();
  const std::vector<std::string> forward = {"forward", "--logits", "1.75,1.75"};
  auto with = [&](std::vector<std::string> flags) {
    flags.insert(flags.begin(), target);
    flags.insert(flags.end(), forward.begin(), forward.end());
    return RunCli(flags);
  };
  const CliResult mutual = with({"--tls_ca=" + certs.Path("ca.pem"), "--tls_cert=" + certs.Path("client.pem"),
                                 "--tls_key=" + certs.Path("client.key")});
  EXPECT_EQ(mutual.exit_code, 0) << mutual.err;
  EXPECT_THAT(mutual.out, HasSubstr("0.5"));
  EXPECT_EQ(with({"--tls_ca=" + certs.Path("ca.pem")}).exit_code, 3);  // no client certificate
  EXPECT_EQ(with({}).exit_code, 3);                                     // plaintext
  const CliResult half = with({"--tls_cert=" + certs.Path("client.pem")});
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_THAT(half.err, HasSubstr("--tls_cert and --tls_key go together"));
}

}  // namespace
}  // namespace gradserve::client
