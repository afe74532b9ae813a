#include "server/tensor_codec.h"

#include <cstring>

#include "gtest/gtest.h"

namespace gradserve {
namespace {

v1::Tensor Raw32(std::vector<int64_t> shape, std::vector<float> v) {
  v1::Tensor t;
  t.mutable_shape()->Assign(shape.begin(), shape.end());
  t.set_dtype(v1::DATA_TYPE_FLOAT32);
  t.set_raw(std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4));
  return t;
}

bool Contains(const absl::Status& s, const std::string& part) {
  return std::string(s.message()).find(part) != std::string::npos;
}

TEST(TensorCodecTest, RawOfTheComputeDtypeIsReadInPlace) {
  const v1::Tensor t = Raw32({2, 2}, {1, 2, 3, 4});
  const auto in = DecodeTensor<float>(t, "logits", Limits{});
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(static_cast<const void*>(in->data()), static_cast<const void*>(t.raw().data()));
  EXPECT_EQ(in->shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(in->data()[3], 4.0f);
}

TEST(TensorCodecTest, OtherDtypesAreConverted) {
  const v1::Tensor t = Raw32({3}, {0.5f, -1.0f, 2.0f});
  const auto in = DecodeTensor<double>(t, "x", Limits{});
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(in->data()[1], -1.0);
  v1::Tensor values;
  values.add_shape(2);
  values.add_values(0.1);
  values.add_values(0.2);
  const auto f = DecodeTensor<float>(values, "x", Limits{});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->data()[0], 0.1f);
  const auto d = DecodeTensor<double>(values, "x", Limits{});
  EXPECT_EQ(d->data(), values.values().data());  // float64 values: in place
}

TEST(TensorCodecTest, ByteLengthMustMatchShapeTimesDtype) {
  v1::Tensor t = Raw32({2, 3}, {1, 2, 3, 4, 5});
  const absl::Status s = DecodeTensor<float>(t, "logits", Limits{}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s, "logits.raw has 20 bytes, but shape [2, 3] of float32 needs 6 × 4 = 24")) << s;
}

TEST(TensorCodecTest, EncodingErrors) {
  v1::Tensor both = Raw32({1}, {1});
  both.add_values(1);
  EXPECT_TRUE(Contains(DecodeTensor<float>(both, "t", Limits{}).status(), "both raw and values"));
  v1::Tensor neither;
  neither.add_shape(2);
  EXPECT_TRUE(Contains(DecodeTensor<float>(neither, "t", Limits{}).status(), "neither raw nor values"));
  v1::Tensor no_dtype = Raw32({1}, {1});
  no_dtype.set_dtype(v1::DATA_TYPE_UNSPECIFIED);
  EXPECT_TRUE(Contains(DecodeTensor<float>(no_dtype, "t", Limits{}).status(), "t.raw needs dtype"));
  v1::Tensor negative;
  negative.add_shape(-2);
  EXPECT_TRUE(Contains(DecodeTensor<float>(negative, "t", Limits{}).status(), "negative dimension"));
  v1::Tensor count;
  count.add_shape(3);
  count.add_values(1);
  EXPECT_TRUE(Contains(DecodeTensor<double>(count, "t", Limits{}).status(), "t.values has 1 numbers, but shape [3] needs 3"));
}

TEST(TensorCodecTest, ElementLimitIsCheckedWithoutOverflow) {
  v1::Tensor huge;
  for (int k = 0; k < 4; ++k) huge.add_shape(int64_t{1} << 40);  // the product overflows int64
  const absl::Status s = DecodeTensor<float>(huge, "logits", Limits{}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(Contains(s, "--max_elements")) << s;
  v1::Tensor empty;
  empty.add_shape(int64_t{1} << 40);
  empty.add_shape(0);
  const auto decoded = DecodeTensor<float>(empty, "t", Limits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->size(), 0);
  EXPECT_NE(decoded->data(), nullptr) << "an empty tensor is given, not absent";
}

TEST(TensorCodecTest, OutputsWriteIntoTheMessage) {
  v1::Tensor raw, values32, values64;
  OutputTensor<float> a(&raw, {2}, Encoding::kRaw);
  a.data()[0] = 1.5f;
  a.data()[1] = -2.0f;
  a.Commit();
  float back[2];
  std::memcpy(back, raw.raw().data(), 8);
  EXPECT_EQ(back[1], -2.0f);
  EXPECT_EQ(raw.dtype(), v1::DATA_TYPE_FLOAT32);
  OutputTensor<float> b(&values32, {1, 1}, Encoding::kValues);
  b.data()[0] = 0.25f;
  b.Commit();
  EXPECT_EQ(values32.values(0), 0.25);
  EXPECT_EQ(values32.dtype(), v1::DATA_TYPE_FLOAT32);
  OutputTensor<double> c(&values64, {}, Encoding::kValues);
  c.data()[0] = 3.0;
  c.Commit();
  EXPECT_EQ(values64.values_size(), 1);
  EXPECT_EQ(values64.shape_size(), 0);
}

TEST(TensorCodecTest, LogitsFormatDecidesDtypeAndEncoding) {
  v1::Tensor v;
  v.add_values(1);
  EXPECT_EQ(LogitsFormat(v)->dtype, v1::DATA_TYPE_FLOAT64);
  v.set_dtype(v1::DATA_TYPE_FLOAT32);
  EXPECT_EQ(LogitsFormat(v)->dtype, v1::DATA_TYPE_FLOAT32);
  EXPECT_EQ(LogitsFormat(v)->encoding, Encoding::kValues);
  v1::Tensor bad;
  bad.set_dtype(static_cast<v1::DataType>(7));
  EXPECT_EQ(LogitsFormat(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gradserve
