#include "lib/softmax.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace gradserve {
namespace {

using ::gradserve::testing::RandomLogits;

template <typename T>
class SoftmaxTest : public ::testing::Test {};
using Dtypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(SoftmaxTest, Dtypes);

TYPED_TEST(SoftmaxTest, MotivatingCaseGivesHalfAndHalf) {
  using T = TypeParam;
  RowMatrix<T> z(1, 2);
  z << T(1.75), T(1.75);
  RowMatrix<T> p(1, 2), lp(1, 2);
  ASSERT_OK((Softmax<T>(ConstView(z), View(p), View(lp), ExecContext{})));
  EXPECT_EQ(p(0, 0), T(0.5));
  EXPECT_EQ(p(0, 1), T(0.5));
  EXPECT_NEAR(lp(0, 0), std::log(0.5), 1e-7);
}

TYPED_TEST(SoftmaxTest, ExtremeLogitsStayFiniteAndNormalised) {
  using T = TypeParam;
  RowMatrix<T> z(4, 3);
  z << T(1e4), T(-1e4), T(0),      // ±1e4
      T(7), T(7), T(7),            // equal values
      T(-1e3), T(0), T(1e3),       // range of 2e3
      T(0), T(120), T(-120);       // float32: e^-120 underflows
  RowMatrix<T> p(4, 3), lp(4, 3);
  ASSERT_OK((Softmax<T>(ConstView(z), View(p), View(lp), ExecContext{})));
  EXPECT_TRUE(p.allFinite());
  EXPECT_TRUE(lp.allFinite());
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(p.row(i).sum(), 1.0, 1e-6) << "row " << i;
  EXPECT_EQ(p(0, 0), T(1));
  EXPECT_NEAR(p(1, 0), 1.0 / 3, 1e-7);
  EXPECT_NEAR(lp(0, 1), -2e4, 1e-2);  // log-softmax keeps what softmax rounds to 0
  EXPECT_NEAR(lp(2, 0), -2e3, 1e-3);
}

TYPED_TEST(SoftmaxTest, MatchesFloat64ReferenceOnRandomRows) {
  using T = TypeParam;
  // Small rows; a 4.8 MB output (written with non-temporal stores); rows past the 16 KiB
  // scratch row (formed in place).
  for (const auto [rows, cols] : {std::pair<int64_t, int64_t>{33, 17}, {1200, 1001}, {9, 5001}}) {
  SCOPED_TRACE(::testing::Message() << rows << "x" << cols);
  std::mt19937_64 rng(7);
  const RowMatrix<T> z = RandomLogits<T>(rng, rows, cols, 20.0);
  RowMatrix<T> p(rows, cols), lp(rows, cols);
  ASSERT_OK((Softmax<T>(ConstView(z), View(p), View(lp), ExecContext{})));
  for (int i = 0; i < z.rows(); ++i) {
    const Eigen::RowVectorXd zd = z.row(i).template cast<double>();
    const Eigen::RowVectorXd e = (zd.array() - zd.maxCoeff()).exp();
    const Eigen::RowVectorXd ref = e / e.sum();
    ASSERT_LT((p.row(i).template cast<double>() - ref).cwiseAbs().maxCoeff(), 1e-6) << "row " << i;
    ASSERT_LT((lp.row(i).template cast<double>() - ref.array().log().matrix()).cwiseAbs().maxCoeff(), 1e-5);
  }
  }
}

TYPED_TEST(SoftmaxTest, RejectsNonFiniteLogitsNamingTheElement) {
  using T = TypeParam;
  for (T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                -std::numeric_limits<T>::infinity()}) {
    RowMatrix<T> z = RowMatrix<T>::Zero(3, 4);
    z(2, 1) = bad;
    RowMatrix<T> p(3, 4);
    const absl::Status s = Softmax<T>(ConstView(z), View(p), NoMatrix<T>(), ExecContext{});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("logits[2, 1]"), std::string::npos) << s;
  }
}

TYPED_TEST(SoftmaxTest, JacobianAtActivationsOfMotivatingCase) {
  using T = TypeParam;
  RowMatrix<T> a(1, 2);
  a << T(0.5), T(0.5);
  T j[4];
  ASSERT_OK(SoftmaxJacobian<T>(ConstView(a), j, ExecContext{}));
  EXPECT_EQ(j[0], T(0.25));
  EXPECT_EQ(j[1], T(-0.25));
  EXPECT_EQ(j[2], T(-0.25));
  EXPECT_EQ(j[3], T(0.25));
}

TYPED_TEST(SoftmaxTest, VjpEqualsExplicitJacobianProduct) {
  using T = TypeParam;
  std::mt19937_64 rng(11);
  const RowMatrix<T> z = RandomLogits<T>(rng, 5, 6, 3.0);
  const RowMatrix<T> g = RandomLogits<T>(rng, 5, 6, 2.0);
  RowMatrix<T> a(5, 6), vjp(5, 6);
  ASSERT_OK((Softmax<T>(ConstView(z), View(a), NoMatrix<T>(), ExecContext{})));
  ASSERT_OK((SoftmaxVjp<T>(ConstView(a), ConstView(g), View(vjp), ExecContext{})));
  std::vector<T> jac(5 * 6 * 6);
  ASSERT_OK(SoftmaxJacobian<T>(ConstView(a), jac.data(), ExecContext{}));
  for (int i = 0; i < 5; ++i) {
    ConstMatrixMap<T> j(jac.data() + i * 36, 6, 6);
    const Eigen::Matrix<T, 1, Eigen::Dynamic> expect = g.row(i) * j;
    EXPECT_LT((vjp.row(i) - expect).cwiseAbs().maxCoeff(), T(1e-6));
  }
}

TYPED_TEST(SoftmaxTest, EmptyBatchIsFine) {
  using T = TypeParam;
  RowMatrix<T> z(0, 5), p(0, 5);
  EXPECT_OK((Softmax<T>(ConstView(z), View(p), NoMatrix<T>(), ExecContext{})));
}

TYPED_TEST(SoftmaxTest, RejectsWrongOutputShape) {
  using T = TypeParam;
  RowMatrix<T> z = RowMatrix<T>::Zero(2, 3), p(3, 2);
  EXPECT_EQ((Softmax<T>(ConstView(z), View(p), NoMatrix<T>(), ExecContext{})).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gradserve
