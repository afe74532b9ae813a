// What the `gradserve` binary says when something is off, against real servers: exit statuses
// by who is at fault, hints for TLS mismatches, missing files, CSV headers, --version, and
// --format=json leaving out the tensor --output wrote.
#include <string>
#include <vector>

#include "base/version.h"
#include "client/inputs.h"
#include "client/npy.h"
#include "gmock/gmock.h"
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
using ::testing::Not;
using testing::CliResult;
using testing::CliServerTest;
using testing::RunCli;
using testing::WriteTempFile;

TEST(ClientCliVersionTest, PrintsTheProjectVersion) {
  const CliResult r = RunCli({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  // The commit is taken at configure time; the binary may have been built at another one.
  EXPECT_THAT(r.out, ::testing::MatchesRegex(std::string("gradserve ") + gradserve::kVersion +
                                             "( \\(commit [0-9a-f]+\\))?\n"));
  EXPECT_THAT(std::string(gradserve::kVersion), ::testing::MatchesRegex("[0-9]+\\.[0-9]+\\.[0-9]+"));
  EXPECT_THAT(RunCli({"--help"}).out, HasSubstr("--version"));
}

TEST(ClientCliTlsHintTest, PlaintextToTlsAndTlsToPlaintextSayWhy) {
  const gradserve::testing::Certificates certs;
  ASSERT_TRUE(certs.ok()) << "openssl failed";
  auto tls = gradserve::testing::ServerProcess::Start(
      {"--tls_cert=" + certs.Path("server.pem"), "--tls_key=" + certs.Path("server.key")});
  auto plain = gradserve::testing::ServerProcess::Start();
  ASSERT_TRUE(tls.ok()) << tls.status();
  ASSERT_TRUE(plain.ok()) << plain.status();
  const std::vector<std::string> call = {"--timeout=5", "forward", "--logits", "1,2"};
  auto run = [&](const std::string& target, std::vector<std::string> flags) {
    flags.insert(flags.begin(), "--target=" + target);
    flags.insert(flags.end(), call.begin(), call.end());
    return RunCli(flags);
  };
  const CliResult plaintext = run((*tls)->address(), {});
  EXPECT_EQ(plaintext.exit_code, 3);
  EXPECT_THAT(plaintext.err, HasSubstr("Forward failed: UNAVAILABLE: "));
  EXPECT_THAT(plaintext.err, HasSubstr("\nhint: the server closed the connection: is the server using TLS? "
                                       "try --tls or --tls_ca\n"));
  EXPECT_THAT(plaintext.err, Not(HasSubstr("Handshake failed")));  // gRPC's own log stays quiet
  const CliResult to_plain = run((*plain)->address(), {"--tls_ca=" + certs.Path("ca.pem")});
  EXPECT_EQ(to_plain.exit_code, 3);
  EXPECT_THAT(to_plain.err, HasSubstr("hint: the server does not speak TLS"));
  // The right flags work, and carry no hint.
  const CliResult right = run((*tls)->address(), {"--tls_ca=" + certs.Path("ca.pem")});
  EXPECT_EQ(right.exit_code, 0) << right.err;
  // An unreachable server is not a TLS problem.
  const CliResult refused = run("127.0.0.1:1", {});
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_THAT(refused.err, Not(HasSubstr("hint:")));
}

class ClientCliMessagesTest : public CliServerTest {
 protected:
  // A 1 MiB message limit makes RESOURCE_EXHAUSTED cheap to provoke.
  static void SetUpTestSuite() { StartServer({"--max_message_mib=1"}); }
};

TEST_F(ClientCliMessagesTest, ExitTwoForWrongInputThreeForAFailedCall) {
  const CliResult bad = Run({"verify", "--logits", "1,2", "--labels", "7"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("VerifyGradient failed: INVALID_ARGUMENT: "));
  // 2 MiB of float64 logits: over the server's limit, RESOURCE_EXHAUSTED, which may pass later
  // (another server, another limit): 3.
  const HostTensor big{{256, 1024}, std::vector<double>(256 * 1024, 0.5)};
  const std::string npy = WriteTempFile("big.npy", EncodeNpy(big, gradserve::v1::DATA_TYPE_FLOAT64));
  const CliResult over = Run({"verify", "--logits", npy, "--labels", "0"});
  EXPECT_EQ(over.exit_code, 3);
  EXPECT_THAT(over.err, HasSubstr("RESOURCE_EXHAUSTED"));
  const CliResult help = RunCli({"--help"});
  EXPECT_THAT(help.out, HasSubstr("2 the input is wrong"));
  EXPECT_THAT(help.out, HasSubstr("3 the call failed"));
}

TEST_F(ClientCliMessagesTest, MissingFilesAndUnknownExtensionsAreNamed) {
  const CliResult missing = Run({"forward", "--logits", "z.txt"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_EQ(missing.err, "gradserve: --logits z.txt: no such file (give inline numbers like 1,2;3,4 or a .csv, "
                         ".json or .npy file)\n");
  const std::string txt = WriteTempFile("logits.txt", "1,2\n");
  const CliResult unknown = Run({"forward", "--logits", txt});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("the known extensions are .csv, .json and .npy"));
}

TEST_F(ClientCliMessagesTest, CsvWithAPandasHeaderIsRead) {
  // pandas.DataFrame(z).to_csv(): a header with the index column, and the index on each row.
  const std::string csv = WriteTempFile("pandas.csv", ",0,1\n0,1.75,1.75\n1,0,0\n");
  const CliResult r = Run({"backward", "--logits", csv, "--labels", "1,0", "--format=json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  gradserve::v1::BackwardResponse b;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &b).ok()) << r.out;
  EXPECT_THAT(b.grad_logits().shape(), ElementsAre(2, 2));
  EXPECT_THAT(b.grad_logits().values(), ElementsAre(0.25, -0.25, -0.25, 0.25));
  EXPECT_THAT(RunCli({"forward", "--help"}).out, HasSubstr("is a header and is skipped"));
}

TEST_F(ClientCliMessagesTest, JsonWithOutputLeavesTheWrittenTensorOut) {
  const std::string npy = WriteTempFile("g.npy", "");
  const CliResult r = Run({"--format=json", "backward", "--logits", "1.75,1.75;0,0", "--labels", "1,0",
                           "--probs", "--output", npy});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("grad_logits")));
  gradserve::v1::BackwardResponse b;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &b).ok()) << r.out;
  EXPECT_FALSE(b.has_grad_logits());
  EXPECT_THAT(b.probabilities().values(), ElementsAre(0.5, 0.5, 0.5, 0.5));
  EXPECT_EQ(b.reduction_denominator(), 2);
  auto grad = ReadTensorArg("--logits", npy);
  CLIENT_ASSERT_OK(grad);
  EXPECT_THAT(grad->values, ElementsAre(0.25, -0.25, -0.25, 0.25));
}

}  // namespace
}  // namespace gradserve::client
