#include "tests/soak_calls.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace gradserve::soak {

void Tally::Count(const std::string& category, grpc::StatusCode code) {
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[absl::StrCat(category, " ", CodeName(code))];
}

void Tally::Fail(const std::string& what) {
  std::lock_guard<std::mutex> lock(mu_);
  if (failures_.size() < 20) failures_.push_back(what);
  ++failure_count_;
}

void Tally::Expect(const std::string& category, const grpc::Status& s,
                   std::initializer_list<grpc::StatusCode> allowed) {
  Count(category, s.error_code());
  if (std::find(allowed.begin(), allowed.end(), s.error_code()) == allowed.end()) {
    Fail(absl::StrCat(category, ": unexpected status ", CodeName(s.error_code()), " ",
                      s.error_message()));
  }
}

std::string Tally::Report() {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [k, v] : counts_) absl::StrAppendFormat(&out, "  %-44s %8d\n", k, v);
  return out;
}

int64_t Tally::failure_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return failure_count_;
}

std::vector<std::string> Tally::failures() {
  std::lock_guard<std::mutex> lock(mu_);
  return failures_;
}

int64_t Tally::good_calls() {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = 0;
  for (const auto& [k, v] : counts_) {
    if (k.rfind("good", 0) == 0) n += v;
  }
  return n;
}

std::string Tally::CodeName(grpc::StatusCode c) {
  static const char* names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
                                "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  return c >= 0 && c <= 16 ? names[c] : absl::StrCat(static_cast<int>(c));
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  grpc::ChannelArguments args;
  // Without this, channels to one address share a subchannel, and releasing one drops nothing.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxSendMessageSize(64 << 20);
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

std::chrono::system_clock::time_point In(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             std::chrono::duration<double>(seconds));
}

Problem RandomProblem(std::mt19937_64& rng) {
  Problem p;
  p.n = std::uniform_int_distribution<int64_t>(1, 8)(rng);
  p.c = std::uniform_int_distribution<int64_t>(1, 16)(rng);
  p.f32 = rng() & 1;
  std::uniform_real_distribution<double> u(-20, 20);
  p.z.resize(p.n * p.c);
  // float32 problems hold float32 values, so the reference is exact for what is sent.
  for (double& v : p.z) v = p.f32 ? static_cast<float>(u(rng)) : u(rng);
  p.y.resize(p.n);
  for (int64_t& v : p.y) v = std::uniform_int_distribution<int64_t>(0, p.c - 1)(rng);
  p.grad.resize(p.n * p.c);
  p.loss = 0;
  for (int64_t i = 0; i < p.n; ++i) {
    const double* z = &p.z[i * p.c];
    const double m = *std::max_element(z, z + p.c);
    double s = 0;
    for (int64_t j = 0; j < p.c; ++j) s += std::exp(z[j] - m);
    p.loss += (m + std::log(s) - z[p.y[i]]) / p.n;
    for (int64_t j = 0; j < p.c; ++j) {
      p.grad[i * p.c + j] = (std::exp(z[j] - m) / s - (j == p.y[i] ? 1.0 : 0.0)) / p.n;
    }
  }
  return p;
}

void SetLogits(const Problem& p, v1::Tensor* t) {
  t->add_shape(p.n);
  t->add_shape(p.c);
  if (p.f32) {
    t->set_dtype(v1::DATA_TYPE_FLOAT32);
    std::string raw(p.z.size() * 4, '\0');
    for (size_t k = 0; k < p.z.size(); ++k) {
      const float v = static_cast<float>(p.z[k]);
      std::memcpy(&raw[k * 4], &v, 4);
    }
    t->set_raw(raw);
  } else {
    for (double v : p.z) t->add_values(v);
  }
}

void SetClassIndices(const Problem& p, v1::Targets* targets) {
  for (int64_t v : p.y) targets->mutable_class_indices()->add_values(v);
}

std::string CheckClose(const char* what, const std::vector<double>& got,
                       const std::vector<double>& want, const Problem& p) {
  if (got.size() != want.size()) {
    return absl::StrFormat("%s has %d values, expected %d", what, got.size(), want.size());
  }
  double scale = 1;
  for (double v : want) scale = std::max(scale, std::abs(v));
  const double tol =
      (p.f32 ? std::max(1e-5, 0.1 * static_cast<double>(p.c) / 16777216.0) : 1e-12) * scale;
  for (size_t k = 0; k < got.size(); ++k) {
    if (!(std::abs(got[k] - want[k]) <= tol)) {
      return absl::StrFormat("%s[%d] is %.17g, expected %.17g (n %d, c %d, %s)", what, k, got[k],
                             want[k], p.n, p.c, p.f32 ? "float32" : "float64");
    }
  }
  return "";
}

v1::BackwardRequest BigRequest() {
  v1::BackwardRequest req;
  const int64_t n = 256, c = 3000;
  req.mutable_logits()->add_shape(n);
  req.mutable_logits()->add_shape(c);
  req.mutable_logits()->set_dtype(v1::DATA_TYPE_FLOAT32);
  std::string raw(n * c * 4, '\0');
  for (int64_t k = 0; k < n * c; ++k) {
    const float v = static_cast<float>((k * 7919) % 1000) / 100.0f;
    std::memcpy(&raw[k * 4], &v, 4);
  }
  req.mutable_logits()->set_raw(raw);
  for (int64_t i = 0; i < n; ++i) req.mutable_targets()->mutable_class_indices()->add_values(i % c);
  return req;
}

}  // namespace gradserve::soak
