// PrintJsonMessage (server/http/json_print.cc) against protobuf's MessageToJsonString: the same
// JSON document (same keys, order and values; only the spelling of numbers may differ), numbers
// that read back bit for bit, and the message left as it was.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "google/protobuf/util/json_util.h"
#include "gradserve/v1/gradserve.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/http/json_tensors.h"

namespace gradserve {
namespace {

using nlohmann::ordered_json;

template <typename Message>
void ExpectLikeProtobuf(Message message) {
  const std::string before = message.SerializeAsString();
  std::string fast;
  ASSERT_TRUE(PrintJsonMessage(&message, &fast).ok());
  EXPECT_EQ(message.SerializeAsString(), before) << "the message changed";

  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  print.always_print_primitive_fields = true;
  std::string slow;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(message, &slow, print).ok());
  // nlohmann reads both spellings of a number to the same double when both round-trip.
  EXPECT_EQ(ordered_json::parse(fast), ordered_json::parse(slow)) << "fast: " << fast.substr(0, 2000)
                                                                  << "\nslow: " << slow.substr(0, 2000);
  Message back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(fast, &back).ok()) << fast.substr(0, 2000);
  EXPECT_EQ(back.SerializeAsString(), before) << fast.substr(0, 2000);
}

void Fill(v1::Tensor* t, std::mt19937_64& random, int n) {
  t->add_shape(n);
  for (int i = 0; i < n; ++i) {
    double x;
    do {
      const uint64_t bits = random();
      std::memcpy(&x, &bits, sizeof x);
    } while (!std::isfinite(x));
    t->add_values(i % 2 ? x : std::ldexp(static_cast<double>(random() % 2000) - 1000, -static_cast<int>(random() % 12)));
  }
}

TEST(JsonPrintTest, BackwardResponseWithEveryTensor) {
  std::mt19937_64 random(14);
  v1::BackwardResponse r;
  Fill(r.mutable_grad_logits(), random, 3000);
  Fill(r.mutable_probabilities(), random, 17);
  Fill(r.mutable_jacobian(), random, 1);
  r.mutable_loss();  // present, no values
  r.set_reduction_denominator(256);
  ExpectLikeProtobuf(r);
}

// Long arrays are printed in blocks on several cores and moved together.
TEST(JsonPrintTest, LongTensorPrintedInBlocksLikeProtobuf) {
  std::mt19937_64 random(16);
  v1::BackwardResponse r;
  Fill(r.mutable_grad_logits(), random, 100003);
  r.mutable_grad_logits()->set_values(77777, -0.0);
  r.mutable_grad_logits()->set_values(5, std::numeric_limits<double>::infinity());
  Fill(r.mutable_probabilities(), random, 40000);
  ExpectLikeProtobuf(r);
}

TEST(JsonPrintTest, SpecialValuesSpelledAsProtobufSpellsThem) {
  v1::ForwardResponse r;
  for (double v : {0.0, -0.0, 1.0, -1.0, 0.1, 1e-5, 1e21, 1e300, 5e-324, 2.2250738585072014e-308,
                   std::numeric_limits<double>::max(), -std::numeric_limits<double>::max(),
                   std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                   std::numeric_limits<double>::quiet_NaN(), 123456789012345678.0, 0.30000000000000004}) {
    r.mutable_probabilities()->add_values(v);
  }
  r.mutable_probabilities()->set_dtype(v1::DATA_TYPE_FLOAT64);
  r.mutable_loss()->set_raw(std::string("\0\1\2", 3));
  r.set_reduction_denominator(std::numeric_limits<double>::quiet_NaN());
  std::string json;
  ASSERT_TRUE(PrintJsonMessage(&r, &json).ok());
  EXPECT_NE(json.find(R"("values":[0,-0.0,1,-1,0.1,1e-05,1e+21,1e+300,5e-324,)"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("Infinity","-Infinity","NaN",)"), std::string::npos) << json;
  // NaN reads back as NaN, not bit for bit; compare the rest.
  v1::ForwardResponse back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &back).ok()) << json;
  ASSERT_EQ(back.probabilities().values_size(), r.probabilities().values_size());
  for (int i = 0; i < r.probabilities().values_size(); ++i) {
    const double want = r.probabilities().values(i), got = back.probabilities().values(i);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << i;
    } else {
      EXPECT_EQ(std::memcmp(&want, &got, sizeof want), 0) << i << ": " << want << " read back as " << got;
    }
  }
  EXPECT_EQ(back.loss().raw(), r.loss().raw());
}

// Findings are repeated messages, each with a tensor, and their text may look like JSON keys.
TEST(JsonPrintTest, VerifyResponseWithFindingsWhoseTextLooksLikeKeys) {
  std::mt19937_64 random(15);
  v1::VerifyGradientResponse r;
  Fill(r.mutable_analytic_grad(), random, 6);
  Fill(r.mutable_numeric_grad(), random, 6);
  for (int i = 0; i < 4; ++i) {
    v1::Finding* f = r.add_findings();
    f->set_code(static_cast<v1::FindingCode>(i + 1));
    f->set_message(i == 0   ? R"(,"values":[0] and {"values":[1]})"
                   : i == 1 ? "\"values\":[\\"
                            : "plain");
    if (i != 2) Fill(f->mutable_mistaken_grad(), random, 6 + i);
    f->set_residual(0.5 * i);
  }
  r.set_summary(R"({"values":[2]})");
  r.set_worst_row(int64_t{1} << 60);
  ExpectLikeProtobuf(r);
}

TEST(JsonPrintTest, EmptyMessagesAndEmptyTensors) {
  ExpectLikeProtobuf(v1::BackwardResponse());
  v1::BackwardResponse r;
  r.mutable_grad_logits()->add_shape(0);
  r.mutable_grad_logits()->add_shape(5);
  ExpectLikeProtobuf(r);
}

}  // namespace
}  // namespace gradserve
