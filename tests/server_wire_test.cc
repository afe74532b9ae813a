// The real server's big responses on the wire: the bytes a client receives are exactly protobuf's
// serialisation of the message they parse to, big tensors sent from their own buffers included,
// over a unary call and over BackwardStream.
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"
#include "tests/server_test_util.h"

namespace gradserve::testing {
namespace {

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

pb::BackwardRequest BigChainRule() {
  const int64_t n = 512, c = 1000;  // 2 MB per tensor: each is sent as a slice of its own
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> z(n * c);
  for (float& v : z) v = normal(rng);
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) labels[i] = (i * 31) % c;
  pb::BackwardRequest req;
  *req.mutable_logits() = Raw<float>({n, c}, z);
  *req.mutable_targets() = Labels(labels);
  req.set_method(pb::METHOD_CHAIN_RULE);
  req.set_return_probabilities(true);
  return req;
}

// The response must parse, re-serialise to the very bytes received, and hold a correct gradient.
void ExpectCanonicalAndRight(const std::string& bytes, const pb::BackwardRequest& req) {
  pb::BackwardResponse resp;
  ASSERT_TRUE(resp.ParseFromString(bytes));
  EXPECT_EQ(resp.SerializeAsString(), bytes);
  const int64_t n = req.logits().shape(0), c = req.logits().shape(1);
  ASSERT_EQ(resp.grad_logits().raw().size(), static_cast<size_t>(4 * n * c));
  ASSERT_EQ(resp.probabilities().raw().size(), static_cast<size_t>(4 * n * c));
  ASSERT_EQ(resp.grad_probabilities().raw().size(), static_cast<size_t>(4 * n * c));
  const float* z = reinterpret_cast<const float*>(req.logits().raw().data());
  const float* g = reinterpret_cast<const float*>(resp.grad_logits().raw().data());
  double worst = 0;
  for (int64_t i = 0; i < n; i += 97) {  // a sample of rows against the closed form
    double m = -1e300, sum = 0;
    for (int64_t j = 0; j < c; ++j) m = std::max(m, double{z[i * c + j]});
    for (int64_t j = 0; j < c; ++j) sum += std::exp(z[i * c + j] - m);
    for (int64_t j = 0; j < c; ++j) {
      const double want = (std::exp(z[i * c + j] - m) / sum - (j == req.targets().class_indices().values(i) ? 1 : 0)) / n;
      worst = std::max(worst, std::abs(g[i * c + j] - want));
    }
  }
  EXPECT_LT(worst, 1e-7);
}

class ServerWireTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = ServerProcess::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    stub_ = std::make_unique<grpc::GenericStub>(
        grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(), args));
  }
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<grpc::GenericStub> stub_;
};

TEST_F(ServerWireTest, BigUnaryResponseIsProtobufsOwnSerialisation) {
  const pb::BackwardRequest req = BigChainRule();
  grpc::Slice slice(req.SerializeAsString());
  const grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext ctx;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub_->UnaryCall(&ctx, "/gradserve.v1.GradientService/Backward", grpc::StubOptions(), &request, &response,
                   [&](grpc::Status s) {
                     std::lock_guard<std::mutex> lock(mu);
                     status = s;
                     done = true;
                     cv.notify_one();
                   });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  ASSERT_TRUE(status.ok()) << status.error_message();
  ExpectCanonicalAndRight(Flatten(response), req);
}

TEST_F(ServerWireTest, BigStreamResponsesAreProtobufsOwnSerialisation) {
  const pb::BackwardRequest req = BigChainRule();
  grpc::ClientContext ctx;
  grpc::CompletionQueue cq;
  auto stream = stub_->PrepareCall(&ctx, "/gradserve.v1.GradientService/BackwardStream", &cq);
  void* tag;
  bool ok;
  auto step = [&](intptr_t want) {
    ASSERT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
    ASSERT_TRUE(ok);
  };
  stream->StartCall(reinterpret_cast<void*>(1));
  step(1);
  for (int k = 0; k < 2; ++k) {  // the second message reuses the stream's buffers
    grpc::Slice slice(req.SerializeAsString());
    const grpc::ByteBuffer request(&slice, 1);
    stream->Write(request, reinterpret_cast<void*>(2));
    step(2);
    grpc::ByteBuffer response;
    stream->Read(&response, reinterpret_cast<void*>(3));
    step(3);
    ExpectCanonicalAndRight(Flatten(response), req);
  }
  stream->WritesDone(reinterpret_cast<void*>(4));
  step(4);
  grpc::Status status;
  stream->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

}  // namespace
}  // namespace gradserve::testing
