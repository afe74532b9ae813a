// The status assertions of tests/client_test_util.h: the argument is evaluated once, pass or fail.
#include "tests/client_test_util.h"

#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"

namespace gradserve::client {
namespace {

int calls = 0;  // EXPECT_NONFATAL_FAILURE's statement may not touch locals

absl::StatusOr<int> CountedError() {
  ++calls;
  return absl::InternalError("counted failure");
}

absl::StatusOr<int> CountedValue() {
  ++calls;
  return 3;
}

absl::Status CountedStatus() {
  ++calls;
  return absl::OkStatus();
}

TEST(ClientExpectOkTest, EvaluatesItsArgumentOnceOnFailure) {
  calls = 0;
  EXPECT_NONFATAL_FAILURE(CLIENT_EXPECT_OK(CountedError()), "counted failure");
  EXPECT_EQ(calls, 1);
}

TEST(ClientExpectOkTest, EvaluatesItsArgumentOnceOnSuccessAndTakesStatus) {
  calls = 0;
  CLIENT_EXPECT_OK(CountedValue());
  CLIENT_EXPECT_OK(CountedStatus());
  EXPECT_EQ(calls, 2);
}

TEST(ClientExpectOkTest, AcceptsAMessageAndBindsToItsOwnIf) {
  calls = 0;
  EXPECT_NONFATAL_FAILURE(CLIENT_EXPECT_OK(CountedError()) << "extra context", "extra context");
  // Without its own else-guard the macro would steal this else.
  if (calls == 0)
    CLIENT_EXPECT_OK(CountedValue());
  else
    ++calls;
  EXPECT_EQ(calls, 2);
}

TEST(ClientAssertOkTest, EvaluatesItsArgumentOnce) {
  calls = 0;
  EXPECT_FATAL_FAILURE(CLIENT_ASSERT_OK(CountedError()), "counted failure");
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace gradserve::client
