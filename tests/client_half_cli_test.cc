// The CLI's float16 and bfloat16 end to end, against a server that serves half precision (API
// revision 4): a float16 .npy is sent and answered as float16 and written back as '<f2';
// --dtype bf16 sends bfloat16 and gets float32 .npy files holding bfloat16 values; bench
// generates half payloads.
#include <cmath>
#include <string>
#include <vector>

#include "client/half.h"
#include "client/inputs.h"
#include "client/npy.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gradserve/v1/gradserve.pb.h"
#include "gtest/gtest.h"
#include "tests/cli_server_fixture.h"
#include "tests/client_test_util.h"
#include "tests/server_process.h"

namespace gradserve::client {
namespace {

using gradserve::v1::DATA_TYPE_BFLOAT16;
using gradserve::v1::DATA_TYPE_FLOAT16;
using gradserve::v1::DATA_TYPE_FLOAT32;
using ::testing::HasSubstr;
using testing::CliResult;
using testing::CliServerTest;
using testing::RunCli;
using testing::WriteTempFile;

class ClientHalfCliTest : public CliServerTest {
 protected:
  static void SetUpTestSuite() { StartServer(); }
};

// Logits that float16 holds exactly, so float64 on the same numbers is the reference.
HostTensor HalfLogits() {
  HostTensor z{{4, 5}, {}, DATA_TYPE_FLOAT16};
  for (int i = 0; i < 20; ++i) z.values.push_back(HalfToDouble(DoubleToHalf(std::sin(i) * 3)));
  return z;
}

TEST_F(ClientHalfCliTest, Float16NpyIsSentAndWrittenAsFloat16) {
  const HostTensor z = HalfLogits();
  const std::string in = WriteTempFile("z16.npy", EncodeNpy(z, DATA_TYPE_FLOAT16));
  const std::string out16 = WriteTempFile("g16.npy", ""), out64 = WriteTempFile("g64.npy", "");
  const CliResult half = Run({"backward", "--logits", in, "--labels", "0,1,2,3", "--output", out16});
  const CliResult wide = Run({"backward", "--logits", in, "--labels", "0,1,2,3", "--dtype", "f64", "--output", out64});
  ASSERT_EQ(half.exit_code, 0) << half.err;
  ASSERT_EQ(wide.exit_code, 0) << wide.err;
  EXPECT_THAT(half.out, HasSubstr("grad_logits  [4, 5] float16"));
  auto bytes = ReadWholeFile(out16);
  CLIENT_ASSERT_OK(bytes);
  EXPECT_THAT(*bytes, HasSubstr("'descr': '<f2'"));
  auto g16 = ParseNpy(out16, *bytes);
  auto g64 = ReadTensorArg("--logits", out64);
  CLIENT_ASSERT_OK(g16);
  CLIENT_ASSERT_OK(g64);
  ASSERT_EQ(g16->values.size(), g64->values.size());
  // docs/api.md's half-precision bound: (float32 bound + 2^-11) · max(1, max |float64 result|).
  for (size_t i = 0; i < g16->values.size(); ++i) {
    EXPECT_NEAR(g16->values[i], g64->values[i], 1e-5 + std::ldexp(1, -11)) << i;
  }
}

TEST_F(ClientHalfCliTest, Bfloat16IsSentOnRequestAndWrittenAsFloat32) {
  const std::string out = WriteTempFile("gbf.npy", "");
  const CliResult r = Run({"--format=json", "forward", "--logits", "0.3,1.7,-2.2;1,1,1", "--labels", "1,2",
                           "--dtype", "bf16", "--output", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("DATA_TYPE_BFLOAT16"));  // the loss, in the response's dtype
  auto bytes = ReadWholeFile(out);
  CLIENT_ASSERT_OK(bytes);
  EXPECT_THAT(*bytes, HasSubstr("'descr': '<f4'"));
  auto p = ParseNpy(out, *bytes);
  CLIENT_ASSERT_OK(p);
  for (double v : p->values) EXPECT_EQ(Bfloat16ToDouble(DoubleToBfloat16(v)), v) << "not a bfloat16: " << v;
  EXPECT_NEAR(p->values[3], 1.0 / 3, std::ldexp(1, -8));
}

TEST_F(ClientHalfCliTest, BenchSendsHalfPayloads) {
  for (const char* dtype : {"f16", "bf16"}) {
    const CliResult r = Run({"bench", "--dtype", dtype, "--shape", "8,100", "--requests", "40", "--format=json"});
    EXPECT_EQ(r.exit_code, 0) << dtype << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr(std::string("\"dtype\": \"") + dtype + "\""));
    EXPECT_THAT(r.out, HasSubstr("\"errors\": 0"));
  }
}

}  // namespace
}  // namespace gradserve::client
