// Reading tensors from the command line: inline text, CSV, JSON and .npy, with errors that say
// where the problem is.
#include <cmath>

#include "client/inputs.h"
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
  auto back = ParseNpy("t.npy", EncodeNpy(t, gradserve::v1::DATA_TYPE_FLOAT64));
  CLIENT_ASSERT_OK(back);
  EXPECT_EQ(back->shape, t.shape);
  EXPECT_EQ(back->values, t.values);
  // numpy requires the data to start on a 64-byte boundary.
  EXPECT_EQ(EncodeNpy(t, gradserve::v1::DATA_TYPE_FLOAT32).size() % 64, 16u);
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

TEST(ClientReadTensorArgTest, FileOfUnknownTypeListsTheKnownExtensions) {
  const std::string txt = WriteTempFile("z.txt", "1,2\n");
  auto t = ReadTensorArg("--logits", txt);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "--logits " + txt + ": a file of unknown type; the known extensions are "
                                  ".csv, .json and .npy (name it by its format)");
}

TEST(ClientReadTensorArgTest, MissingFileOfUnknownTypeIsNamedAsMissing) {
  for (const std::string arg : {"z.txt", "data/logits", "z.TSV"}) {
    auto t = ReadTensorArg("--logits", arg);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().message(), "--logits " + arg + ": no such file (give inline numbers like 1,2;3,4 or a "
                                    ".csv, .json or .npy file)");
  }
  // Not a file name: the inline parser's message, which points at the bad value.
  auto u = ReadTensorArg("--logits", "1,x");
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().message(), "--logits \"1,x\": column 3: expected a number, found \"x\"");
}

TEST(ClientCsvGridTest, HeaderLineIsSkipped) {
  auto t = ParseCsvGrid("z.csv", "a,b,c\n1,2,3\n4,5,6\n");
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(2, 3));
  EXPECT_THAT(t->values, ElementsAre(1, 2, 3, 4, 5, 6));
}

TEST(ClientCsvGridTest, PandasIndexColumnIsDropped) {
  // pandas.DataFrame(array).to_csv("z.csv"): a header ",0,1" and the row index in front.
  auto t = ParseCsvGrid("z.csv", ",0,1\n0,0.5,1.5\n1,2.5,3.5\n");
  CLIENT_ASSERT_OK(t);
  EXPECT_THAT(t->shape, ElementsAre(2, 2));
  EXPECT_THAT(t->values, ElementsAre(0.5, 1.5, 2.5, 3.5));
}

TEST(ClientCsvGridTest, FirstLineWithANumberIsDataNotAHeader) {
  auto t = ParseCsvGrid("z.csv", "1,oops\n3,4\n");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "z.csv:1:3: expected a number, found \"oops\"");
  auto u = ParseCsvGrid("z.csv", "a,b\nc,d\n");  // only the first line can be a header
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().message(), "z.csv:2:1: expected a number, found \"c\"");
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
