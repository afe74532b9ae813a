// TLS, mutual TLS and the in-flight memory bound, against the real gradserve-server binary.
// Certificates are made at test time with openssl.
#include <thread>

#include "absl/strings/str_cat.h"
#include "gradserve/v1/gradserve.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"
#include "tests/server_test_util.h"
#include "tests/test_certificates.h"

namespace gradserve {
namespace {

using testing::Certificates;
using testing::ServerProcess;
namespace pb = ::gradserve::v1;

grpc::Status Call(const std::shared_ptr<grpc::Channel>& channel) {
  const pb::ForwardRequest req = testing::SeedForward();
  pb::ForwardResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  const grpc::Status s = pb::GradientService::NewStub(channel)->Forward(&ctx, req, &resp);
  if (s.ok()) EXPECT_EQ(resp.probabilities().values(0), 0.5);
  return s;
}

TEST(ServerTlsTest, ServesTlsAndRefusesPlaintext) {
  const Certificates certs;
  ASSERT_TRUE(certs.ok()) << "openssl failed";
  auto server = ServerProcess::Start({"--tls_cert=" + certs.Path("server.pem"), "--tls_key=" + certs.Path("server.key")});
  ASSERT_TRUE(server.ok()) << server.status();
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = certs.Pem("ca.pem");
  EXPECT_TRUE(Call(grpc::CreateChannel((*server)->address(), grpc::SslCredentials(tls))).ok());
  EXPECT_FALSE(Call(grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials())).ok());
  grpc::SslCredentialsOptions wrong_ca;
  wrong_ca.pem_root_certs = certs.Pem("client.pem");  // not the CA that signed the server
  EXPECT_FALSE(Call(grpc::CreateChannel((*server)->address(), grpc::SslCredentials(wrong_ca))).ok());
}

TEST(ServerTlsTest, MutualTlsRequiresAClientCertificate) {
  const Certificates certs;
  ASSERT_TRUE(certs.ok()) << "openssl failed";
  auto server = ServerProcess::Start({"--tls_cert=" + certs.Path("server.pem"),
                                      "--tls_key=" + certs.Path("server.key"),
                                      "--tls_client_ca=" + certs.Path("ca.pem")});
  ASSERT_TRUE(server.ok()) << server.status();
  grpc::SslCredentialsOptions anonymous;
  anonymous.pem_root_certs = certs.Pem("ca.pem");
  EXPECT_FALSE(Call(grpc::CreateChannel((*server)->address(), grpc::SslCredentials(anonymous))).ok());
  grpc::SslCredentialsOptions with_cert = anonymous;
  with_cert.pem_private_key = certs.Pem("client.key");
  with_cert.pem_cert_chain = certs.Pem("client.pem");
  EXPECT_TRUE(Call(grpc::CreateChannel((*server)->address(), grpc::SslCredentials(with_cert))).ok());
}

TEST(ServerFlagsTest, BadTlsFlagsAreRefusedAtStartup) {
  auto server = ServerProcess::Start({"--tls_cert=/nonexistent.pem"});
  EXPECT_FALSE(server.ok());
}

// With --max_inflight_mib below two requests' cost, concurrent big calls are refused with
// RESOURCE_EXHAUSTED rather than all held in memory; one at a time still succeeds.
TEST(ServerMemoryTest, InflightLimitRefusesConcurrentHugeRequests) {
  auto server = ServerProcess::Start({"--max_inflight_mib=30"});
  ASSERT_TRUE(server.ok()) << server.status();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  auto channel = grpc::CreateCustomChannel((*server)->address(), grpc::InsecureChannelCredentials(), args);
  pb::VerifyGradientRequest req;  // 8 MB in, ~1 s of work: counted 24 MiB
  req.mutable_logits()->add_shape(1000);
  req.mutable_logits()->add_shape(1000);
  req.mutable_logits()->set_dtype(pb::DATA_TYPE_FLOAT64);
  req.mutable_logits()->set_raw(std::string(8 * 1000 * 1000, '\0'));
  for (int i = 0; i < 1000; ++i) req.mutable_targets()->mutable_class_indices()->add_values(i % 7);
  *req.mutable_candidate_grad() = req.logits();
  std::atomic<int> ok{0}, exhausted{0}, other{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      pb::VerifyGradientResponse resp;
      grpc::ClientContext ctx;
      const grpc::Status s = pb::GradientService::NewStub(channel)->VerifyGradient(&ctx, req, &resp);
      if (s.ok()) {
        ++ok;
      } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
                 s.error_message().find("--max_inflight_mib") != std::string::npos) {
        ++exhausted;
      } else {
        ++other;
        ADD_FAILURE() << s.error_message();
      }
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_GE(ok.load(), 1);
  EXPECT_GE(exhausted.load(), 1);
  EXPECT_EQ(other.load(), 0);
  EXPECT_TRUE(Call(channel).ok());  // and it serves again afterwards
}

}  // namespace
}  // namespace gradserve
