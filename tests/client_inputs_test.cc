// Reading tensors from the command line: inline text, CSV, JSON and .npy, with errors that say
// where the problem is.
#include <cmath>

#include "client/inputs.h"
#include "client/json_tensor.h"
#include "client/npy.h"
#include "client/text_grid.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client_test_util.h"

namespace gradserve::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TestDataPath;
using testing::WriteTempFile;

TEST(ClientInlineGridTest, OneRowWithoutSemicolonIsRankOne) {
  auto t = ParseInlineGrid("--logits", "1.75, 1.75");
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(2));
  EXPECT_THAT(t->values, ElementsAre(1.75, 1.75));
}

TEST(ClientInlineGridTest, SemicolonsSeparateRows) {
  auto t = ParseInlineGrid("--logits", "1.75,1.75;0.2,-1e-3");
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(2, 2));
  EXPECT_THAT(t->values, ElementsAre(1.75, 1.75, 0.2, -1e-3));
}

TEST(ClientInlineGridTest, TrailingSemicolonMakesABatchOfOne) {
  auto t = ParseInlineGrid("--logits", "1,2;");
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(1, 2));
}

TEST(ClientInlineGridTest, BadNumberNamesFlagAndColumn) {
  auto t = ParseInlineGrid("--logits", "1,2;3,x4");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "--logits \"1,2;3,x4\": column 7: expected a number, found \"x4\"");
}

TEST(ClientInlineGridTest, RaggedRowsAreRefused) {
  auto t = ParseInlineGrid("--logits", "1,2;3");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("row has 1 value, expected 2"));
}

TEST(ClientInlineGridTest, EmptyValueIsRefused) {
  auto t = ParseInlineGrid("--labels", "1,,0");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("column 3: expected a number, found nothing"));
}

TEST(ClientInlineGridTest, NonFiniteWordsAreNumbers) {
  auto t = ParseInlineGrid("--logits", "nan,inf,-inf");
  CLIENT_ASSERT_OK(t);
  EXPECT_TRUE(std::isnan(t->values[0]));
  EXPECT_EQ(t->values[1], INFINITY);
  EXPECT_EQ(t->values[2], -INFINITY);
}

TEST(ClientCsvGridTest, ReadsRowsSkippingBlankAndCommentLines) {
  auto t = ParseCsvGrid("z.csv", "# logits\n1,2,3\r\n\n4,5,6\n");
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(2, 3));
  EXPECT_THAT(t->values, ElementsAre(1, 2, 3, 4, 5, 6));
}

TEST(ClientCsvGridTest, OneLineIsStillABatch) {
  auto t = ParseCsvGrid("z.csv", "0.5,0.5\n");
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(1, 2));
}

TEST(ClientCsvGridTest, BadNumberNamesFileLineAndColumn) {
  auto t = ParseCsvGrid("z.csv", "1,2,3\n4, abc,6\n");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "z.csv:2:4: expected a number, found \"abc\"");
}

TEST(ClientCsvGridTest, RaggedRowNamesTheFirstRowsLine) {
  auto t = ParseCsvGrid("z.csv", "# header\n1,2,3\n4,5\n");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "z.csv:3:1: row has 2 values, expected 3 like the first row (line 2)");
}

TEST(ClientCsvGridTest, EmptyFileIsRefused) {
  auto t = ParseCsvGrid("z.csv", "\n# nothing\n");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "z.csv: no numbers");
}

TEST(ClientJsonTensorTest, NestedArraysGiveTheShape) {
  auto t = ParseJsonTensor("z.json", "[[1.75, 1.75],\n [0.2, 0.1]]");
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(2, 2));
  EXPECT_THAT(t->values, ElementsAre(1.75, 1.75, 0.2, 0.1));
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
                           R"({"shape":["1","2"],"dtype":"DATA_TYPE_FLOAT64","values":[0.5,"NaN"]})");
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(1, 2));
  EXPECT_EQ(t->values[0], 0.5);
  EXPECT_TRUE(std::isnan(t->values[1]));
}

TEST(ClientJsonTensorTest, RaggedArrayNamesLineAndColumn) {
  auto t = ParseJsonTensor("z.json", "[[1, 2],\n [3]]");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "z.json:2:2: array has 1 elements, expected 2 like the first at this depth");
}

TEST(ClientJsonTensorTest, SyntaxErrorNamesLineAndColumn) {
  auto t = ParseJsonTensor("z.json", "[1,\n  2\n  3]");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "z.json:3:3: expected ',' or ']'");
}

TEST(ClientJsonTensorTest, WordThatIsNotANumberIsRefused) {
  auto t = ParseJsonTensor("z.json", "[1, true]");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "z.json:1:5: expected a number");
}

TEST(ClientJsonTensorTest, ObjectWithWrongCountIsRefused) {
  auto t = ParseJsonTensor("z.json", R"({"shape": [2, 2], "values": [1, 2, 3]})");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("\"shape\" [2, 2] needs 4 values, found 3"));
}

TEST(ClientNpyTest, ReadsFloat32WrittenByNumpy) {
  auto bytes = ReadWholeFile(TestDataPath("client_logits_2x3_f32.npy"));
  CLIENT_ASSERT_OK(bytes);
  auto t = ParseNpy("logits.npy", *bytes);
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(2, 3));
  EXPECT_THAT(t->values, ElementsAre(2, 1, 0.1f, 0.5, 2.5, 0.3f));
}

TEST(ClientNpyTest, ReadsInt64LabelsWrittenByNumpy) {
  auto t = ReadTensorArg("--labels", TestDataPath("client_labels_i64.npy"));
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(2));
  EXPECT_THAT(t->values, ElementsAre(0, 1));
}

TEST(ClientNpyTest, ReordersFortranOrder) {
  auto t = ReadTensorArg("--logits", TestDataPath("client_fortran_f64.npy"));
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(2, 3));
  EXPECT_THAT(t->values, ElementsAre(0, 1, 2, 3, 4, 5));
}

TEST(ClientNpyTest, SwapsBigEndian) {
  auto t = ReadTensorArg("--logits", TestDataPath("client_bigendian_f64.npy"));
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->values, ElementsAre(1.5, -2.0));
}

TEST(ClientNpyTest, TruncatedFileSaysHowManyBytesAreMissing) {
  const std::string path = TestDataPath("client_truncated.npy");
  auto t = ReadTensorArg("--logits", path);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), path + ": data is 20 bytes, shape (2, 3) of <f4 needs 24");
}

TEST(ClientNpyTest, FileWithoutMagicIsRefused) {
  auto t = ParseNpy("z.npy", "1,2,3\n");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "z.npy: not a .npy file (no \\x93NUMPY magic)");
}

TEST(ClientNpyTest, StructuredDtypeIsRefused) {
  std::string header = "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }";
  header.append(128 - 10 - header.size() - 1, ' ');
  header.push_back('\n');
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(header.size()));
  bytes.push_back(0);
  auto t = ParseNpy("z.npy", bytes + header + std::string(8, '\0'));
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("z.npy: unsupported dtype"));
}

TEST(ClientNpyTest, WrittenFileReadsBack) {
  const HostTensor t{{2, 2}, {1, -2.5, 3e-300, 4}};
  auto back = ParseNpy("t.npy", EncodeNpy(t, /*float32=*/false));
  CLIENT_ASSERT_OK(back);
  EXPECT_EQ(back->shape, t.shape);
  EXPECT_EQ(back->values, t.values);
  // numpy requires the data to start on a 64-byte boundary.
  EXPECT_EQ(EncodeNpy(t, true).size() % 64, 16u);
}

TEST(ClientReadTensorArgTest, ChoosesTheReaderByExtension) {
  const std::string csv = WriteTempFile("z.CSV", "1,2\n3,4\n");
  const std::string json = WriteTempFile("z.json", "[1, 2, 3]");
  auto a = ReadTensorArg("--logits", csv);
  auto b = ReadTensorArg("--logits", json);
  CLIENT_ASSERT_OK(a);
  CLIENT_ASSERT_OK(b);
  EXPECT_THAT(a->shape, ElementsAre(2, 2));
  EXPECT_THAT(b->shape, ElementsAre(3));
}

TEST(ClientReadTensorArgTest, MissingFileIsNamed) {
  auto t = ReadTensorArg("--logits", "/nonexistent/z.csv");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "cannot read /nonexistent/z.csv: No such file or directory");
}

TEST(ClientReadTensorArgTest, FileOfUnknownTypeIsExplained) {
  const std::string txt = WriteTempFile("z.txt", "1,2\n");
  auto t = ReadTensorArg("--logits", txt);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("a file, but not .csv, .json or .npy"));
}

TEST(ClientClassIndicesTest, AcceptsRowsAndAColumn) {
  auto a = ToClassIndices("--labels", HostTensor{{3}, {2, 0, 1}});
  auto b = ToClassIndices("--labels", HostTensor{{2, 1}, {1, 0}});
  CLIENT_ASSERT_OK(a);
  CLIENT_ASSERT_OK(b);
  EXPECT_THAT(*a, ElementsAre(2, 0, 1));
  EXPECT_THAT(*b, ElementsAre(1, 0));
}

TEST(ClientClassIndicesTest, RefusesFractionsAndMatrices) {
  auto a = ToClassIndices("--labels", HostTensor{{2}, {1, 0.5}});
  auto b = ToClassIndices("--labels", HostTensor{{2, 2}, {1, 0, 0, 1}});
  ASSERT_FALSE(a.ok());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(a.status().message(), "--labels: value 1 (0.5) is not an integer class index");
  EXPECT_EQ(b.status().message(), "--labels: class indices are one per row, got shape [2, 2]");
}

TEST(ClientFitToShapeTest, ReshapesOnlyAcrossRanks) {
  EXPECT_THAT(FitToShape(HostTensor{{2}, {0, 1}}, {1, 2}).shape, ElementsAre(1, 2));
  EXPECT_THAT(FitToShape(HostTensor{{1}, {2}}, {}).shape, ElementsAre());
  // Same rank, other shape: left for the server to refuse with its shape message.
  EXPECT_THAT(FitToShape(HostTensor{{3, 2}, {0, 0, 0, 0, 0, 0}}, {2, 3}).shape, ElementsAre(3, 2));
}

}  // namespace
}  // namespace gradserve::client
