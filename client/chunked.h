// Batches of any size from the CLI: a forward or backward whose request or response would pass
// the server's default message limit (64 MiB) is split into chunks of rows of about 16 MiB
// (--chunk-mib=N: any batch over N MiB, in chunks of N MiB). Backward sends them over one BackwardStream, Forward as pipelined
// Forward calls; two chunks are in flight while the next is read, so memory is bounded by a few
// chunks, not the batch: .npy inputs are read by rows (row_source.h) and the --output tensor is
// written as chunks arrive (chunk_output.h).
//
// The result is the one call's: MEAN is sent as SUM with grad_loss = grad_loss / D, where D is the
// whole batch's denominator (Σ weights of the non-ignored rows for class indices, the batch size
// for probabilities), and the loss is Σ chunk losses / D; D = 0 gives torch's NaN loss, with a
// zero gradient for ignored rows and NaN for the rest. SUM adds the chunk losses, NONE
// concatenates them. The merged response is printed as a single call's would be; with --output,
// the streamed tensor is in the file only.
//
//   ChunkOptions chunks;  // 64 MiB
//   if (std::optional<int> code = RunBackwardChunked(conn, in, output, chunks, std::cout, std::cerr)) return *code;
//   // else: the call fits one message
#ifndef GRADSERVE_CLIENT_CHUNKED_H_
#define GRADSERVE_CLIENT_CHUNKED_H_

#include <cstdint>
#include <optional>
#include <ostream>

#include "client/channel.h"
#include "client/commands.h"
#include "client/requests.h"

namespace gradserve::client {

struct ChunkOptions {
  int64_t limit_bytes = int64_t{64} << 20;  // a call whose request or response passes this is chunked
  // ... into chunks of about this size. Smaller than the limit because, measured, 16 MiB chunks
  // move a 500 MiB batch 4-5x faster than 64 MiB ones (and hold a third of the memory).
  int64_t chunk_bytes = int64_t{16} << 20;
  bool progress = false;                    // draw a progress bar on `err` (a terminal)
};

// nullopt when the call fits one message or the logits are not a batch (rank 2): the caller
// makes the single call. Otherwise the exit status of the chunked run.
std::optional<int> RunForwardChunked(const ConnectionOptions& conn, const ForwardInputs& in,
                                     const OutputOptions& output, const ChunkOptions& chunks,
                                     std::ostream& out, std::ostream& err);
std::optional<int> RunBackwardChunked(const ConnectionOptions& conn, const BackwardInputs& in,
                                      const OutputOptions& output, const ChunkOptions& chunks,
                                      std::ostream& out, std::ostream& err);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_CHUNKED_H_
