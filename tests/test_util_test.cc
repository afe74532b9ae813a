// The status assertions of tests/test_util.h: the argument is evaluated once, pass or fail.
#include "tests/test_util.h"

#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"

namespace gradserve {
namespace {

int calls = 0;  // EXPECT_NONFATAL_FAILURE's statement may not touch locals

absl::Status CountedError() {
  ++calls;
  return absl::InternalError("counted failure");
}

absl::StatusOr<int> CountedValue() {
  ++calls;
  return 3;
}

TEST(ExpectOkTest, EvaluatesItsArgumentOnceOnFailure) {
  calls = 0;
  EXPECT_NONFATAL_FAILURE(EXPECT_OK(CountedError()), "counted failure");
  EXPECT_EQ(calls, 1);
}

TEST(ExpectOkTest, EvaluatesItsArgumentOnceOnSuccessAndTakesStatusOr) {
  calls = 0;
  EXPECT_OK(CountedValue());
  EXPECT_EQ(calls, 1);
}

TEST(ExpectOkTest, AcceptsAMessageAndBindsToItsOwnIf) {
  calls = 0;
  EXPECT_NONFATAL_FAILURE(EXPECT_OK(CountedError()) << "extra context", "extra context");
  // Without its own else-guard the macro would steal this else.
  if (calls == 0)
    EXPECT_OK(CountedValue());
  else
    ++calls;
  EXPECT_EQ(calls, 2);
}

TEST(AssertOkTest, EvaluatesItsArgumentOnce) {
  calls = 0;
  EXPECT_FATAL_FAILURE(ASSERT_OK(CountedError()), "counted failure");
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace gradserve
