// The half-precision adapter against PyTorch: tests/golden/half_golden.txt (written by
// tests/golden/make_golden_half.py) holds, for float16 and bfloat16 cases of every option, torch's
// float64 answer on the half-rounded inputs (what the API bound is measured against) and torch's
// own half-precision answer. Each case runs through HalfSoftmax and HalfCrossEntropy with both
// gradient methods.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/half_rows.h"

namespace gradserve {
namespace {

struct Case {
  std::string name;
  HalfType type = HalfType::kFloat16;
  int64_t batch = 0, classes = 0;
  bool rank1 = false;
  std::map<std::string, std::vector<double>> numbers;  // every numeric line by keyword
  std::vector<int64_t> index_targets;
  std::string reduction;
  std::optional<int64_t> ignore_index;
};

std::filesystem::path GoldenPath() {
  const char* root = std::getenv("GRADSERVE_SOURCE_DIR");
  const std::filesystem::path dir = root != nullptr && *root != '\0'
                                        ? std::filesystem::path(root) / "tests"
                                        : std::filesystem::path(__FILE__).parent_path();
  return dir / "golden" / "half_golden.txt";
}

// The cases, or an error saying where parsing stopped.
std::vector<Case> Load(std::string* error) {
  std::ifstream in(GoldenPath());
  if (!in) {
    *error = "cannot open " + GoldenPath().string();
    return {};
  }
  std::vector<Case> cases;
  Case c;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::istringstream fields(line);
    std::string key, token;
    if (!(fields >> key) || key[0] == '#') continue;
    bool ok = true;
    if (key == "case") {
      c = Case();
      fields >> c.name;
    } else if (key == "dtype") {
      fields >> token;
      ok = token == "float16" || token == "bfloat16";
      c.type = token == "float16" ? HalfType::kFloat16 : HalfType::kBFloat16;
    } else if (key == "reduction") {
      fields >> c.reduction;
    } else if (key == "shape" || key == "index_targets" || key == "ignore_index") {
      std::vector<int64_t> ints;
      while (fields >> token) ints.push_back(std::strtoll(token.c_str(), nullptr, 10));
      if (key == "shape") {
        ok = ints.size() == 1 || ints.size() == 2;
        c.rank1 = ints.size() == 1;
        c.batch = c.rank1 ? 1 : ints[0];
        c.classes = ints.back();
      } else if (key == "index_targets") {
        c.index_targets = ints;
      } else {
        c.ignore_index = ints.at(0);
      }
    } else if (key == "end") {
      const size_t n = static_cast<size_t>(c.batch * c.classes);
      ok = c.numbers["logits"].size() == n && c.numbers["grad_ref"].size() == n &&
           c.numbers["grad_torch"].size() == n && c.numbers["probs_ref"].size() == n;
      if (ok) cases.push_back(c);
    } else {
      std::vector<double>& v = c.numbers[key];
      while (fields >> token) {
        char* end = nullptr;
        v.push_back(std::strtod(token.c_str(), &end));
        ok = ok && *end == '\0';
      }
    }
    if (!ok) {
      *error = GoldenPath().string() + ":" + std::to_string(number) + ": cannot parse " + line.substr(0, 60);
      return {};
    }
  }
  return cases;
}

std::vector<uint16_t> ToHalf(HalfType t, const std::vector<double>& v) {
  std::vector<uint16_t> h;
  for (double x : v) {
    h.push_back(DoubleToHalf(t, x));
    EXPECT_EQ(HalfToFloat(t, h.back()), x) << "golden inputs are exact half values";
  }
  return h;
}

// max |got - want| / ((max(1e-5, 0.1·classes·2^-24) + u)·max(1, max|want|)): at most 1 meets the
// API bound. NaN where want is NaN counts as 0; a NaN elsewhere as infinity.
double BoundRatio(HalfType t, int64_t classes, const std::vector<uint16_t>& got, const std::vector<double>& want) {
  double scale = 1.0;
  for (double w : want) if (std::isfinite(w)) scale = std::max(scale, std::abs(w));
  const double bound = (std::max(1e-5, 0.1 * classes * 0x1p-24) + HalfUnitRoundoff(t)) * scale;
  double worst = 0.0;
  for (size_t k = 0; k < got.size(); ++k) {
    const double g = HalfToFloat(t, got[k]);
    if (std::isnan(want[k]) || std::isnan(g)) {
      if (std::isnan(want[k]) != std::isnan(g)) return INFINITY;
      continue;
    }
    worst = std::max(worst, std::abs(g - want[k]) / bound);
  }
  return got.size() == want.size() ? worst : INFINITY;
}

TEST(HalfGoldenTest, EveryCaseMeetsTheApiBoundAgainstTorch) {
  std::string error;
  const std::vector<Case> cases = Load(&error);
  ASSERT_EQ(error, "");
  ASSERT_GE(cases.size(), 80u);
  double worst_ref = 0.0, worst_torch = 0.0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const int64_t n = c.batch, k = c.classes;
    const std::vector<uint16_t> z = ToHalf(c.type, c.numbers.at("logits"));
    const std::vector<uint16_t> probs =
        c.numbers.count("prob_targets") ? ToHalf(c.type, c.numbers.at("prob_targets")) : std::vector<uint16_t>();
    LossOptions o;
    o.reduction = c.reduction == "mean" ? Reduction::kMean : c.reduction == "sum" ? Reduction::kSum : Reduction::kNone;
    o.label_smoothing = c.numbers.at("label_smoothing").at(0);
    const auto weights = c.numbers.find("weights");
    if (weights != c.numbers.end()) o.class_weights = weights->second;
    o.ignore_index = c.ignore_index;
    const HalfLossProblem p{c.type, HalfMatrix(z.data(), n, k),
                            probs.empty() ? HalfTargets::ClassIndices(c.index_targets)
                                          : HalfTargets::Probabilities(HalfMatrix(probs.data(), n, k)),
                            o};
    std::vector<float> grad_loss;
    if (c.numbers.count("grad_loss")) {
      for (double g : c.numbers.at("grad_loss")) grad_loss.push_back(static_cast<float>(g));
    }
    std::vector<uint16_t> a(n * k);
    ASSERT_TRUE(HalfSoftmax(c.type, p.logits, HalfMatrixOut(a.data(), n, k), NoMatrix<uint16_t>(), {}).ok());
    EXPECT_LE(BoundRatio(c.type, k, a, c.numbers.at("probs_ref")), 1.0) << "softmax";
    for (Method m : {Method::kFused, Method::kChainRule}) {
      std::vector<uint16_t> loss(o.reduction == Reduction::kNone && !c.rank1 ? n : 1), grad(n * k);
      const auto s = HalfCrossEntropy(p, grad_loss, m, {absl::MakeSpan(loss), HalfMatrixOut(grad.data(), n, k)}, {});
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_EQ(s->reduction_denominator, c.numbers.at("denominator").at(0));
      const double r[] = {BoundRatio(c.type, k, loss, c.numbers.at("loss_ref")),
                          BoundRatio(c.type, k, grad, c.numbers.at("grad_ref"))};
      EXPECT_LE(r[0], 1.0) << "loss, method " << int(m);
      EXPECT_LE(r[1], 1.0) << "gradient, method " << int(m);
      worst_ref = std::max({worst_ref, r[0], r[1]});
      // PyTorch's own half answer rounds intermediates too (bfloat16 on the CPU keeps
      // log-probabilities and partial losses in bfloat16), so it is held to twice the bound.
      const double t[] = {BoundRatio(c.type, k, loss, c.numbers.at("loss_torch")),
                          BoundRatio(c.type, k, grad, c.numbers.at("grad_torch"))};
      EXPECT_LE(t[0], 2.0) << "loss vs torch " << HalfTypeName(c.type) << ", method " << int(m);
      EXPECT_LE(t[1], 2.0) << "gradient vs torch " << HalfTypeName(c.type) << ", method " << int(m);
      worst_torch = std::max({worst_torch, t[0], t[1]});
    }
  }
  std::printf("%zu cases; worst error / API bound: %.3f against float64, %.3f against torch's half answer\n",
              cases.size(), worst_ref, worst_torch);
}

}  // namespace
}  // namespace gradserve
