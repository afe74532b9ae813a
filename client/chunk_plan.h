// The sending half of a chunked call (client/chunked.h): whether a forward or backward needs
// chunks, how many rows each takes, the whole batch's MEAN denominator, and each chunk's request.
//
//   absl::StatusOr<std::optional<ChunkPlan>> plan = PlanChunks(in.loss, in.grad_probs, in.grad_loss, 1, false, true, 64 << 20, 16 << 20);
//   if (plan.ok() && *plan) FillBackward(**plan, /*chunk=*/0, in, &request);
#ifndef GRADSERVE_CLIENT_CHUNK_PLAN_H_
#define GRADSERVE_CLIENT_CHUNK_PLAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/requests.h"
#include "client/row_source.h"
#include "gradserve/v1/gradserve.pb.h"

namespace gradserve::client {

struct ChunkPlan {
  RowSource logits;
  std::optional<RowSource> target_probs, grad_probs;
  std::vector<int64_t> labels;
  bool has_labels = false;
  TensorFormat format;                   // dtype resolved
  gradserve::v1::LossOptions options;    // as every chunk sends it: MEAN becomes SUM
  gradserve::v1::Reduction reduction = gradserve::v1::REDUCTION_MEAN;  // the user's, resolved
  double denominator = 0;                // MEAN: of the whole batch
  std::vector<double> grad_loss;         // the user's, rounded to the dtype; empty: 1
  int64_t rows = 0, columns = 0, rows_per_chunk = 0, chunks = 0;

  int64_t Begin(int64_t chunk) const { return chunk * rows_per_chunk; }
  int64_t Count(int64_t chunk) const { return std::min(rows_per_chunk, rows - Begin(chunk)); }
};

// nullopt when one message holds the call (requests and responses up to `limit_bytes`) or the
// logits are not rank 2; else chunks of at most `chunk_bytes` (and the server's default element
// limits). `response_tensors` is how many logits-sized tensors the response holds;
// `jacobian` adds classes² per row. Errors are the usage errors a single call's Build* gives.
absl::StatusOr<std::optional<ChunkPlan>> PlanChunks(const LossInputs& loss, const std::string& grad_probs,
                                                    const std::string& grad_loss, int response_tensors,
                                                    bool jacobian, bool targets_required, int64_t limit_bytes,
                                                    int64_t chunk_bytes);

// Chunk `chunk`'s request: rows [Begin, Begin + Count) and what goes with them.
absl::Status FillForward(const ChunkPlan& plan, int64_t chunk, const ForwardInputs& in,
                         gradserve::v1::ForwardRequest* request);
absl::Status FillBackward(const ChunkPlan& plan, int64_t chunk, const BackwardInputs& in,
                          gradserve::v1::BackwardRequest* request);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_CHUNK_PLAN_H_
