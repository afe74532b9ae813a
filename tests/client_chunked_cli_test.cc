// Batches sent in chunks (client/chunked.h) give what one call gives, against the real server:
// the same command is run whole and with a tiny --chunk-mib, and the responses compared, for
// class indices with weights, ignore_index and label smoothing, probability targets, every
// reduction, grad_loss, the chain rule, the VJP, Forward, and torch's NaN cases.
#include <algorithm>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "client/chunk_plan.h"
#include "client/inputs.h"
#include "client/npy.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gradserve/v1/gradserve.pb.h"
#include "gtest/gtest.h"
#include "tests/cli_server_fixture.h"
#include "tests/client_test_util.h"
#include "tests/server_process.h"

namespace gradserve::client {
namespace {

using gradserve::v1::BackwardResponse;
using gradserve::v1::ForwardResponse;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::CliResult;
using testing::CliServerTest;
using testing::RunCli;
using testing::WriteTempFile;

constexpr int64_t kRows = 64, kClasses = 200;
// 1/64 MiB: [64, 200] float64 goes in 7 to 14 chunks.
const char kSmallChunks[] = "--chunk-mib=0.015625";

std::string Npy(const std::string& name, const HostTensor& t) { return WriteTempFile(name, EncodeNpy(t, t.dtype)); }

class ClientChunkedCliTest : public CliServerTest {
 protected:
  static void SetUpTestSuite() {
    StartServer();
    std::mt19937_64 rng(5);
    std::normal_distribution<double> normal(0, 2);
    HostTensor z{{kRows, kClasses}, {}}, p{{kRows, kClasses}, {}}, y{{kRows}, {}};
    for (int64_t i = 0; i < kRows * kClasses; ++i) z.values.push_back(normal(rng));
    for (int64_t r = 0; r < kRows; ++r) {
      double sum = 0;
      for (int64_t c = 0; c < kClasses; ++c) sum += (p.values.emplace_back(std::exp(normal(rng))));
      for (int64_t c = 0; c < kClasses; ++c) p.values[r * kClasses + c] /= sum;
      y.values.push_back(static_cast<double>(rng() % kClasses));
    }
    y.values[3] = y.values[40] = 7;  // rows for --ignore-index 7 in two chunks
    logits_ = new std::string(Npy("z.npy", z));
    HostTensor z32 = z;
    z32.dtype = gradserve::v1::DATA_TYPE_FLOAT32;
    logits32_ = new std::string(Npy("z32.npy", z32));
    probs_ = new std::string(Npy("p.npy", p));
    labels_ = new std::string(Npy("y.npy", y));
    std::string w;
    for (int64_t c = 0; c < kClasses; ++c) w += (c ? "," : "") + std::to_string(0.5 + (c % 5) * 0.25);
    weights_ = new std::string(WriteTempFile("w.csv", w + "\n"));
  }
  // Runs `args` whole and in small chunks (as JSON) and returns both responses.
  template <typename Response>
  static void RunBoth(std::vector<std::string> args, Response* whole, Response* chunked) {
    args.insert(args.begin(), {"--target=" + server_->address(), "--format=json"});
    const CliResult a = RunCli(args);
    args.push_back(kSmallChunks);
    const CliResult b = RunCli(args);
    ASSERT_EQ(a.exit_code, 0) << a.err;
    ASSERT_EQ(b.exit_code, 0) << b.err;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(a.out, whole).ok()) << a.out;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(b.out, chunked).ok()) << b.out;
  }

  static std::string *logits_, *logits32_, *probs_, *labels_, *weights_;
};
std::string *ClientChunkedCliTest::logits_, *ClientChunkedCliTest::logits32_, *ClientChunkedCliTest::probs_,
    *ClientChunkedCliTest::labels_, *ClientChunkedCliTest::weights_;

// Same values (NaN where NaN) within `rel`: the server's kernels may round a row differently by
// where it falls in the batch (seen: 1 ulp), and the loss is summed in another order.
void ExpectSameTensor(const gradserve::v1::Tensor& a, const gradserve::v1::Tensor& b, double rel, const char* what) {
  ASSERT_EQ(a.shape_size(), b.shape_size()) << what;
  for (int i = 0; i < a.shape_size(); ++i) EXPECT_EQ(a.shape(i), b.shape(i)) << what;
  EXPECT_EQ(a.dtype(), b.dtype()) << what;
  ASSERT_EQ(a.values_size(), b.values_size()) << what;
  double scale = 0;  // errors are relative to the tensor's largest element, as docs/api.md's bounds
  for (double v : a.values()) scale = std::isfinite(v) ? std::max(scale, std::fabs(v)) : scale;
  for (int i = 0; i < a.values_size(); ++i) {
    if (std::isnan(a.values(i))) {
      EXPECT_TRUE(std::isnan(b.values(i))) << what << " " << i;
    } else {
      ASSERT_NEAR(a.values(i), b.values(i), rel * scale) << what << " " << i;
    }
  }
}

void ExpectSame(const BackwardResponse& a, const BackwardResponse& b, double loss_rel = 1e-12) {
  const double ulps = a.grad_logits().dtype() == gradserve::v1::DATA_TYPE_FLOAT32 ? 4 * 0x1p-23 : 4 * 0x1p-52;
  ExpectSameTensor(a.grad_logits(), b.grad_logits(), ulps, "grad_logits");
  ExpectSameTensor(a.loss(), b.loss(), loss_rel, "loss");
  ExpectSameTensor(a.probabilities(), b.probabilities(), ulps, "probabilities");
  ExpectSameTensor(a.grad_probabilities(), b.grad_probabilities(), ulps, "grad_probabilities");
  EXPECT_EQ(a.reduction_denominator(), b.reduction_denominator());
}

TEST_F(ClientChunkedCliTest, ClassIndicesWithEveryOptionAndReduction) {
  for (const char* reduction : {"mean", "sum", "none"}) {
    for (const std::string& logits : {*logits_, *logits32_}) {
      BackwardResponse whole, chunked;
      RunBoth({"backward", "--logits", logits, "--labels", *labels_, "--weights", *weights_, "--ignore-index", "7",
               "--label-smoothing", "0.1", "--reduction", reduction},
              &whole, &chunked);
      SCOPED_TRACE(std::string(reduction) + " " + logits);
      ExpectSame(whole, chunked, logits == *logits_ ? 1e-12 : 1e-6);
      EXPECT_EQ(whole.grad_logits().values_size(), kRows * kClasses);
    }
  }
}

TEST_F(ClientChunkedCliTest, ProbabilityTargetsAndGradLoss) {
  for (const char* reduction : {"mean", "sum"}) {
    BackwardResponse whole, chunked;
    RunBoth({"backward", "--logits", *logits_, "--target-probs", *probs_, "--label-smoothing", "0.2",
             "--reduction", reduction, "--grad-loss", "0.75"},
            &whole, &chunked);
    SCOPED_TRACE(reduction);
    ExpectSame(whole, chunked);
  }
  std::string per_row;
  for (int64_t r = 0; r < kRows; ++r) per_row += (r ? "," : "") + std::to_string(r % 3 - 1);
  BackwardResponse whole, chunked;
  RunBoth({"backward", "--logits", *logits_, "--target-probs", *probs_, "--reduction", "none", "--grad-loss", per_row},
          &whole, &chunked);
  ExpectSame(whole, chunked);
}

TEST_F(ClientChunkedCliTest, ChainRuleWithProbabilitiesAndTheVjp) {
  BackwardResponse whole, chunked;
  RunBoth({"backward", "--logits", *logits_, "--labels", *labels_, "--method", "chain-rule", "--probs"}, &whole,
          &chunked);
  ExpectSame(whole, chunked);
  EXPECT_EQ(chunked.probabilities().values_size(), kRows * kClasses);
  BackwardResponse vjp_whole, vjp_chunked;
  RunBoth({"backward", "--logits", *logits_, "--grad-probs", *probs_}, &vjp_whole, &vjp_chunked);
  ExpectSame(vjp_whole, vjp_chunked);
}

TEST_F(ClientChunkedCliTest, TorchNanCases) {
  // Every row ignored: NaN loss, zero gradient.
  const std::string all_seven = Npy("y7.npy", HostTensor{{kRows}, std::vector<double>(kRows, 7)});
  BackwardResponse whole, chunked;
  RunBoth({"backward", "--logits", *logits_, "--labels", all_seven, "--ignore-index", "7"}, &whole, &chunked);
  ExpectSame(whole, chunked);
  EXPECT_TRUE(std::isnan(chunked.loss().values(0)));
  for (double g : chunked.grad_logits().values()) ASSERT_EQ(g, 0);
  // Zero weight sum over the rows that count: NaN loss, NaN rows, zero ignored rows.
  std::vector<double> y(kRows, 1);
  y[5] = y[50] = 7;
  std::string w = "1,0";
  for (int64_t c = 2; c < kClasses; ++c) w += ",1";
  BackwardResponse zw_whole, zw_chunked;
  RunBoth({"backward", "--logits", *logits_, "--labels", Npy("y1.npy", HostTensor{{kRows}, y}), "--weights", w,
           "--ignore-index", "7"},
          &zw_whole, &zw_chunked);
  ExpectSame(zw_whole, zw_chunked);
  EXPECT_TRUE(std::isnan(zw_chunked.loss().values(0)));
  EXPECT_TRUE(std::isnan(zw_chunked.grad_logits().values(0)));
  EXPECT_EQ(zw_chunked.grad_logits().values(50 * kClasses), 0);
}

TEST_F(ClientChunkedCliTest, ForwardWithLogProbabilitiesAndLoss) {
  for (const char* reduction : {"mean", "none"}) {
    ForwardResponse whole, chunked;
    RunBoth({"forward", "--logits", *logits32_, "--labels", *labels_, "--log-probs", "--reduction", reduction},
            &whole, &chunked);
    ExpectSameTensor(whole.probabilities(), chunked.probabilities(), 4 * 0x1p-23, "probabilities");
    ExpectSameTensor(whole.log_probabilities(), chunked.log_probabilities(), 4 * 0x1p-23, "log_probabilities");
    ExpectSameTensor(whole.loss(), chunked.loss(), 1e-6, "loss");
    EXPECT_EQ(whole.reduction_denominator(), chunked.reduction_denominator());
  }
}

TEST_F(ClientChunkedCliTest, OutputIsStreamedToTheSameFile) {
  const std::string a = WriteTempFile("ga.npy", ""), b = WriteTempFile("gb.npy", ""), c = WriteTempFile("gc.csv", "");
  const std::vector<std::string> call = {"--target=" + server_->address(), "backward", "--logits", *logits32_,
                                         "--labels", *labels_};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = call;
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCli(args);
  };
  const CliResult whole = with({"--output", a});
  const CliResult chunked = with({"--output", b, kSmallChunks, "--format=json"});
  const CliResult csv = with({"--output", c, kSmallChunks});
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  ASSERT_EQ(chunked.exit_code, 0) << chunked.err;
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_EQ(ReadWholeFile(a).value(), ReadWholeFile(b).value());  // byte for byte, '<f4'
  EXPECT_THAT(chunked.err, ::testing::IsEmpty());  // no progress bar: stderr is not a terminal
  EXPECT_THAT(chunked.out, Not(HasSubstr("grad_logits")));
  EXPECT_THAT(chunked.out, HasSubstr("\"loss\""));
  EXPECT_THAT(csv.out, HasSubstr("grad_logits  [64, 200] float32 written to " + c));
  auto from_csv = ReadTensorArg("--logits", c);
  auto from_npy = ReadTensorArg("--logits", a);
  ASSERT_TRUE(from_csv.ok()) << from_csv.status();
  ASSERT_EQ(from_csv->values.size(), from_npy->values.size());
  for (size_t i = 0; i < from_csv->values.size(); ++i) {  // 9 digits give the float back
    ASSERT_EQ(static_cast<float>(from_csv->values[i]), from_npy->values[i]) << i;
  }
}

TEST_F(ClientChunkedCliTest, ProgressBarOnATerminal) {
  // stderr on a pseudo-terminal (stdout stays a pipe-less /dev/null).
  int master = -1;
  const std::string out = WriteTempFile("gp.npy", "");
  const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    freopen("/dev/null", "w", stdout);
    execl(GRADSERVE_CLI_BINARY, GRADSERVE_CLI_BINARY, ("--target=" + server_->address()).c_str(), "backward",
          "--logits", logits_->c_str(), "--labels", labels_->c_str(), "--output", out.c_str(), kSmallChunks,
          static_cast<char*>(nullptr));
    _exit(127);
  }
  std::string seen;
  char buf[4096];
  ssize_t n;
  while ((n = read(master, buf, sizeof buf)) > 0) seen.append(buf, n);  // EIO once the child exits
  close(master);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << seen;
  EXPECT_THAT(seen, HasSubstr("\r[#"));
  EXPECT_THAT(seen, ::testing::ContainsRegex("\\] [0-9]+/[0-9]+ chunks"));
  EXPECT_THAT(seen, ::testing::EndsWith("\r\x1b[K"));  // the bar is cleared at the end
}

TEST_F(ClientChunkedCliTest, ABadRowIsReportedWithItsChunk) {
  std::vector<double> y(kRows, 1);
  y[60] = kClasses;  // out of range, in the last chunk
  const CliResult r = RunCli({"--target=" + server_->address(), "backward", "--logits", *logits_, "--labels",
                              Npy("ybad.npy", HostTensor{{kRows}, y}), kSmallChunks});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("gradserve: BackwardStream on rows "));
  EXPECT_THAT(r.err, HasSubstr(" failed: INVALID_ARGUMENT: "));
  EXPECT_THAT(r.out, ::testing::IsEmpty());
  // Options do not go with --grad-probs: refused as one call would be, not silently dropped.
  const CliResult vjp = RunCli({"--target=" + server_->address(), "backward", "--logits", *logits_, "--grad-probs",
                                *probs_, "--reduction", "sum", kSmallChunks});
  EXPECT_EQ(vjp.exit_code, 2);
  EXPECT_THAT(vjp.err, HasSubstr("INVALID_ARGUMENT"));
}

TEST(ClientChunkPlanTest, OneMessageNeedsNoChunksAndTheDenominatorIsTheWholeBatchs) {
  LossInputs loss;
  loss.logits = WriteTempFile("plan.npy", EncodeNpy(HostTensor{{10, 100}, std::vector<double>(1000, 0)},
                                                    gradserve::v1::DATA_TYPE_FLOAT32));
  loss.labels = "0,1,2,3,4,5,6,7,8,9";
  loss.weights = "";
  for (int c = 0; c < 100; ++c) loss.weights += (c ? "," : "") + std::to_string(c);
  loss.ignore_index = 2;
  loss.format.dtype = gradserve::v1::DATA_TYPE_UNSPECIFIED;
  auto fits = PlanChunks(loss, "", "", 1, false, true, 64 << 20, 16 << 20);
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_FALSE(fits->has_value());
  // 400 bytes a row (float32) plus a little: 2 rows in 1 KiB less the overhead.
  auto split = PlanChunks(loss, "", "", 1, false, true, 1024 + 64, 1024 + 64);
  ASSERT_TRUE(split.ok()) << split.status();
  ASSERT_TRUE(split->has_value());
  const ChunkPlan& p = **split;
  EXPECT_EQ(p.format.dtype, gradserve::v1::DATA_TYPE_FLOAT32);
  EXPECT_EQ(p.rows_per_chunk, 2);
  EXPECT_EQ(p.chunks, 5);
  EXPECT_EQ(p.Count(4), 2);
  EXPECT_EQ(p.denominator, 45 - 2);  // Σ weights[y] over rows not ignored
  EXPECT_EQ(p.options.reduction(), gradserve::v1::REDUCTION_SUM);
  gradserve::v1::BackwardRequest request;
  BackwardInputs in;
  in.loss = loss;
  ASSERT_TRUE(FillBackward(p, 1, in, &request).ok());
  EXPECT_EQ(request.logits().shape(0), 2);
  EXPECT_EQ(request.logits().raw().size(), 2u * 100 * 4);
  EXPECT_THAT(request.targets().class_indices().values(), ::testing::ElementsAre(2, 3));
  ASSERT_EQ(request.grad_loss().raw().size(), 4u);
  float scale;
  std::memcpy(&scale, request.grad_loss().raw().data(), 4);
  EXPECT_EQ(scale, static_cast<float>(1.0 / 43));
  // Past the limit, chunks take the chunk size: 4000 bytes of logits over a 3 KiB limit, 1 KiB chunks.
  auto small = PlanChunks(loss, "", "", 1, false, true, 3 << 10, 1 << 10);
  ASSERT_TRUE(small.ok() && small->has_value());
  EXPECT_EQ((*small)->rows_per_chunk, 2);
}

}  // namespace
}  // namespace gradserve::client
