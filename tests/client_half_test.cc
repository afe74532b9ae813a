// float16 and bfloat16 in the client (client/half.h, tensor_codec, npy): narrowing rounds once to
// nearest-even, widening is exact, and half tensors survive the wire codec and .npy files.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "client/half.h"
#include "client/npy.h"
#include "client/requests.h"
#include "client/tensor_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client_test_util.h"

namespace gradserve::client {
namespace {

using gradserve::v1::DATA_TYPE_BFLOAT16;
using gradserve::v1::DATA_TYPE_FLOAT16;
using gradserve::v1::DATA_TYPE_FLOAT32;
using gradserve::v1::DATA_TYPE_FLOAT64;
using ::testing::ElementsAre;
using testing::WriteTempFile;

TEST(ClientHalfTest, KnownFloat16Values) {
  EXPECT_EQ(DoubleToHalf(1.0), 0x3c00);
  EXPECT_EQ(DoubleToHalf(-2.0), 0xc000);
  EXPECT_EQ(DoubleToHalf(0.1), 0x2e66);
  EXPECT_EQ(DoubleToHalf(65504.0), 0x7bff);       // the largest finite
  EXPECT_EQ(DoubleToHalf(65519.99), 0x7bff);      // below the midpoint to 2^16
  EXPECT_EQ(DoubleToHalf(65520.0), 0x7c00);       // the midpoint rounds (to even) to Inf
  EXPECT_EQ(DoubleToHalf(std::ldexp(1, -24)), 0x0001);  // the smallest subnormal
  EXPECT_EQ(DoubleToHalf(std::ldexp(1, -25)), 0x0000);  // half of it: a tie, to even (zero)
  EXPECT_EQ(DoubleToHalf(std::ldexp(3, -26)), 0x0001);  // 0.75 of it
  EXPECT_EQ(DoubleToHalf(-0.0), 0x8000);
  EXPECT_EQ(DoubleToHalf(-INFINITY), 0xfc00);
  EXPECT_EQ(DoubleToHalf(std::nan("")) & 0x7e00, 0x7e00);
  EXPECT_EQ(HalfToDouble(0x3555), 0.333251953125);
  EXPECT_EQ(HalfToDouble(0x0001), std::ldexp(1, -24));
  EXPECT_TRUE(std::isnan(HalfToDouble(0x7e00)));
  EXPECT_EQ(HalfToDouble(0xfc00), -INFINITY);
}

TEST(ClientHalfTest, TiesGoToEven) {
  EXPECT_EQ(DoubleToHalf(1 + std::ldexp(1, -11)), 0x3c00);      // 1 + half an ulp: down to 1
  EXPECT_EQ(DoubleToHalf(1 + 3 * std::ldexp(1, -11)), 0x3c02);  // 1 + 1.5 ulp: up to 1 + 2 ulp
  EXPECT_EQ(DoubleToBfloat16(1 + std::ldexp(1, -8)), 0x3f80);
  EXPECT_EQ(DoubleToBfloat16(1 + 3 * std::ldexp(1, -8)), 0x3f82);
}

TEST(ClientHalfTest, RoundsOnceFromTheDouble) {
  // Just above a float16 tie: via float32 the excess is lost and the tie goes to even (1.0);
  // rounded once, the value is above the midpoint and goes up.
  const double x = 1 + std::ldexp(1, -11) + std::ldexp(1, -40);
  EXPECT_EQ(DoubleToHalf(x), 0x3c01);
  EXPECT_EQ(DoubleToBfloat16(1 + std::ldexp(1, -8) + std::ldexp(1, -40)), 0x3f81);
}

TEST(ClientHalfTest, EveryHalfValueRoundTrips) {
  for (uint32_t b = 0; b <= 0xffff; ++b) {
    const uint16_t bits = static_cast<uint16_t>(b);
    const double h = HalfToDouble(bits), bf = Bfloat16ToDouble(bits);
    if (!std::isnan(h)) {
      EXPECT_EQ(DoubleToHalf(h), bits) << std::hex << b;
    }
    if (!std::isnan(bf)) {
      EXPECT_EQ(DoubleToBfloat16(bf), bits) << std::hex << b;
    }
  }
}

TEST(ClientHalfTest, MatchesTheCompilersFloat16Conversion) {
  // GCC's _Float16 conversion from double (libgcc) rounds once, to nearest-even.
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> exponent(-27, 17);
  for (int i = 0; i < 200000; ++i) {
    const double x = (rng() & 1 ? -1 : 1) * std::exp2(exponent(rng));
    const _Float16 ref = static_cast<_Float16>(x);
    uint16_t ref_bits;
    std::memcpy(&ref_bits, &ref, 2);
    ASSERT_EQ(DoubleToHalf(x), ref_bits) << x;
  }
}

TEST(ClientHalfTest, Bfloat16IsTheNearestNeighbour) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> exponent(-135, 128);
  for (int i = 0; i < 200000; ++i) {
    const double x = std::exp2(exponent(rng)) * (1 + (rng() % 1000) * 1e-6);
    const uint16_t b = DoubleToBfloat16(x);
    const double r = Bfloat16ToDouble(b);
    if (std::isinf(r)) {
      ASSERT_GE(x, Bfloat16ToDouble(0x7f7f) + std::ldexp(1, 127 - 8)) << x;
      continue;
    }
    const double below = b > 0 ? Bfloat16ToDouble(b - 1) : 0, above = Bfloat16ToDouble(b + 1);
    ASSERT_LE(std::fabs(x - r), std::fabs(x - below)) << x;
    ASSERT_LE(std::fabs(x - r), std::fabs(x - above)) << x;
    if (std::fabs(x - r) == std::fabs(x - below) || std::fabs(x - r) == std::fabs(x - above)) {
      ASSERT_EQ(b & 1, 0) << x;  // a tie went to the even neighbour
    }
  }
}

TEST(ClientHalfTest, WireCodecEncodesAndDecodesHalfTensors) {
  const HostTensor t{{3}, {1.0, 0.1, -65504.0}};
  gradserve::v1::Tensor f16, bf16;
  EncodeTensor(t, {DATA_TYPE_FLOAT16, Encoding::kRaw}, &f16);
  EncodeTensor(t, {DATA_TYPE_BFLOAT16, Encoding::kRaw}, &bf16);
  EXPECT_EQ(f16.dtype(), DATA_TYPE_FLOAT16);
  EXPECT_EQ(f16.raw(), std::string("\x00\x3c\x66\x2e\xff\xfb", 6));
  EXPECT_EQ(bf16.raw(), std::string("\x80\x3f\xcd\x3d\x80\xc7", 6));
  auto back = DecodeTensor(f16);
  CLIENT_ASSERT_OK(back);
  EXPECT_EQ(back->dtype, DATA_TYPE_FLOAT16);
  EXPECT_THAT(back->values, ElementsAre(1.0, HalfToDouble(0x2e66), -65504.0));
  auto back_bf = DecodeTensor(bf16);
  CLIENT_ASSERT_OK(back_bf);
  EXPECT_THAT(back_bf->values, ElementsAre(1.0, Bfloat16ToDouble(0x3dcd), -65536.0));
  gradserve::v1::Tensor short_raw = f16;
  short_raw.mutable_raw()->pop_back();
  EXPECT_FALSE(DecodeTensor(short_raw).ok());
}

TEST(ClientHalfTest, NpyFloat16ReadsAndWritesBack) {
  const HostTensor t{{2, 2}, {1.0, -0.5, HalfToDouble(0x2e66), 65504.0}, DATA_TYPE_FLOAT16};
  const std::string file = EncodeNpy(t, DATA_TYPE_FLOAT16);
  EXPECT_NE(file.find("'descr': '<f2'"), std::string::npos);
  EXPECT_EQ(file.size() % 64, 8u);  // a header padded to 64 bytes, 4 × 2 bytes of data
  auto back = ParseNpy("h.npy", file);
  CLIENT_ASSERT_OK(back);
  EXPECT_EQ(back->dtype, DATA_TYPE_FLOAT16);
  EXPECT_EQ(back->values, t.values);
  // Big-endian float16, as numpy writes '>f2'.
  std::string be = file;
  be.replace(be.find("<f2"), 3, ">f2");
  for (size_t i = be.size() - 8; i < be.size(); i += 2) std::swap(be[i], be[i + 1]);
  auto big = ParseNpy("h.npy", be);
  CLIENT_ASSERT_OK(big);
  EXPECT_EQ(big->values, t.values);
}

TEST(ClientHalfTest, NpyBfloat16IsWrittenAsFloat32) {
  const HostTensor t{{2}, {Bfloat16ToDouble(0x3dcd), -3.0}, DATA_TYPE_BFLOAT16};
  const std::string file = EncodeNpy(t, DATA_TYPE_BFLOAT16);
  EXPECT_NE(file.find("'descr': '<f4'"), std::string::npos);
  auto back = ParseNpy("b.npy", file);
  CLIENT_ASSERT_OK(back);
  EXPECT_EQ(back->dtype, DATA_TYPE_FLOAT32);
  EXPECT_EQ(back->values, t.values);  // float32 holds every bfloat16
}

TEST(ClientHalfTest, RequestsKeepTheInputsDtypeUnlessToldOtherwise) {
  const HostTensor z{{2, 2}, {1.0, 2.0, 0.5, 0.25}, DATA_TYPE_FLOAT16};
  const std::string npy = WriteTempFile("z16.npy", EncodeNpy(z, DATA_TYPE_FLOAT16));
  BackwardInputs in;
  in.loss.logits = npy;
  in.loss.target_probs = "0,1;1,0";
  in.loss.format = {gradserve::v1::DATA_TYPE_UNSPECIFIED, Encoding::kRaw};
  auto own = BuildBackwardRequest(in);
  CLIENT_ASSERT_OK(own);
  EXPECT_EQ(own->logits().dtype(), DATA_TYPE_FLOAT16);
  EXPECT_EQ(own->logits().raw().size(), 8u);
  EXPECT_EQ(own->targets().probabilities().dtype(), DATA_TYPE_FLOAT16);  // every tensor in one dtype
  in.loss.format.dtype = DATA_TYPE_BFLOAT16;
  auto bf = BuildBackwardRequest(in);
  CLIENT_ASSERT_OK(bf);
  EXPECT_EQ(bf->logits().dtype(), DATA_TYPE_BFLOAT16);
  EXPECT_EQ(bf->logits().raw(), std::string("\x80\x3f\x00\x40\x00\x3f\x80\x3e", 8));
  in.loss.logits = "1,2;3,4";  // inline text is float64
  in.loss.format.dtype = gradserve::v1::DATA_TYPE_UNSPECIFIED;
  auto text = BuildBackwardRequest(in);
  CLIENT_ASSERT_OK(text);
  EXPECT_EQ(text->logits().dtype(), DATA_TYPE_FLOAT64);
  const HostTensor f{{1, 2}, {1.5, 2.5}, DATA_TYPE_FLOAT32};
  in.loss.logits = WriteTempFile("z32.npy", EncodeNpy(f, DATA_TYPE_FLOAT32));
  in.loss.target_probs = "0,1";
  auto f32 = BuildBackwardRequest(in);
  CLIENT_ASSERT_OK(f32);
  EXPECT_EQ(f32->logits().dtype(), DATA_TYPE_FLOAT32);
}

}  // namespace
}  // namespace gradserve::client
