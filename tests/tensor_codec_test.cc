#include "server/tensor_codec.h"

#include <cmath>
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


v1::Tensor RawHalf(v1::DataType d, std::vector<int64_t> shape, std::vector<uint16_t> bits) {
  v1::Tensor t;
  t.mutable_shape()->Assign(shape.begin(), shape.end());
  t.set_dtype(d);
  t.set_raw(std::string(reinterpret_cast<const char*>(bits.data()), bits.size() * 2));
  return t;
}

TEST(TensorCodecTest, HalfRawIsReadInPlaceOrWidenedExactly) {
  // 1, -2.5, 65504 (largest float16) and the smallest float16 subnormal.
  const v1::Tensor t = RawHalf(v1::DATA_TYPE_FLOAT16, {2, 2}, {0x3c00, 0xc100, 0x7bff, 0x0001});
  const auto h = DecodeHalfTensor(t, "logits", Limits{}, HalfType::kFloat16);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(static_cast<const void*>(h->data()), static_cast<const void*>(t.raw().data()));
  const auto f = DecodeTensor<float>(t, "x", Limits{});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(std::vector<float>(f->data(), f->data() + 4), (std::vector<float>{1.0f, -2.5f, 65504.0f, 0x1p-24f}));
  const auto d = DecodeTensor<double>(RawHalf(v1::DATA_TYPE_BFLOAT16, {1}, {0x3f81}), "x", Limits{});
  EXPECT_EQ(d->data()[0], 1.0 + 0x1p-7);
  // The other half type is rounded: float16 1 + 2^-10 is a bfloat16 tie, to even 1.
  const auto other = DecodeHalfTensor(RawHalf(v1::DATA_TYPE_FLOAT16, {1}, {0x3c01}), "x", Limits{}, HalfType::kBFloat16);
  EXPECT_EQ(other->data()[0], 0x3f80);
  const absl::Status s = DecodeHalfTensor(RawHalf(v1::DATA_TYPE_BFLOAT16, {2, 3}, {1, 2, 3}), "logits", Limits{}, HalfType::kBFloat16).status();
  EXPECT_TRUE(Contains(s, "logits.raw has 6 bytes, but shape [2, 3] of bfloat16 needs 6 × 2 = 12")) << s;
}

TEST(TensorCodecTest, HalfValuesAreRoundedFirstAndMustNotOverflow) {
  v1::Tensor v;
  v.add_shape(2);
  v.set_dtype(v1::DATA_TYPE_FLOAT16);
  v.add_values(0.1);
  v.add_values(-65519.0);  // under the midpoint to 2^16: 65504
  const auto f = DecodeTensor<float>(v, "t", Limits{});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->data()[0], 0.0999755859375f);
  EXPECT_EQ(f->data()[1], -65504.0f);
  const auto h = DecodeHalfTensor(v, "t", Limits{}, HalfType::kFloat16);
  EXPECT_EQ(h->data()[0], 0x2e66);
  v.set_values(1, -65520.0);  // the midpoint: rounds to even, -Inf
  for (const absl::Status& s : {DecodeTensor<double>(v, "t", Limits{}).status(),
                                DecodeHalfTensor(v, "t", Limits{}, HalfType::kFloat16).status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(s, "t.values[1] is -65520, which rounds to -Inf in float16 (largest finite 65504)")) << s;
  }
  // float32 raw in a float16 request: rounded, and 1e5 does not fit.
  const auto r = DecodeHalfTensor(Raw32({2}, {0.1f, 1e5f}), "g", Limits{}, HalfType::kFloat16);
  EXPECT_TRUE(Contains(r.status(), "g.raw[1] is 100000, which rounds to +Inf in float16")) << r.status();
  EXPECT_TRUE(DecodeHalfTensor(Raw32({1}, {1e5f}), "g", Limits{}, HalfType::kBFloat16).ok());
}

TEST(TensorCodecTest, HalfOutputsAndFormat) {
  v1::Tensor raw, values;
  OutputTensor<uint16_t> a(&raw, {2}, Encoding::kRaw, HalfType::kBFloat16);
  a.data()[0] = 0x3f80;
  a.data()[1] = 0xc000;
  a.Commit();
  EXPECT_EQ(raw.dtype(), v1::DATA_TYPE_BFLOAT16);
  EXPECT_EQ(raw.raw(), std::string("\x80\x3f\x00\xc0", 4));
  OutputTensor<uint16_t> b(&values, {2}, Encoding::kValues, HalfType::kFloat16);
  b.data()[0] = 0x2e66;
  b.data()[1] = 0x7c00;
  b.Commit();
  EXPECT_EQ(values.dtype(), v1::DATA_TYPE_FLOAT16);
  EXPECT_EQ(values.values(0), 0.0999755859375);
  EXPECT_TRUE(std::isinf(values.values(1)));
  EXPECT_EQ(WireBytes(10, v1::DATA_TYPE_FLOAT16, Encoding::kRaw), 20);
  EXPECT_EQ(WireBytes(10, v1::DATA_TYPE_BFLOAT16, Encoding::kValues), 80);
  v1::Tensor v;
  v.add_values(1);
  v.set_dtype(v1::DATA_TYPE_BFLOAT16);
  EXPECT_EQ(LogitsFormat(v)->dtype, v1::DATA_TYPE_BFLOAT16);
  EXPECT_EQ(LogitsFormat(v)->encoding, Encoding::kValues);
  v1::Tensor no_dtype = RawHalf(v1::DATA_TYPE_UNSPECIFIED, {1}, {0});
  EXPECT_TRUE(Contains(LogitsFormat(no_dtype).status(), "DATA_TYPE_FLOAT16 or DATA_TYPE_BFLOAT16"));
}

}  // namespace
}  // namespace gradserve
