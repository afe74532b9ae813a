// JSON tensor files (client/json_tensor.h): nested arrays and tensor objects, strict RFC 8259
// (nlohmann::json), and errors that say where.
#include <cmath>
#include <string>

#include "client/json_tensor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client_test_util.h"

namespace gradserve::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(ClientJsonTensorTest, NestedArraysGiveTheShape) {
  auto t = ParseJsonTensor("z.json", "[[1.75, 1.75],\n [0.2, 0.1]]");
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(2, 2));
  EXPECT_THAT(t->values, ElementsAre(1.75, 1.75, 0.2, 0.1));
  EXPECT_EQ(t->dtype, gradserve::v1::DATA_TYPE_FLOAT64);
}

TEST(ClientJsonTensorTest, BareNumberIsAScalar) {
  auto t = ParseJsonTensor("z.json", " 2.5 ");
  CLIENT_ASSERT_OK(t);
  EXPECT_TRUE(t->shape.empty());
  EXPECT_THAT(t->values, ElementsAre(2.5));
}

TEST(ClientJsonTensorTest, EmptyArraysKeepTheirShape) {
  auto t = ParseJsonTensor("z.json", "[[], []]");
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(2, 0));
}

TEST(ClientJsonTensorTest, ReadsTheTensorObjectThatFormatJsonPrints) {
  auto t = ParseJsonTensor("z.json",
                           R"({"shape":["1","2"],"dtype":"DATA_TYPE_FLOAT32","values":[0.5,"NaN"]})");
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(1, 2));
  EXPECT_EQ(t->values[0], 0.5);
  EXPECT_TRUE(std::isnan(t->values[1]));
  EXPECT_EQ(t->dtype, gradserve::v1::DATA_TYPE_FLOAT32);  // requests keep it
}

TEST(ClientJsonTensorTest, EscapesInKeysAreDecoded) {
  // "sh\u0061pe" is "shape": the shape is read, not inferred from the values.
  auto t = ParseJsonTensor("z.json", R"({"sh\u0061pe": [2, 1], "values": [1, 2]})");
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(2, 1));
}

TEST(ClientJsonTensorTest, UnknownKeysAreRefused) {
  auto t = ParseJsonTensor("z.json", R"({"shape": [2], "valuez": [1, 2]})");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "z.json: /valuez: unknown key \"valuez\"; a tensor object has shape, dtype and values");
}

TEST(ClientJsonTensorTest, NumbersOutsideJsonGrammarAreRefused) {
  for (const std::string bad : {"[+1]", "[.5]", "[01]", "[2.]", "[1e]", "[-]", "[0x10]", "[NaN]"}) {
    auto t = ParseJsonTensor("z.json", bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_THAT(std::string(t.status().message()), StartsWith("z.json:1:")) << bad;
    EXPECT_THAT(t.status().message(), HasSubstr("syntax error")) << bad;
  }
  // ... and quoted numbers (protobuf's int64 form) follow the same grammar.
  auto q = ParseJsonTensor("z.json", R"({"shape": ["+2"], "values": [1, 2]})");
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(), "z.json: /shape[0]: expected a number, found \"+2\"");
}

TEST(ClientJsonTensorTest, HugeOrFractionalDimensionsAreRefused) {
  for (const std::string dim : {"1e30", "-1", "2.5", "\"9223372036854775808\""}) {
    auto t = ParseJsonTensor("z.json", R"({"shape": [)" + dim + R"(], "values": [1]})");
    ASSERT_FALSE(t.ok()) << dim;
    EXPECT_THAT(std::string(t.status().message()), StartsWith("z.json: /shape[0]: a dimension must be an integer in [0, 2^62]"))
        << dim;
  }
  // Dimensions whose product overflows 64 bits are refused by the count check, not wrapped.
  auto big = ParseJsonTensor("z.json", R"({"shape": [4294967296, 4294967296, 2], "values": [1]})");
  ASSERT_FALSE(big.ok());
  EXPECT_THAT(big.status().message(), HasSubstr("does not match the 1 values given"));
}

TEST(ClientJsonTensorTest, NumberBeyondDoubleIsRefused) {
  auto t = ParseJsonTensor("z.json", "[1e400, 2]");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "z.json: number overflow parsing '1e400'");
  auto q = ParseJsonTensor("z.json", R"({"values": ["1e400"]})");
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(), "z.json: /values[0]: expected a number, found \"1e400\"");
}

TEST(ClientJsonTensorTest, UnknownDtypeIsRefused) {
  auto t = ParseJsonTensor("z.json", R"({"dtype": "DATA_TYPE_INT8", "values": [1]})");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), StartsWith("z.json: /dtype: expected DATA_TYPE_FLOAT16"));
}

TEST(ClientJsonTensorTest, RaggedArrayNamesTheArray) {
  auto t = ParseJsonTensor("z.json", "[[1, 2],\n [3]]");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "z.json: [1]: array has 1 elements, expected 2 like the first at this depth");
}

TEST(ClientJsonTensorTest, SyntaxErrorNamesLineAndColumn) {
  auto t = ParseJsonTensor("z.json", "[1,\n  2\n  3]");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), StartsWith("z.json:3:3: syntax error while parsing array"));
}

TEST(ClientJsonTensorTest, WordThatIsNotANumberIsRefused) {
  auto t = ParseJsonTensor("z.json", "[1, true]");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "z.json: [1]: expected a number, found true");
}

TEST(ClientJsonTensorTest, ObjectWithWrongCountIsRefused) {
  auto t = ParseJsonTensor("z.json", R"({"shape": [2, 2], "values": [1, 2, 3]})");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "z.json: \"shape\" [2, 2] does not match the 3 values given");
}

TEST(ClientJsonTensorTest, DeepNestingIsRefused) {
  auto t = ParseJsonTensor("z.json", std::string(100, '[') + "1" + std::string(100, ']'));
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("nested deeper than 64 levels"));
}

}  // namespace
}  // namespace gradserve::client
