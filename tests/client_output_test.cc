// What the client prints and writes: tensor encoding, aligned tables, the verify report, JSON
// that parses back, and .npy/.csv output files.
#include <cmath>

#include "client/inputs.h"
#include "client/npy.h"
#include "client/output_file.h"
#include "client/response_json.h"
#include "client/response_text.h"
#include "client/table_format.h"
#include "client/tensor_codec.h"
#include "client/text_grid.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/client_test_util.h"

namespace gradserve::client {
namespace {

using gradserve::v1::DATA_TYPE_FLOAT32;
using gradserve::v1::DATA_TYPE_FLOAT64;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

gradserve::v1::Tensor Wire(const HostTensor& t, gradserve::v1::DataType dtype = DATA_TYPE_FLOAT64,
                           Encoding encoding = Encoding::kRaw) {
  gradserve::v1::Tensor out;
  EncodeTensor(t, {dtype, encoding}, &out);
  return out;
}

// The motivating case as the server answers it.
gradserve::v1::VerifyGradientResponse MotivatingVerdict() {
  gradserve::v1::VerifyGradientResponse r;
  r.set_ok(false);
  *r.mutable_analytic_grad() = Wire({{2}, {0.5, -0.5}});
  *r.mutable_numeric_grad() = Wire({{2}, {0.5, -0.5}});
  r.set_candidate_max_abs_error(5.625);
  gradserve::v1::Finding* f = r.add_findings();
  f->set_code(gradserve::v1::FINDING_CODE_JACOBIAN_AT_LOGITS);
  f->set_message("J(a) with a = (0.5, 0.5) gives (0.5, -0.5) = a - t");
  *f->mutable_mistaken_grad() = Wire({{2}, {6.125, 2.625}});
  r.set_summary("Gradient NOT verified.");
  return r;
}

TEST(ClientTensorCodecTest, RawFloat32RoundTripsThroughFloat) {
  const gradserve::v1::Tensor w = Wire({{2}, {0.1, -2}}, DATA_TYPE_FLOAT32);
  EXPECT_EQ(w.raw().size(), 8u);
  auto back = DecodeTensor(w);
  CLIENT_ASSERT_OK(back);
  EXPECT_THAT(back->values, ElementsAre(static_cast<double>(0.1f), -2.0));
}

TEST(ClientTensorCodecTest, ValuesKeepDoublesAndTheDtype) {
  const gradserve::v1::Tensor w = Wire({{1, 2}, {0.1, 2}}, DATA_TYPE_FLOAT32, Encoding::kValues);
  EXPECT_TRUE(w.raw().empty());
  EXPECT_EQ(w.dtype(), DATA_TYPE_FLOAT32);
  EXPECT_THAT(w.values(), ElementsAre(0.1, 2));
  EXPECT_THAT(w.shape(), ElementsAre(1, 2));
}

TEST(ClientTensorCodecTest, MismatchedRawIsAnError) {
  gradserve::v1::Tensor w = Wire({{2}, {1, 2}});
  w.mutable_raw()->resize(12);
  auto back = DecodeTensor(w);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().message(), "raw tensor has 12 bytes, shape [2] of float64 needs 16");
}

TEST(ClientTableFormatTest, AlignsColumnsUnderLabels) {
  const std::string table = FormatTensor("grad_logits", {{2, 2}, {0.5, -0.5, 0.474979, -0.474979}}, "float64",
                                         {"row", "class"}, TableStyle{});
  EXPECT_EQ(table,
            "grad_logits  [2, 2] float64\n"
            "          class 0    class 1\n"
            "  row 0       0.5       -0.5\n"
            "  row 1  0.474979  -0.474979\n");
}

TEST(ClientTableFormatTest, ScalarIsOneLine) {
  EXPECT_EQ(FormatTensor("loss", {{}, {0.6931471805599453}}, "float64", {}, TableStyle{}),
            "loss  0.693147  float64\n");
}

TEST(ClientTableFormatTest, BigTensorsAreElidedInTheMiddle) {
  HostTensor t{{100, 50}, std::vector<double>(5000, 1.0)};
  const std::string table = FormatTensor("z", t, "float32", {"row", "class"}, TableStyle{});
  EXPECT_THAT(table, HasSubstr("row 99"));
  EXPECT_THAT(table, HasSubstr("class 49"));
  EXPECT_THAT(table, Not(HasSubstr("row 50")));
  EXPECT_THAT(table, HasSubstr("…"));
  EXPECT_LT(std::count(table.begin(), table.end(), '\n'), 25);
}

TEST(ClientTableFormatTest, RankThreeIsOneGridPerLeadingIndex) {
  HostTensor j{{2, 2, 2}, {0.25, -0.25, -0.25, 0.25, 0.1, -0.1, -0.1, 0.1}};
  const std::string table = FormatTensor("jacobian", j, "float64", {"row", "class", "class"}, TableStyle{});
  EXPECT_THAT(table, HasSubstr(" row 0:\n"));
  EXPECT_THAT(table, HasSubstr(" row 1:\n"));
  EXPECT_THAT(table, HasSubstr("  class 1    -0.25     0.25\n row 1:\n"));
}

TEST(ClientVerifyTextTest, VerdictFindingAndRightGradientComeInThatOrder) {
  gradserve::v1::VerifyGradientRequest request;
  *request.mutable_candidate_grad() = Wire({{2}, {6.125, 2.625}});
  auto text = VerifyText(request, MotivatingVerdict(), TableStyle{});
  CLIENT_ASSERT_OK(text);
  const size_t verdict = text->find("verdict: WRONG, the candidate gradient is wrong");
  const size_t finding = text->find("finding JACOBIAN_AT_LOGITS (residual 0)\n  J(a) with a = (0.5, 0.5)");
  const size_t right = text->find("right gradient (analytic_grad)  [2] float64\n    class 0  class 1\n        0.5     -0.5\n");
  ASSERT_NE(verdict, std::string::npos) << *text;
  ASSERT_NE(finding, std::string::npos) << *text;
  ASSERT_NE(right, std::string::npos) << *text;
  EXPECT_LT(verdict, finding);
  EXPECT_LT(finding, right);
}

TEST(ClientVerifyTextTest, NoCandidateIsASelfCheck) {
  gradserve::v1::VerifyGradientResponse r = MotivatingVerdict();
  r.set_ok(true);
  r.clear_findings();
  auto text = VerifyText(gradserve::v1::VerifyGradientRequest(), r, TableStyle{});
  CLIENT_ASSERT_OK(text);
  EXPECT_THAT(*text, HasSubstr("verdict: OK, the analytic gradient matches the numeric derivative"));
  EXPECT_THAT(*text, Not(HasSubstr("candidate_grad:")));
}

TEST(ClientResponseJsonTest, DecodesRawTensorsAndParsesBack) {
  const gradserve::v1::VerifyGradientResponse r = MotivatingVerdict();
  auto json = ResponseJson(r);
  CLIENT_ASSERT_OK(json);
  EXPECT_THAT(*json, HasSubstr(R"("ok":false)"));  // printed although false
  EXPECT_THAT(*json, HasSubstr(R"("analytic_grad":{"shape":["2"],"dtype":"DATA_TYPE_FLOAT64","values":[0.5,-0.5]})"));
  EXPECT_THAT(*json, HasSubstr(R"("values":[6.125,2.625])"));  // inside findings too
  EXPECT_THAT(*json, Not(HasSubstr("raw")));
  EXPECT_EQ(json->back(), '\n');

  gradserve::v1::VerifyGradientResponse back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &back).ok());
  EXPECT_EQ(back.findings(0).code(), gradserve::v1::FINDING_CODE_JACOBIAN_AT_LOGITS);
  EXPECT_THAT(back.analytic_grad().values(), ElementsAre(0.5, -0.5));
}

TEST(ClientResponseJsonTest, BrokenTensorIsReportedWithItsField) {
  gradserve::v1::BackwardResponse r;
  *r.mutable_grad_logits() = Wire({{2}, {1, 2}});
  r.mutable_grad_logits()->mutable_raw()->resize(3);
  auto json = ResponseJson(r);
  ASSERT_FALSE(json.ok());
  EXPECT_THAT(json.status().message(), HasSubstr("grad_logits: raw tensor has 3 bytes"));
}

TEST(ClientOutputFileTest, CsvHasOneLinePerRowAndRoundTrips) {
  const HostTensor t{{2, 3}, {0.1, 2, -3, 4.5, 1e-300, 6}};
  const std::string csv = EncodeCsv(t, DATA_TYPE_FLOAT64);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 2);
  auto back = ParseCsvGrid("t.csv", csv);
  CLIENT_ASSERT_OK(back);
  EXPECT_EQ(back->values, t.values);
  EXPECT_EQ(EncodeCsv({{2}, {0.5, -0.5}}, DATA_TYPE_FLOAT64), "0.5,-0.5\n");
  EXPECT_EQ(EncodeCsv({{}, {2}}, DATA_TYPE_FLOAT64), "2\n");
}

TEST(ClientOutputFileTest, WritesTheChosenTensorAsNpy) {
  gradserve::v1::BackwardResponse r;
  *r.mutable_grad_logits() = Wire({{1, 2}, {0.5, -0.5}}, DATA_TYPE_FLOAT32);
  const std::string path = testing::WriteTempFile("g.npy", "");
  ASSERT_TRUE(WriteResponseTensor(r, "grad_logits", path).ok());
  auto bytes = ReadWholeFile(path);
  CLIENT_ASSERT_OK(bytes);
  EXPECT_NE(bytes->find("'descr': '<f4'"), std::string::npos);
  auto back = ParseNpy(path, *bytes);
  CLIENT_ASSERT_OK(back);
  EXPECT_THAT(back->shape, ElementsAre(1, 2));
  EXPECT_THAT(back->values, ElementsAre(0.5, -0.5));
}

TEST(ClientOutputFileTest, AbsentTensorAndUnknownFieldAreExplained) {
  gradserve::v1::BackwardResponse r;
  const absl::Status absent = WriteResponseTensor(r, "jacobian", testing::WriteTempFile("j.npy", ""));
  EXPECT_EQ(absent.message(), "--output: the response has no jacobian (was it asked for?)");
  const absl::Status unknown = CheckOutput(gradserve::v1::BackwardResponse::descriptor(), "grads", "g.npy");
  EXPECT_EQ(unknown.message(),
            "--output-field grads: BackwardResponse has the tensors grad_logits, loss, grad_probabilities, "
            "jacobian, probabilities");
  EXPECT_THAT(CheckOutput(gradserve::v1::BackwardResponse::descriptor(), "jacobian", "j.txt").message(),
              HasSubstr("name a .npy or .csv file"));
}

}  // namespace
}  // namespace gradserve::client
