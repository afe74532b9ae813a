// The library's one validator (lib/loss_check.h): each fact is InvalidArgument with the message
// clients see (the server forwards it unchanged), the same for float64, float32 and half inputs,
// with or without targets; LossPass and HalfLossPass refuse what it refuses before computing.
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/half_rows.h"
#include "lib/loss_check.h"
#include "lib/loss_pass.h"
#include "tests/test_util.h"

namespace gradserve {
namespace {

// A problem spoiled one way; `message` must appear in the error.
struct Bad {
  std::string name;
  int64_t rows = 2, classes = 3;
  bool unbatched = false;
  std::vector<int64_t> ids = {0, 2};  // empty: no targets
  LossOptions options;
  std::string message;
};

std::vector<Bad> BadCases() {
  std::vector<Bad> out;
  out.push_back({"zero_classes", 2, 0, false, {0, 0}, {}, "logits shape [2, 0] has 0 classes; at least 1 is needed"});
  out.push_back({"zero_classes_unbatched", 1, 0, true, {}, {}, "logits shape [0] has 0 classes; at least 1 is needed"});
  out.push_back({"id_out_of_range", 2, 3, false, {0, 3}, {}, "targets.class_indices[1] is 3, outside [0, 3)"});
  out.push_back({"id_count", 2, 3, false, {0}, {}, "targets.class_indices has 1 values, expected one per row (batch 2)"});
  out.push_back({"id_count_unbatched", 1, 3, true, {0, 1}, {},
                 "targets.class_indices has 2 values, but rank-1 logits are one example and need 1"});
  Bad smoothing{"smoothing_without_targets", 2, 3, false, {}, {}, "options.label_smoothing is 2; it must be in [0, 1]"};
  smoothing.options.label_smoothing = 2;
  out.push_back(smoothing);
  Bad ignored{"id_outside_and_not_ignored", 2, 3, false, {0, 7}, {}, "outside [0, 3) and not ignore_index 5"};
  ignored.options.ignore_index = 5;
  out.push_back(ignored);
  return out;
}

static const std::vector<double> kWeightsTooFew = {1.0, 2.0};
static const std::vector<double> kWeightsNegative = {1.0, -2.0, 1.0};

TEST(LossCheckTest, EachFactHasOneMessageForEveryDtype) {
  std::vector<Bad> cases = BadCases();
  Bad few{"weights_length", 2, 3, false, {}, {}, "options.class_weights has 2 weights, expected one per class (3)"};
  few.options.class_weights = kWeightsTooFew;
  cases.push_back(few);
  Bad negative{"weights_negative", 2, 3, false, {0, 1}, {}, "options.class_weights[1] is -2; weights must be finite and non-negative"};
  negative.options.class_weights = kWeightsNegative;
  cases.push_back(negative);
  for (const Bad& b : cases) {
    SCOPED_TRACE(b.name);
    const std::vector<double> z(b.rows * b.classes, 0.0);
    const std::vector<float> zf(z.size(), 0.0f);
    const std::vector<uint16_t> zh(z.size(), 0);
    std::optional<Targets<double>> t64;
    std::optional<Targets<float>> t32;
    std::optional<HalfTargets> th;
    if (!b.ids.empty()) {
      t64.emplace(Targets<double>::ClassIndices(b.ids));
      t32.emplace(Targets<float>::ClassIndices(b.ids));
      th.emplace(HalfTargets::ClassIndices(b.ids));
    }
    LossPassInputs<double> in64{ConstMatrixMap<double>(z.data(), b.rows, b.classes), t64, b.options};
    LossPassInputs<float> in32{ConstMatrixMap<float>(zf.data(), b.rows, b.classes), t32, b.options};
    HalfPassInputs inh{HalfType::kBFloat16, HalfMatrix(zh.data(), b.rows, b.classes), th, b.options};
    in64.unbatched = in32.unbatched = inh.unbatched = b.unbatched;
    for (const absl::Status& s : {ValidateLossPass<double>(in64, {}), ValidateLossPass<float>(in32, {}),
                                  ValidateHalfLossPass(inh, {})}) {
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
      EXPECT_NE(s.message().find(b.message), std::string::npos) << s;
    }
    // The pass itself refuses it before writing anything.
    std::vector<double> p(z.size(), -1.0);
    const absl::Status s = LossPass<double>(in64, {MatrixMap<double>(p.data(), b.rows, b.classes)}, {}).status();
    EXPECT_NE(s.message().find(b.message), std::string::npos) << s;
    for (double v : p) EXPECT_EQ(v, -1.0);
  }
}

TEST(LossCheckTest, ProbabilityTargetsAndIgnoreIndex) {
  const std::vector<double> z(6, 0.0), t = {0.5, 0.5, 0.0, 0.2, 0.2, 0.2};
  const ConstMatrixMap<double> zm(z.data(), 2, 3), tm(t.data(), 2, 3);
  LossOptions o;
  absl::Status s = ValidateLossPass<double>({zm, Targets<double>::Probabilities(tm), o}, {});
  EXPECT_NE(s.message().find("targets.probabilities row 1 sums to 0.6"), std::string::npos) << s;
  EXPECT_NE(s.message().find("within 1e-06 (float64)"), std::string::npos) << s;
  o.ignore_index = 0;
  s = ValidateLossPass<double>({zm, Targets<double>::Probabilities(tm), o}, {});
  EXPECT_NE(s.message().find("options.ignore_index (0) applies only to class-index targets"),
            std::string::npos) << s;
  // Half rows: their own tolerance, named with its formula.
  std::vector<uint16_t> zh(6, 0), th(6);
  for (int k = 0; k < 6; ++k) th[k] = FloatToHalf(HalfType::kFloat16, static_cast<float>(t[k]));
  s = ValidateHalfLossPass({HalfType::kFloat16, HalfMatrix(zh.data(), 2, 3),
                            HalfTargets::Probabilities(HalfMatrix(th.data(), 2, 3)), LossOptions{}}, {});
  EXPECT_NE(s.message().find("row 1 sums to"), std::string::npos) << s;
  EXPECT_NE(s.message().find("(float16: max(1e-4, classes × 0.000488281))"), std::string::npos) << s;
}

TEST(LossCheckTest, OutputsThatNeedTargetsOrTheChainRule) {
  const std::vector<double> z(6, 0.0);
  std::vector<double> buf(6), loss(1);
  const ConstMatrixMap<double> zm(z.data(), 2, 3);
  const MatrixMap<double> m(buf.data(), 2, 3);
  const int64_t ids[] = {0, 1};
  absl::Status s = ValidateLossPass<double>({zm}, {NoMatrix<double>(), NoMatrix<double>(), absl::MakeSpan(loss)});
  EXPECT_NE(s.message().find("need targets"), std::string::npos) << s;
  s = ValidateLossPass<double>({zm, Targets<double>::ClassIndices(ids)},
                               {NoMatrix<double>(), NoMatrix<double>(), {}, m, m});
  EXPECT_NE(s.message().find("needs kChainRule"), std::string::npos) << s;
  const std::vector<double> grad_loss = {1.0, 2.0};
  s = ValidateLossPass<double>({zm, Targets<double>::ClassIndices(ids), {}, grad_loss}, {});
  EXPECT_NE(s.message().find("grad_loss has 2 values but the loss has 1 (reduction MEAN, batch 2)"),
            std::string::npos) << s;
  EXPECT_OK(ValidateLossPass<double>({zm, Targets<double>::ClassIndices(ids)}, {m, m, absl::MakeSpan(loss), m}));
}

TEST(LossCheckTest, NonFiniteLogitsAreNamedByThePass) {
  std::vector<float> z(6, 0.0f);
  z[4] = std::numeric_limits<float>::infinity();
  std::vector<float> p(6);
  const absl::Status s = LossPass<float>({ConstMatrixMap<float>(z.data(), 2, 3)},
                                         {MatrixMap<float>(p.data(), 2, 3)}, {}).status();
  EXPECT_NE(s.message().find("logits must be finite; logits[1, 1] is inf"), std::string::npos) << s;
}

}  // namespace
}  // namespace gradserve
