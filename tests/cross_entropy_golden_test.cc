// Checks CrossEntropy against PyTorch: tests/golden/cross_entropy_golden.txt holds the loss, the
// autograd gradient and the mean's denominator of torch.nn.functional.cross_entropy for every
// option combination and the degenerate cases (see tests/golden/make_golden.py for the format).
// Each case runs in its own dtype with both gradient methods.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "lib/cross_entropy.h"
#include "lib/tensor.h"

namespace gradserve {
namespace {

struct GoldenCase {
  std::string name;
  bool is_float32 = false;
  int64_t batch = 0;  // 1 for rank-1 logits, which PyTorch treats as one unbatched example
  int64_t classes = 0;
  std::vector<double> logits;
  bool probability_targets = false;
  std::vector<int64_t> index_targets;
  std::vector<double> prob_targets;
  Reduction reduction = Reduction::kMean;
  double label_smoothing = 0.0;
  std::vector<double> weights;
  std::optional<int64_t> ignore_index;
  std::vector<double> grad_loss;  // empty: the default upstream gradient of 1
  std::vector<double> loss;
  std::vector<double> grad;
  double denominator = 0.0;
};

// One loss per row for NONE (one row when rank-1), else a single value.
size_t LossSize(const GoldenCase& c) {
  return c.reduction == Reduction::kNone ? static_cast<size_t>(c.batch) : 1;
}

struct GoldenFile {
  std::vector<GoldenCase> cases;
  std::string error;  // why loading stopped; reported by the FileHasEveryCase test
};

// strtod, unlike operator>>, reads the nan / inf / -inf that the generator writes.
bool ParseDoubles(std::istringstream& in, std::vector<double>& out) {
  std::string token;
  while (in >> token) {
    char* end = nullptr;
    out.push_back(std::strtod(token.c_str(), &end));
    if (*end != '\0') return false;
  }
  return true;
}

bool ParseInts(std::istringstream& in, std::vector<int64_t>& out) {
  std::string token;
  while (in >> token) {
    char* end = nullptr;
    out.push_back(std::strtoll(token.c_str(), &end, 10));
    if (*end != '\0') return false;
  }
  return true;
}

std::filesystem::path GoldenPath() {
  // ctest sets GRADSERVE_SOURCE_DIR; test discovery at build time runs without it, and must
  // still see every case, so fall back to the source tree CMake compiled in (not __FILE__,
  // which a compiler cache may have made relative).
  const char* root = std::getenv("GRADSERVE_SOURCE_DIR");
  const std::filesystem::path dir(root != nullptr && *root != '\0' ? root : GRADSERVE_TEST_SOURCE_DIR);
  return dir / "tests" / "golden" / "cross_entropy_golden.txt";
}

GoldenFile ParseGoldenFile() {
  GoldenFile file;
  const std::filesystem::path path = GoldenPath();
  std::ifstream in(path);
  if (!in) {
    file.error = "cannot open " + path.string();
    return file;
  }
  GoldenCase c;
  std::string line;
  for (int line_number = 1; std::getline(in, line); ++line_number) {
    std::istringstream fields(line);
    std::string key;
    if (!(fields >> key) || key[0] == '#') continue;
    std::vector<double> numbers;
    std::vector<int64_t> ints;
    bool ok = true;
    if (key == "case") {
      c = GoldenCase();
      ok = static_cast<bool>(fields >> c.name);
    } else if (key == "dtype") {
      std::string dtype;
      fields >> dtype;
      ok = dtype == "float32" || dtype == "float64";
      c.is_float32 = dtype == "float32";
    } else if (key == "shape") {
      ok = ParseInts(fields, ints) && (ints.size() == 1 || ints.size() == 2);
      if (ok) {
        c.batch = ints.size() == 2 ? ints[0] : 1;
        c.classes = ints.back();
      }
    } else if (key == "logits") {
      ok = ParseDoubles(fields, c.logits);
    } else if (key == "index_targets") {
      ok = ParseInts(fields, c.index_targets);
    } else if (key == "prob_targets") {
      c.probability_targets = true;
      ok = ParseDoubles(fields, c.prob_targets);
    } else if (key == "reduction") {
      std::string r;
      fields >> r;
      ok = r == "mean" || r == "sum" || r == "none";
      c.reduction = r == "sum" ? Reduction::kSum : r == "none" ? Reduction::kNone : Reduction::kMean;
    } else if (key == "label_smoothing") {
      ok = ParseDoubles(fields, numbers) && numbers.size() == 1;
      if (ok) c.label_smoothing = numbers[0];
    } else if (key == "weights") {
      ok = ParseDoubles(fields, c.weights);
    } else if (key == "ignore_index") {
      ok = ParseInts(fields, ints) && ints.size() == 1;
      if (ok) c.ignore_index = ints[0];
    } else if (key == "grad_loss") {
      ok = ParseDoubles(fields, c.grad_loss);
    } else if (key == "loss") {
      ok = ParseDoubles(fields, c.loss);
    } else if (key == "grad") {
      ok = ParseDoubles(fields, c.grad);
    } else if (key == "denominator") {
      ok = ParseDoubles(fields, numbers) && numbers.size() == 1;
      if (ok) c.denominator = numbers[0];
    } else if (key == "end") {
      const size_t n = static_cast<size_t>(c.batch * c.classes);
      ok = !c.name.empty() && c.logits.size() == n && c.grad.size() == n &&
           (c.probability_targets ? c.prob_targets.size() == n
                                  : c.index_targets.size() == static_cast<size_t>(c.batch)) &&
           c.loss.size() == LossSize(c);
      if (ok) file.cases.push_back(c);
    } else {
      ok = false;
    }
    if (!ok) {
      file.error = path.string() + ":" + std::to_string(line_number) + ": cannot parse \"" +
                   line.substr(0, 80) + "\"";
      file.cases.clear();  // a half-read file must fail loudly, not pass on fewer cases
      return file;
    }
  }
  return file;
}

const GoldenFile& Golden() {
  static const GoldenFile* const kFile = new GoldenFile(ParseGoldenFile());
  return *kFile;
}

TEST(CrossEntropyGoldenFileTest, FileHasEveryCase) {
  EXPECT_EQ(Golden().error, "");
  EXPECT_GE(Golden().cases.size(), 100u);
}

// Every element of `got` within `tolerance`·max(1, max|want|) of `want`, NaN where `want` is.
template <typename T>
testing::AssertionResult AllClose(const std::vector<double>& want, absl::Span<const T> got,
                                  double tolerance) {
  if (want.size() != got.size()) {
    return testing::AssertionFailure() << got.size() << " values, expected " << want.size();
  }
  double scale = 1.0;
  for (double w : want) {
    if (std::isfinite(w)) scale = std::max(scale, std::abs(w));
  }
  const double bound = tolerance * scale;
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = static_cast<double>(got[i]);
    const bool ok = std::isnan(want[i])   ? std::isnan(g)
                    : std::isinf(want[i]) ? g == want[i]
                                          : std::abs(g - want[i]) <= bound;
    if (!ok) {
      return testing::AssertionFailure()
             << "[" << i << "] is " << g << ", expected " << want[i] << " (error "
             << std::abs(g - want[i]) << ", bound " << bound << ")";
    }
  }
  return testing::AssertionSuccess();
}

template <typename T>
void CheckCase(const GoldenCase& c, Method method) {
  // The contract's float32 bound; float64 should agree with torch to a few ulps.
  const double tolerance =
      c.is_float32 ? std::max(1e-5, 0.1 * static_cast<double>(c.classes) * std::ldexp(1.0, -24))
                   : 1e-12;
  const std::vector<T> logits(c.logits.begin(), c.logits.end());
  const std::vector<T> probabilities(c.prob_targets.begin(), c.prob_targets.end());
  const std::vector<T> grad_loss(c.grad_loss.begin(), c.grad_loss.end());

  LossProblem<T> problem{
      ConstMatrixMap<T>(logits.data(), c.batch, c.classes),
      c.probability_targets ? Targets<T>::Probabilities(
                                  ConstMatrixMap<T>(probabilities.data(), c.batch, c.classes))
                            : Targets<T>::ClassIndices(c.index_targets),
      LossOptions{}};
  problem.options.reduction = c.reduction;
  problem.options.label_smoothing = c.label_smoothing;
  problem.options.class_weights = c.weights;
  problem.options.ignore_index = c.ignore_index;

  // Outputs start as a sentinel so that an element the library forgets to write shows up.
  std::vector<T> loss(LossSize(c), T(-7777));
  RowMatrix<T> grad = RowMatrix<T>::Constant(c.batch, c.classes, T(-7777));
  LossOutputs<T> outputs{absl::MakeSpan(loss), MatrixMap<T>(grad.data(), c.batch, c.classes)};

  absl::StatusOr<LossSummary> summary =
      CrossEntropy<T>(problem, grad_loss, method, outputs, ExecContext{});
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(AllClose(c.loss, absl::Span<const T>(loss), tolerance)) << "loss";
  EXPECT_TRUE(AllClose(c.grad, absl::Span<const T>(grad.data(), grad.size()), tolerance))
      << "grad";
  EXPECT_TRUE(AllClose({c.denominator}, absl::Span<const double>(&summary->reduction_denominator, 1),
                       tolerance))
      << "denominator";
}

// One case with one gradient method: each is its own test.
struct GoldenRun {
  GoldenCase golden;
  Method method;

  std::string Name() const {
    return golden.name + (method == Method::kFused ? "_Fused" : "_ChainRule");
  }
};

// Keeps gtest from hex-dumping the whole case into test names and failure messages.
void PrintTo(const GoldenRun& run, std::ostream* os) { *os << run.Name(); }

std::vector<GoldenRun> GoldenRuns() {
  std::vector<GoldenRun> runs;
  for (const GoldenCase& c : Golden().cases) {
    for (Method method : {Method::kFused, Method::kChainRule}) runs.push_back({c, method});
  }
  return runs;
}

class CrossEntropyGoldenTest : public testing::TestWithParam<GoldenRun> {};

TEST_P(CrossEntropyGoldenTest, MatchesTorch) {
  const GoldenRun& run = GetParam();
  if (run.golden.is_float32) {
    CheckCase<float>(run.golden, run.method);
  } else {
    CheckCase<double>(run.golden, run.method);
  }
}

INSTANTIATE_TEST_SUITE_P(Torch, CrossEntropyGoldenTest, testing::ValuesIn(GoldenRuns()),
                         [](const testing::TestParamInfo<GoldenRun>& info) {
                           return info.param.Name();
                         });

// A missing file leaves the suite empty, which FileHasEveryCase reports as a failure.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CrossEntropyGoldenTest);

}  // namespace
}  // namespace gradserve
