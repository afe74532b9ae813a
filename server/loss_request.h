// Decodes the loss part shared by Forward, Backward and VerifyGradient requests (logits, targets,
// options) into a library LossProblem over the request's own bytes.
#ifndef GRADSERVE_SERVER_LOSS_REQUEST_H_
#define GRADSERVE_SERVER_LOSS_REQUEST_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "gradserve/v1/gradserve.pb.h"
#include "lib/cross_entropy.h"
#include "server/server_options.h"
#include "server/tensor_codec.h"

namespace gradserve {

// True when `targets` is present and has a kind set.
bool HasTargets(bool has_field, const v1::Targets& targets);

// True when any field of `options` differs from its default.
bool HasNonDefaultOptions(const v1::LossOptions& options);

template <typename T>
class LossRequest {
 public:
  // `targets` may be null (Forward without targets, Backward with grad_probabilities): the
  // options are then validated here; with targets, by the library call that uses them.
  static absl::StatusOr<LossRequest> Decode(const v1::Tensor& logits, const v1::Targets* targets,
                                            const v1::LossOptions& options, const Limits& limits);

  // The problem; valid while the request and this object live.
  LossProblem<T> problem() const;
  ConstMatrixMap<T> logits() const { return ConstMatrixMap<T>(logits_.data(), rows_, classes_); }
  bool has_targets() const { return has_targets_; }
  bool unbatched() const { return unbatched_; }
  int64_t rows() const { return rows_; }
  int64_t classes() const { return classes_; }
  const std::vector<int64_t>& logits_shape() const { return logits_.shape(); }
  // The loss's shape: [] for MEAN/SUM and for unbatched logits, [batch] for NONE.
  std::vector<int64_t> loss_shape() const;
  // `shape` with the batch dimension dropped for unbatched logits ([batch, c, c] → [c, c]).
  std::vector<int64_t> Unbatch(std::vector<int64_t> shape) const;

 private:
  InputTensor<T> logits_;
  InputTensor<T> probabilities_;
  bool unbatched_ = false;
  int64_t rows_ = 0, classes_ = 0;
  bool has_targets_ = false;
  bool probability_targets_ = false;
  absl::Span<const int64_t> class_indices_;
  LossOptions options_;
};

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_LOSS_REQUEST_H_
