// base/: the element-count helpers (exact below the limit, capped above it, 0 with any zero
// dimension, no overflow) and the status macros (propagate errors, assign values, move-only types).
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/element_count.h"
#include "base/status_macros.h"
#include "gtest/gtest.h"

namespace gradserve {
namespace {

using Dims = std::vector<int64_t>;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

TEST(ElementCountTest, IsTheProductOfTheDimensions) {
  EXPECT_EQ(ElementCount(Dims{}), 1);
  EXPECT_EQ(ElementCount(Dims{7}), 7);
  EXPECT_EQ(ElementCount(Dims{2, 3, 5}), 30);
  EXPECT_EQ(ElementCount(Dims{4, 0, 9}), 0);
  EXPECT_EQ(ElementCount(Dims{int64_t{1} << 31, int64_t{1} << 31}), int64_t{1} << 62);
}

TEST(CappedElementCountTest, ExactUpToTheLimit) {
  EXPECT_EQ(CappedElementCount(Dims{}, 10), 1);
  EXPECT_EQ(CappedElementCount(Dims{2, 5}, 10), 10);
  EXPECT_EQ(CappedElementCount(Dims{3, 3}, 10), 9);
  EXPECT_EQ(CappedElementCount(Dims{}, 0), 1);  // a scalar is one element, over a limit of 0
}

TEST(CappedElementCountTest, AboveTheLimitIsLimitPlusOne) {
  EXPECT_EQ(CappedElementCount(Dims{11}, 10), 11);
  EXPECT_EQ(CappedElementCount(Dims{3, 4}, 10), 11);
  EXPECT_EQ(CappedElementCount(Dims{3, 4, 1, 1}, 10), 11);  // stays capped through factors of 1
}

TEST(CappedElementCountTest, DoesNotOverflow) {
  // The true products are 2^124 and 2^67: a plain int64_t product would wrap (to 0 here).
  EXPECT_EQ(CappedElementCount(Dims{int64_t{1} << 62, int64_t{1} << 62}, kMax - 1), kMax);
  EXPECT_EQ(CappedElementCount(Dims{int64_t{1} << 62, int64_t{1} << 62}, int64_t{1} << 25),
            (int64_t{1} << 25) + 1);
  EXPECT_EQ(CappedElementCount(Dims{int64_t{1} << 32, int64_t{1} << 32, 8}, kMax - 1), kMax);
}

TEST(CappedElementCountTest, AnyZeroDimensionMakesItEmpty) {
  // Even after the product has passed the limit: a [huge, 0] tensor is empty.
  EXPECT_EQ(CappedElementCount(Dims{int64_t{1} << 62, int64_t{1} << 62, 0}, 10), 0);
  EXPECT_EQ(CappedElementCount(Dims{0, int64_t{1} << 62}, 10), 0);
}

absl::Status FailIf(bool fail) {
  return fail ? absl::InvalidArgumentError("failed at 3") : absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<int>> MakeValue(bool fail) {
  if (fail) return absl::OutOfRangeError("no value: 7 > 5");
  return std::make_unique<int>(42);
}

absl::StatusOr<int> UseMacros(bool fail_first, bool fail_second) {
  GRADSERVE_RETURN_IF_ERROR(FailIf(fail_first));
  GRADSERVE_ASSIGN_OR_RETURN(std::unique_ptr<int> p, MakeValue(fail_second));  // move-only
  GRADSERVE_ASSIGN_OR_RETURN(const std::unique_ptr<int> q, MakeValue(false));  // a second, same scope
  return *p + *q;
}

TEST(StatusMacrosTest, PropagateTheFirstErrorAndAssignValues) {
  EXPECT_EQ(UseMacros(true, true).status(), absl::InvalidArgumentError("failed at 3"));
  EXPECT_EQ(UseMacros(false, true).status(), absl::OutOfRangeError("no value: 7 > 5"));
  const absl::StatusOr<int> ok = UseMacros(false, false);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, 84);
}

}  // namespace
}  // namespace gradserve
