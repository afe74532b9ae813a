// ParseJsonMessage (server/http/json_parse.cc) against protobuf's JsonStringToMessage, the
// behaviour it must keep: for every body the same status code and message, and on success the
// same message bit for bit (compared as serialized bytes, so -0.0 and +0.0 differ).
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/util/json_util.h"
#include "gradserve/v1/gradserve.pb.h"
#include "gtest/gtest.h"
#include "server/http/json_tensors.h"

namespace gradserve {
namespace {

// Parses `body` both ways, from a string with and one without the padding simdjson reads in
// place; returns false (after reporting) when they disagree.
template <typename Message>
bool SameAsProtobuf(const std::string& body) {
  Message expected;
  const auto want = google::protobuf::util::JsonStringToMessage(body, &expected);
  std::string padded;
  padded.reserve(body.size() + kJsonPadding);
  padded = body;
  const std::string unpadded(body.data(), body.size());
  // The gateway parses into messages on an arena; the numbers are then read into it too.
  google::protobuf::Arena arena;
  for (const std::string* text : std::vector<const std::string*>{&padded, &unpadded, &padded}) {
    Message heap;
    Message& got = text == &unpadded ? heap : *google::protobuf::Arena::CreateMessage<Message>(&arena);
    const absl::Status status = ParseJsonMessage(*text, &got);
    const bool same = static_cast<int>(status.code()) == static_cast<int>(want.code()) &&
                      status.message() == std::string(want.message()) &&
                      (!status.ok() || got.SerializeAsString() == expected.SerializeAsString());
    if (!same) {
      ADD_FAILURE() << "body: " << body << "\nfast path: " << status
                    << (status.ok() ? "\n" + got.DebugString() : "") << "\nprotobuf:  " << want.ToString()
                    << (want.ok() ? "\n" + expected.DebugString() : "");
      return false;
    }
  }
  return true;
}

std::string Backward(const std::string& logits_values, const std::string& extra = "") {
  return absl::StrCat(R"({"logits": {"shape": [2, 2], "values": [)", logits_values,
                      R"(]}, "targets": {"class_indices": {"values": [0, 1]}})", extra, "}");
}

TEST(JsonParseTest, NumberSpellingsParseAsProtobufReadsThem) {
  const char* kNumbers[] = {
      "-0", "0", "-0.0", "-0e0", "-0E-0", "1e-400", "-1e-400", "4.9e-324", "2.2250738585072011e-308",
      "1e400", "-1e400", "1.7976931348623157e308", "1.7976931348623159e308", "100000000000000000000000",
      "18446744073709551615", "18446744073709551616", "9007199254740993", "-9223372036854775808",
      "-9223372036854775809", "123456789012345678901234567890e-10", "0.1e1", "1E5", "1e+5", "1.5abc",
      "01", "-01", "00", "1.", ".5", "+1", "1e", "1e+", "-", "0x10", "1.5.5", "1-2", R"("1.5")",
      R"("NaN")", R"("Infinity")", R"("-Infinity")", R"("nan")", R"("-0")", R"("1e400")", "true",
      "null", "[]", "{}", "NaN", "Infinity", "'1'"};
  for (const char* n : kNumbers) {
    EXPECT_TRUE(SameAsProtobuf<v1::BackwardRequest>(Backward(absl::StrCat("1.25, ", n, ", 3, 4"))));
    EXPECT_TRUE(SameAsProtobuf<v1::BackwardRequest>(Backward(absl::StrCat(n, ",2,3,4"))));
    EXPECT_TRUE(SameAsProtobuf<v1::BackwardRequest>(Backward(absl::StrCat("1,2,3,", n))));
  }
}

TEST(JsonParseTest, RandomDoublesRoundTripBitForBit) {
  std::mt19937_64 random(14);
  std::vector<std::string> numbers;
  for (int i = 0; i < 2000; ++i) {
    double x;
    do {
      const uint64_t bits = random();
      std::memcpy(&x, &bits, sizeof x);
    } while (!std::isfinite(x));
    char text[40];
    std::snprintf(text, sizeof text, i % 3 == 0 ? "%.17g" : i % 3 == 1 ? "%.6e" : "%.3f", x);
    numbers.push_back(text);
  }
  const std::string body = absl::StrCat(R"({"logits": {"shape": [2000], "values": [)", absl::StrJoin(numbers, ","), "]}}");
  EXPECT_TRUE(SameAsProtobuf<v1::ForwardRequest>(body));
}

TEST(JsonParseTest, MessageShapesAndSpellingsAsProtobuf) {
  const char* kBodies[] = {
      // field names in both spellings, enums by name and number, int64 as strings
      R"({"logits": {"shape": ["1", "2"], "dtype": "DATA_TYPE_FLOAT32", "values": [1, 2]},
          "gradProbabilities": {"shape": [1, 2], "values": [0.5, -0.5]}, "method": 2,
          "returnJacobian": true, "return_probabilities": true})",
      R"({"logits": {"shape": [1, 2], "values": [1, 2]}, "targets": {"probabilities":
          {"shape": [1, 2], "values": [0, 1]}}, "options": {"reduction": "REDUCTION_SUM",
          "labelSmoothing": 0.1, "class_weights": [1, "2", "NaN"]}, "grad_loss": {"values": [2]}})",
      R"({"logits": {"shape": [1, 2], "dtype": "DATA_TYPE_FLOAT64", "raw": "AAAAAAAA8D8AAAAAAAAAQA=="}})",
      R"({"logits": {"shape": [1, 2], "dtype": "FLOAT32", "values": [1, 2]}})",
      R"({"logits": {"shape": [1, 2], "dtype": 77, "values": [1, 2]}})",
      R"({"logits": {"shape": [1.5, 2], "values": [1, 2]}})",
      R"({"logits": {"shape": ["x"], "values": [1, 2]}})",
      R"({"logits": {"shape": [1, 2], "values": [1, 2], "extra": 1}})",
      R"({"logits": {"shape": [1, 2], "values": [1, 2]}, "unknown": {"values": [1]}})",
      R"({"logits": {"values": [1, 2]}, "logits": {"values": [3]}})",
      R"({"logits": {"values": [1, 2], "values": [3]}})",
      R"({"gradProbabilities": {"values": [1]}, "grad_probabilities": {"values": [2]}})",
      R"({"logits": {"values": [1, 2]}, "targets": {"class_indices": {"values": [1]},
          "probabilities": {"values": [0, 1]}}})",
      R"({"logits": null, "targets": null})",
      R"({"logits": {"values": null}})",
      R"({"logits": {"values": {"a": 1}}})",
      R"({"logits": {"values": "1,2"}})",
      R"({"logits": [1, 2]})",
      R"({"logits": {"values": [[1], 2]}})",
      R"({"logits": {"values": [1, 2,]}})",
      R"({"logits": {"values": [1 2]}})",
      R"({"logits": {"values": [1, , 2]}})",
      R"({"logits": {"values": [1, 2]},})",
      R"({'logits': {'values': [1, 2]}})",
      R"({logits: {values: [1, 2]}})",
      R"({"logits": {"val\u0075es": [1, 2]}})",
      R"({"logits": {"values": [1, 2]}} trailing)",
      R"({"logits": {"values": [1, 2]}}})",
      R"({"logits": {"values": [1, 2]}} {})",
      R"({"logits": {"values": [1, 2])",
      R"({"logits": {"values": [1, 2)",
      R"(/* comment */ {"logits": {"values": [1, 2]}})",
      "\xEF\xBB\xBF{\"logits\": {\"values\": [1, 2]}}",
      "{\"logits\": {\"values\": [1, 2]}, \"targets\": {\"class_indices\": {\"values\": [\"\xFF\"]}}}",
      " \n\t{ \"logits\" : { \"values\" : [ 1 , 2 ] } } \n",
      R"({"logits": {"shape": [2], "values": [1, 2], "raw": "AAAA"}})",
      R"({"logits": {"values": []}})",
      R"({})", "", "null", "[]", "1", R"("logits")", "{", "}",
      R"({"targets": {"classIndices": {"values": ["1", 2, "-3"]}}})",
      R"({"options": {"ignore_index": "-100", "reduction": "REDUCTION_NONE"}})",
      R"({"options": {"ignoreIndex": 9223372036854775808}})",
      R"({"method": "METHOD_NOPE"})",
      R"({"return_jacobian": "true"})",
  };
  for (const char* body : kBodies) EXPECT_TRUE(SameAsProtobuf<v1::BackwardRequest>(body));
}

TEST(JsonParseTest, VerifyAndForwardRequestsAsProtobuf) {
  EXPECT_TRUE(SameAsProtobuf<v1::VerifyGradientRequest>(
      R"({"logits": {"shape": [2], "values": [1.75, 1.75]}, "targets": {"probabilities":
          {"shape": [2], "values": [0, 1]}}, "candidate_grad": {"shape": [2], "values": [6.125, 2.625]},
          "candidateJacobian": {"shape": [2, 2], "values": [0.25, -0.25, -0.25, 0.25]},
          "numeric_method": "NUMERIC_METHOD_COMPLEX_STEP", "rtol": "1e-3", "epsilon": 0})"));
  EXPECT_TRUE(SameAsProtobuf<v1::ForwardRequest>(
      R"({"logits": {"shape": [1, 3], "values": [1, 2, 3]}, "return_log_probabilities": true})"));
  EXPECT_TRUE(SameAsProtobuf<v1::ForwardRequest>(R"({"logits": {"values": [1, 2, 3]}, "candidate_grad": {}})"));
}

// Random edits of a valid body: deleted, inserted and doubled characters, cuts. Most are
// malformed; each must get protobuf's answer.
TEST(JsonParseTest, MutatedBodiesAsProtobuf) {
  const std::string base =
      R"({"logits": {"shape": [2, 3], "dtype": "DATA_TYPE_FLOAT64", "values": [1.5, -0, 2e-3, -4E+2, 17, 0.25]},
 "targets": {"probabilities": {"shape": [2, 3], "values": [0, 1, 0, "0.5", 0.25, 0.25]}},
 "gradLoss": {"values": [1]}, "options": {"reduction": "REDUCTION_SUM", "label_smoothing": 0}, "method": 1})";
  const std::string alphabet = R"({}[],:"'-+.eE0123456789 aNtrulfsx\)";
  std::mt19937 random(1414);
  int failures = 0;
  for (int i = 0; i < 4000 && failures < 5; ++i) {
    std::string body = base;
    const int edits = 1 + static_cast<int>(random() % 3);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const size_t at = random() % body.size();
      switch (random() % 4) {
        case 0: body.erase(at, 1 + random() % 3); break;
        case 1: body.insert(at, 1, alphabet[random() % alphabet.size()]); break;
        case 2: body.insert(at, body.substr(at, 1 + random() % 12)); break;
        case 3: body.resize(at); break;
      }
    }
    if (!SameAsProtobuf<v1::BackwardRequest>(body)) ++failures;
  }
  EXPECT_EQ(failures, 0);
}

// The bench's request (server/http's reason to exist): its 256,000 numbers are the fast path's.
TEST(JsonParseTest, BigTensorAsProtobuf) {
  std::string values;
  for (int k = 0; k < 256 * 1000; ++k) absl::StrAppend(&values, k ? "," : "", ((k * 7919) % 2000 - 1000) * 0.00731);
  const std::string body = absl::StrCat(R"({"logits": {"shape": [256, 1000], "values": [)", values,
                                        R"(]}, "targets": {"class_indices": {"values": [0, 1]}}})");
  EXPECT_TRUE(SameAsProtobuf<v1::BackwardRequest>(body));
}

}  // namespace
}  // namespace gradserve
