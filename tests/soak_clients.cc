#include "tests/soak_clients.h"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/soak_connections.h"
#include "tests/tensor_values.h"

namespace gradserve::soak {

using testing::TensorValues;

void Clients::GoodWorker(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto channel = NewChannel(address_);
  auto stub = v1::GradientService::NewStub(channel);
  while (!stop_.load()) {
    const int kind = static_cast<int>(rng() % 4);
    const Problem p = RandomProblem(rng);
    grpc::ClientContext ctx;
    ctx.set_deadline(In(30));
    if (kind == 0) {
      v1::ForwardRequest req;
      SetLogits(p, req.mutable_logits());
      SetClassIndices(p, req.mutable_targets());
      v1::ForwardResponse resp;
      const grpc::Status s = stub->Forward(&ctx, req, &resp);
      tally_.Expect("good Forward", s, {grpc::StatusCode::OK});
      if (s.ok()) Check(CheckClose("Forward loss", TensorValues(resp.loss()), {p.loss}, p));
    } else if (kind == 1) {
      v1::BackwardRequest req;
      SetLogits(p, req.mutable_logits());
      SetClassIndices(p, req.mutable_targets());
      req.set_method(rng() & 1 ? v1::METHOD_CHAIN_RULE : v1::METHOD_FUSED);
      v1::BackwardResponse resp;
      const grpc::Status s = stub->Backward(&ctx, req, &resp);
      tally_.Expect("good Backward", s, {grpc::StatusCode::OK});
      if (s.ok()) {
        Check(CheckClose("Backward grad_logits", TensorValues(resp.grad_logits()), p.grad, p));
        Check(CheckClose("Backward loss", TensorValues(resp.loss()), {p.loss}, p));
      }
    } else if (kind == 2) {
      GoodVerify(*stub, ctx);
    } else {
      GoodStream(*stub, ctx, rng);
    }
  }
}

// The motivating case: J evaluated at the logits.
void Clients::GoodVerify(v1::GradientService::Stub& stub, grpc::ClientContext& ctx) {
  v1::VerifyGradientRequest req;
  req.mutable_logits()->add_shape(2);
  req.mutable_logits()->add_values(1.75);
  req.mutable_logits()->add_values(1.75);
  auto* t = req.mutable_targets()->mutable_probabilities();
  t->add_shape(2);
  t->add_values(0);
  t->add_values(1);
  req.mutable_candidate_grad()->add_shape(2);
  req.mutable_candidate_grad()->add_values(6.125);
  req.mutable_candidate_grad()->add_values(2.625);
  v1::VerifyGradientResponse resp;
  const grpc::Status s = stub.VerifyGradient(&ctx, req, &resp);
  tally_.Expect("good VerifyGradient", s, {grpc::StatusCode::OK});
  if (!s.ok()) return;
  bool jacobian_at_logits = false;
  for (const auto& f : resp.findings()) {
    jacobian_at_logits |= f.code() == v1::FINDING_CODE_JACOBIAN_AT_LOGITS;
  }
  const std::vector<double> g = TensorValues(resp.analytic_grad());
  if (resp.candidate_ok() || !jacobian_at_logits || g.size() != 2 || g[0] != 0.5 || g[1] != -0.5) {
    Check("VerifyGradient: the motivating case lost its JACOBIAN_AT_LOGITS finding or its "
          "analytic gradient (0.5, -0.5): " + resp.ShortDebugString());
  }
}

// A stream of several good requests, one response each, in order.
void Clients::GoodStream(v1::GradientService::Stub& stub, grpc::ClientContext& ctx,
                         std::mt19937_64& rng) {
  auto stream = stub.BackwardStream(&ctx);
  const int k = 1 + static_cast<int>(rng() % 4);
  bool ok = true;
  for (int m = 0; m < k && ok; ++m) {
    const Problem p = RandomProblem(rng);
    v1::BackwardRequest req;
    SetLogits(p, req.mutable_logits());
    SetClassIndices(p, req.mutable_targets());
    ok = stream->Write(req);
    v1::BackwardResponse resp;
    ok = ok && stream->Read(&resp);
    if (ok) Check(CheckClose("BackwardStream grad_logits", TensorValues(resp.grad_logits()), p.grad, p));
  }
  stream->WritesDone();
  const grpc::Status s = stream->Finish();
  tally_.Expect("good BackwardStream", s, {grpc::StatusCode::OK});
  if (s.ok() && !ok) Check("BackwardStream: a response was missing");
}

void Clients::BadWorker(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto channel = NewChannel(address_);
  auto stub = v1::GradientService::NewStub(channel);
  // Over the soak server's --max_message_mib=4 but under the transport's 4x allowance: the
  // server's own check answers.
  v1::BackwardRequest oversized;
  oversized.mutable_logits()->add_shape(5 << 18);
  oversized.mutable_logits()->set_dtype(v1::DATA_TYPE_FLOAT32);
  oversized.mutable_logits()->set_raw(std::string(5 << 20, '\0'));
  oversized.mutable_targets()->mutable_class_indices()->add_values(0);
  // Over the transport's limit (4 x 4 MiB): gRPC refuses it before the handler.
  v1::ForwardRequest huge;
  huge.mutable_logits()->add_shape(17 << 18);
  huge.mutable_logits()->set_dtype(v1::DATA_TYPE_FLOAT32);
  huge.mutable_logits()->set_raw(std::string(17 << 20, '\0'));
  while (!stop_.load()) {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(30));
    const int kind = static_cast<int>(rng() % 8);
    if (kind == 0) {
      v1::BackwardResponse resp;
      tally_.Expect("oversized (server limit)", stub->Backward(&ctx, oversized, &resp),
                    {grpc::StatusCode::RESOURCE_EXHAUSTED});
    } else if (kind == 1) {
      v1::ForwardResponse resp;
      tally_.Expect("oversized (transport limit)", stub->Forward(&ctx, huge, &resp),
                    {grpc::StatusCode::RESOURCE_EXHAUSTED});
    } else {
      Problem p = RandomProblem(rng);
      v1::BackwardRequest req;
      SetLogits(p, req.mutable_logits());
      SetClassIndices(p, req.mutable_targets());
      switch (kind) {
        case 2: req.mutable_logits()->clear_values(); req.mutable_logits()->clear_raw();
                req.mutable_logits()->add_values(std::nan("")); break;   // wrong count
        case 3: req.mutable_targets()->mutable_class_indices()->set_values(0, p.c); break;
        case 4: req.mutable_options()->set_label_smoothing(2); break;
        case 5: req.mutable_options()->add_class_weights(-1); break;
        case 6: req.mutable_logits()->set_dtype(static_cast<v1::DataType>(7)); break;
        default: req.mutable_grad_probabilities()->add_shape(1); break;  // both kinds
      }
      v1::BackwardResponse resp;
      tally_.Expect("bad input", stub->Backward(&ctx, req, &resp),
                    {grpc::StatusCode::INVALID_ARGUMENT});
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void Clients::InterruptWorker(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto channel = NewChannel(address_);
  auto stub = v1::GradientService::NewStub(channel);
  const v1::BackwardRequest big = BigRequest();
  while (!stop_.load()) {
    const int kind = static_cast<int>(rng() % 3);
    const double delay_ms = std::uniform_real_distribution<double>(0, 8)(rng);
    if (kind == 0) {  // TryCancel mid-flight
      grpc::ClientContext ctx;
      v1::BackwardResponse resp;
      std::mutex mu;
      std::condition_variable cv;
      bool done = false;
      grpc::Status status;
      stub->async()->Backward(&ctx, &big, &resp, [&](grpc::Status s) {
        std::lock_guard<std::mutex> lock(mu);
        status = std::move(s);
        done = true;
        cv.notify_one();
      });
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(delay_ms));
      ctx.TryCancel();
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return done; });
      tally_.Expect("cancelled mid-flight", status,
                    {grpc::StatusCode::OK, grpc::StatusCode::CANCELLED,
                     grpc::StatusCode::RESOURCE_EXHAUSTED});
    } else if (kind == 1) {  // a deadline that expires mid-request
      grpc::ClientContext ctx;
      ctx.set_deadline(In(delay_ms / 1000));
      v1::BackwardResponse resp;
      tally_.Expect("deadline mid-request", stub->Backward(&ctx, big, &resp),
                    {grpc::StatusCode::OK, grpc::StatusCode::DEADLINE_EXCEEDED,
                     grpc::StatusCode::RESOURCE_EXHAUSTED});
    } else {  // a stream abandoned half way: requests written, responses not all read
      grpc::ClientContext ctx;
      auto stream = stub->BackwardStream(&ctx);
      const int writes = 1 + static_cast<int>(rng() % 4);
      for (int m = 0; m < writes; ++m) {
        if (!stream->Write(big)) break;
        if (rng() & 1) {
          v1::BackwardResponse resp;
          if (!stream->Read(&resp)) break;
        }
      }
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(delay_ms));
      ctx.TryCancel();
      tally_.Expect("stream abandoned", stream->Finish(),
                    {grpc::StatusCode::CANCELLED, grpc::StatusCode::OK,
                     grpc::StatusCode::RESOURCE_EXHAUSTED});
    }
  }
}

void Clients::DropWorker(uint64_t seed, bool drops, bool resets) {
  std::mt19937_64 rng(seed);
  const v1::BackwardRequest big = BigRequest();
  while (!stop_.load()) {
    const int kind = drops && resets ? static_cast<int>(rng() % 3)
                     : drops         ? static_cast<int>(rng() % 2)
                                     : 2;
    if (kind == 0) {
      DropChannelInFlight(address_, big, rng, tally_);
    } else if (kind == 1) {
      KillClientInFlight(address_, rng, tally_);
    } else {
      ResetMidRequest(port_, big, rng);
      tally_.Count("raw TCP reset mid-request", grpc::StatusCode::OK);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace gradserve::soak
