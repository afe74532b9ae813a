// Bounded error messages: shapes elided like numpy's arrays (base/shape_format.h), and the cap
// that ToGrpcStatus puts on every message so that it fits in gRPC's trailers.
#include "server/status_util.h"

#include <string>
#include <vector>

#include "base/shape_format.h"
#include "gtest/gtest.h"
#include "server/tensor_codec.h"

namespace gradserve {
namespace {

TEST(FormatShapeTest, ShortShapesPrintInFull) {
  EXPECT_EQ(FormatShape(std::vector<int64_t>{}), "[]");
  EXPECT_EQ(FormatShape(std::vector<int64_t>{7}), "[7]");
  EXPECT_EQ(FormatShape(std::vector<int64_t>{2, 3}), "[2, 3]");
  EXPECT_EQ(FormatShape(std::vector<int64_t>{1, 2, 3, 4, 5, -6}), "[1, 2, 3, 4, 5, -6]");
}

TEST(FormatShapeTest, LongShapesKeepTheirEdgesAndStateTheRank) {
  EXPECT_EQ(FormatShape(std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7}), "[1, 2, 3, ..., 5, 6, 7] (rank 7)");
  std::vector<int64_t> huge(200000, 1);
  huge.back() = 9;
  EXPECT_EQ(FormatShape(huge), "[1, 1, 1, ..., 1, 1, 9] (rank 200000)");
  v1::Tensor t;  // a protobuf RepeatedField formats the same way
  t.mutable_shape()->Assign(huge.begin(), huge.end());
  EXPECT_EQ(FormatShape(t.shape()), FormatShape(huge));
}

TEST(BoundMessageTest, ShortMessagesAreUntouched) {
  EXPECT_EQ(BoundMessage("logits[0, 1] is nan"), "logits[0, 1] is nan");
  const std::string exact(kMaxStatusMessageBytes, 'x');
  EXPECT_EQ(BoundMessage(exact), exact);
}

TEST(BoundMessageTest, LongMessagesKeepStartAndEndWithinTheCap) {
  const std::string message = "start " + std::string(100000, 'x') + " end";
  const std::string bounded = BoundMessage(message);
  EXPECT_LE(bounded.size(), kMaxStatusMessageBytes);
  EXPECT_EQ(bounded.substr(0, 6), "start ");
  EXPECT_EQ(bounded.substr(bounded.size() - 4), " end");
  EXPECT_NE(bounded.find("bytes elided"), std::string::npos) << bounded;
}

TEST(BoundMessageTest, NeverCutsAUtf8Character) {
  std::string message;
  for (int k = 0; k < 2000; ++k) message += "×";  // 2 bytes each
  for (size_t cap : {size_t{64}, size_t{65}, size_t{1024}, size_t{7}}) {
    const std::string bounded = BoundMessage(message, cap);
    EXPECT_LE(bounded.size(), cap);
    // Every byte is ASCII or part of a whole "×" (0xC3 0x97).
    for (size_t k = 0; k < bounded.size(); ++k) {
      const unsigned char c = bounded[k];
      if (c == 0xC3) {
        ASSERT_LT(k + 1, bounded.size()) << "cap " << cap;
        EXPECT_EQ(static_cast<unsigned char>(bounded[++k]), 0x97) << "cap " << cap;
      } else {
        EXPECT_LT(c, 0x80) << "cap " << cap << " byte " << k;
      }
    }
  }
}

TEST(ToGrpcStatusTest, KeepsTheCodeAndBoundsTheMessage) {
  const grpc::Status s = ToGrpcStatus(absl::InvalidArgumentError(std::string(50000, 'y')));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_LE(s.error_message().size(), kMaxStatusMessageBytes);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(DecodeTensorTest, AHugeRankIsElidedInTheMessage) {
  v1::Tensor t;
  for (int k = 0; k < 100000; ++k) t.add_shape(1);
  t.mutable_shape()->Set(50000, -1);
  const auto negative = DecodeTensor<double>(t, "logits", Limits());
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.status().message(),
            "logits.shape [1, 1, 1, ..., 1, 1, 1] (rank 100000) has a negative dimension");
  t.mutable_shape()->Set(50000, 1);
  t.add_values(1);
  t.add_values(2);
  const auto mismatch = DecodeTensor<double>(t, "logits", Limits());
  ASSERT_FALSE(mismatch.ok());
  EXPECT_LT(mismatch.status().message().size(), 200u) << mismatch.status().message();
}

}  // namespace
}  // namespace gradserve
