// Replays every committed fuzz input through the fuzz targets' own entry points, in the normal
// build (and in the sanitizer build): tests/fuzz/regressions/<target>/* (inputs that once failed)
// and tests/fuzz/corpus/<target>/* (the seed corpus). A missing or short directory fails: a replay
// of nothing would pass whatever the entry points do.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/cross_entropy.h"
#include "lib/softmax.h"
#include "tests/fuzz/math_entry.h"
#include "tests/fuzz/request_entry.h"

namespace gradserve::fuzz {
namespace {

namespace fs = std::filesystem;

fs::path InputDir(const std::string& kind, const std::string& target) {
  const char* root = std::getenv("GRADSERVE_SOURCE_DIR");
  return fs::path(root != nullptr ? root : ".") / "tests" / "fuzz" / kind / target;
}

std::vector<fs::path> Inputs(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<uint8_t> Read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

using Entry = std::string (*)(const uint8_t*, size_t);

// Replays tests/fuzz/<kind>/<target>/*, which must hold at least `at_least` (> 0) inputs.
void ReplayAll(const std::string& kind, const std::string& target, Entry entry, size_t at_least) {
  const fs::path dir = InputDir(kind, target);
  ASSERT_TRUE(fs::is_directory(dir))
      << dir << " is missing (is $GRADSERVE_SOURCE_DIR the source tree? ctest sets it)";
  const std::vector<fs::path> files = Inputs(dir);
  ASSERT_GE(files.size(), at_least) << dir << " holds " << files.size() << " inputs";
  for (const fs::path& file : files) {
    const std::vector<uint8_t> bytes = Read(file);
    EXPECT_EQ(entry(bytes.data(), bytes.size()), "") << file;
  }
}

TEST(FuzzRegressionTest, RequestRegressionsPass) {
  ReplayAll("regressions", "request_fuzzer", CheckRequestInput, 1);
}

TEST(FuzzRegressionTest, MathRegressionsPass) {
  ReplayAll("regressions", "math_fuzzer", CheckMathInput, 1);
}

TEST(FuzzRegressionTest, RequestSeedCorpusPasses) {
  ReplayAll("corpus", "request_fuzzer", CheckRequestInput, 10);
}

TEST(FuzzRegressionTest, MathSeedCorpusPasses) {
  ReplayAll("corpus", "math_fuzzer", CheckMathInput, 10);
}

TEST(FuzzRegressionTest, EmptyAndTruncatedInputsPass) {
  const uint8_t bytes[] = {0x01, 0x0a, 0x05, 0x0a, 0x01, 0x02};
  for (size_t n = 0; n <= sizeof(bytes); ++n) {
    EXPECT_EQ(CheckRequestInput(bytes, n), "") << n;
    EXPECT_EQ(CheckMathInput(bytes, n), "") << n;
  }
}

// What math_fuzzer found first (regressions/math_fuzzer/float32_logits_near_max_nan_softmax):
// float32 rows whose largest logit is beyond ~1e9 had NaN probabilities and gradients, with OK.
TEST(FuzzFindingsTest, Float32RowsWithHugeFiniteLogitsStayFinite) {
  const float big[] = {1.5f * 1048576.0f, 1e9f, 1e10f, -1e30f, 3.4028235e38f};
  for (const float m : big) {
    // 17 classes: a full AVX-512 vector and a tail; ties, a close neighbour and far values.
    RowMatrix<float> z(2, 17);
    for (int64_t j = 0; j < 17; ++j) {
      z(0, j) = j % 3 == 0 ? m : j % 3 == 1 ? m * 0.5f : -m;
      z(1, j) = j == 5 ? m : 0.0f;
    }
    RowMatrix<float> a(2, 17);
    ASSERT_TRUE(Softmax<float>(ConstView(z), View(a), NoMatrix<float>(), ExecContext{}).ok());
    for (int64_t i = 0; i < 2; ++i) {
      ASSERT_TRUE(a.row(i).allFinite()) << "max " << m << ", row " << i;
      EXPECT_NEAR(a.row(i).sum(), 1.0f, 1e-5f) << "max " << m << ", row " << i;
    }
    const std::vector<int64_t> labels = {0, 5};
    for (const Method method : {Method::kFused, Method::kChainRule}) {
      RowMatrix<float> grad(2, 17);
      float loss = 0;
      ASSERT_TRUE(CrossEntropy<float>({ConstView(z), Targets<float>::ClassIndices(labels), {}}, {},
                                      method, {absl::MakeSpan(&loss, 1), View(grad)}, ExecContext{})
                      .ok());
      EXPECT_TRUE(grad.allFinite()) << "max " << m;
      // Row 0's target is one of the tied maxima, row 1's the only maximum: the gradient is
      // (a - onehot) / 2 with a from above.
      for (int64_t i = 0; i < 2; ++i) {
        for (int64_t j = 0; j < 17; ++j) {
          const float want = (a(i, j) - (j == labels[i] ? 1.0f : 0.0f)) / 2;
          EXPECT_NEAR(grad(i, j), want, 1e-6f) << "max " << m << " [" << i << ", " << j << "]";
        }
      }
    }
  }
}

}  // namespace
}  // namespace gradserve::fuzz
