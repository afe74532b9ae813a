// The command line: flag forms, errors that become exit status 2 instead of absl's exit(1), and
// the words enum flags take.
#include "absl/flags/flag.h"
#include "client/cli_args.h"
#include "client/option_values.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client_test_util.h"

ABSL_FLAG(std::string, logits, "", "logits");
ABSL_FLAG(std::string, target_probs, "", "targets");
ABSL_FLAG(bool, jacobian, false, "jacobian");
ABSL_FLAG(int32_t, concurrency, 8, "callers");

namespace gradserve::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::set<std::string> kKnown = {"logits", "target_probs", "jacobian", "concurrency"};

absl::StatusOr<CommandLine> Parse(std::vector<const char*> args) {
  absl::SetFlag(&FLAGS_logits, "");
  absl::SetFlag(&FLAGS_target_probs, "");
  absl::SetFlag(&FLAGS_jacobian, false);
  absl::SetFlag(&FLAGS_concurrency, 8);
  args.insert(args.begin(), "gradserve");
  return ParseCommandLine(static_cast<int>(args.size()), args.data(), kKnown);
}

TEST(ClientParseCommandLineTest, ReadsEveryFlagFormAndDashedNames) {
  auto cl = Parse({"verify", "--logits", "-1.5,2", "--target-probs=0,1", "--jacobian", "--concurrency", "3"});
  CLIENT_ASSERT_OK(cl);
  EXPECT_THAT(cl->positional, ElementsAre("verify"));
  EXPECT_THAT(cl->flags, ElementsAre("logits", "target_probs", "jacobian", "concurrency"));
  EXPECT_EQ(absl::GetFlag(FLAGS_logits), "-1.5,2");  // a value may start with '-'
  EXPECT_EQ(absl::GetFlag(FLAGS_target_probs), "0,1");
  EXPECT_TRUE(absl::GetFlag(FLAGS_jacobian));
  EXPECT_EQ(absl::GetFlag(FLAGS_concurrency), 3);
}

TEST(ClientParseCommandLineTest, NoPrefixTurnsABoolOff) {
  auto cl = Parse({"--jacobian", "--nojacobian", "backward"});
  CLIENT_ASSERT_OK(cl);
  EXPECT_FALSE(absl::GetFlag(FLAGS_jacobian));
}

TEST(ClientParseCommandLineTest, HelpInAnyForm) {
  for (const char* word : {"help", "-h", "--help"}) {
    auto cl = Parse({word});
    CLIENT_ASSERT_OK(cl);
    EXPECT_TRUE(cl->help) << word;
  }
  auto cl = Parse({"verify", "--help"});
  CLIENT_ASSERT_OK(cl);
  EXPECT_TRUE(cl->help);
  EXPECT_THAT(cl->positional, ElementsAre("verify"));
}

TEST(ClientParseCommandLineTest, UnknownFlagIsAnError) {
  auto cl = Parse({"verify", "--logit", "1"});
  ASSERT_FALSE(cl.ok());
  EXPECT_EQ(cl.status().message(), "unknown flag --logit");
  // Abseil's own flags are not ours.
  EXPECT_FALSE(Parse({"--flagfile=/etc/passwd"}).ok());
}

TEST(ClientParseCommandLineTest, BadValueAndMissingValueAreErrors) {
  auto bad = Parse({"bench", "--concurrency=many"});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("--concurrency=many: "));
  auto missing = Parse({"verify", "--logits"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "--logits needs a value");
}

TEST(ClientParseCommandLineTest, DoubleDashEndsTheFlags) {
  auto cl = Parse({"verify", "--", "--logits"});
  CLIENT_ASSERT_OK(cl);
  EXPECT_THAT(cl->positional, ElementsAre("verify", "--logits"));
}

TEST(ClientFlagsHelpTest, ListsDashedNamesWithDefaults) {
  const std::string help = FlagsHelp({"target_probs", "concurrency", "jacobian"});
  EXPECT_THAT(help, HasSubstr("  --target-probs   targets\n"));
  EXPECT_THAT(help, HasSubstr("  --concurrency=8  callers\n"));
  EXPECT_THAT(help, HasSubstr("  --jacobian       jacobian\n"));
}

TEST(ClientOptionValuesTest, EnumsAcceptTheirWords) {
  EXPECT_EQ(*ParseReduction("SUM"), gradserve::v1::REDUCTION_SUM);
  EXPECT_EQ(*ParseReduction(""), gradserve::v1::REDUCTION_UNSPECIFIED);
  EXPECT_EQ(*ParseMethod("chain_rule"), gradserve::v1::METHOD_CHAIN_RULE);
  EXPECT_EQ(*ParseNumericMethod("central-difference"), gradserve::v1::NUMERIC_METHOD_CENTRAL_DIFFERENCE);
  EXPECT_EQ(*ParseDataType("float32"), gradserve::v1::DATA_TYPE_FLOAT32);
  EXPECT_EQ(*ParseDataType("f16"), gradserve::v1::DATA_TYPE_FLOAT16);
  EXPECT_EQ(*ParseDataType("BF16"), gradserve::v1::DATA_TYPE_BFLOAT16);
  EXPECT_EQ(*ParseDataType(""), gradserve::v1::DATA_TYPE_UNSPECIFIED);  // the input's own
  EXPECT_EQ(*ParseEncoding("values"), Encoding::kValues);
  EXPECT_EQ(*ParseBenchRpc("stream"), BenchRpc::kStream);
  EXPECT_EQ(*ParseOutputFormat("json"), OutputFormat::kJson);
}

TEST(ClientOptionValuesTest, ErrorsListTheChoices) {
  EXPECT_EQ(ParseReduction("avg").status().message(), "--reduction=avg: expected mean, sum or none");
  EXPECT_EQ(ParseDataType("f8").status().message(),
            "--dtype=f8: expected f16, float16, bf16, bfloat16, f32, float32, f64 or float64");
}

TEST(ClientOptionValuesTest, ShapesAndDurations) {
  EXPECT_EQ(*ParseShape("64,1000"), std::make_pair(int64_t{64}, int64_t{1000}));
  EXPECT_EQ(*ParseShape("8x10"), std::make_pair(int64_t{8}, int64_t{10}));
  EXPECT_FALSE(ParseShape("0,10").ok());
  EXPECT_FALSE(ParseShape("64").ok());
  EXPECT_EQ(*ParseSeconds("timeout", "2.5"), absl::Milliseconds(2500));
  EXPECT_EQ(*ParseSeconds("timeout", "500ms"), absl::Milliseconds(500));
  EXPECT_EQ(ParseSeconds("duration", "-1").status().message(), "--duration=-1: must not be negative");
  EXPECT_FALSE(ParseSeconds("duration", "soon").ok());
}

}  // namespace
}  // namespace gradserve::client
