#include "client/chunked.h"

#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "client/chunk_output.h"
#include "client/chunk_plan.h"
#include "client/exit_codes.h"
#include "client/output_file.h"
#include "client/response_json.h"
#include "client/response_text.h"
#include "client/rpc_status.h"
#include "gradserve/v1/gradserve.grpc.pb.h"

namespace gradserve::client {
namespace {

using gradserve::v1::GradientService;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// Chunks sent ahead of the one being answered: enough to keep the server busy while this side
// reads the next chunk and writes the last answer, few enough to bound memory.
constexpr int kAhead = 2;

int UsageError(std::ostream& err, absl::string_view message) {
  err << "gradserve: " << message << "\n";
  return kExitUsage;
}

std::string RowsOf(const ChunkPlan& p, int64_t chunk) {
  return absl::StrCat("rows ", p.Begin(chunk), "..", p.Begin(chunk) + p.Count(chunk) - 1, " (chunk ", chunk + 1,
                      " of ", p.chunks, ")");
}

void DrawProgress(std::ostream& err, int64_t done, int64_t total) {
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * done / std::max<int64_t>(total, 1));
  err << "\r[" << std::string(filled, '#') << std::string(kWidth - filled, '.') << "] " << done << "/" << total
      << " chunks\x1b[K" << std::flush;
}

// Merges chunk responses into one: the --output tensor into its file, every other row tensor
// concatenated, the loss reduced as the user asked.
class Merger {
 public:
  Merger(const ChunkPlan& plan, const OutputOptions& output, std::string main_field, Message* merged)
      : plan_(plan), output_(output), field_(output.field.empty() ? std::move(main_field) : output.field),
        merged_(merged) {
    const FieldDescriptor* f = merged->GetDescriptor()->FindFieldByName(field_);
    // Row tensors stream; a scalar (the loss under MEAN or SUM) is written at the end.
    streamed_ = !output.path.empty() && f != nullptr && field_ != "loss";
    if (streamed_) file_ = std::make_unique<RowFileWriter>(output.path, plan.rows);
  }

  absl::Status Add(int64_t chunk, const Message& response) {
    const auto* refl = response.GetReflection();
    std::vector<const FieldDescriptor*> fields;
    refl->ListFields(response, &fields);
    for (const FieldDescriptor* f : fields) {
      if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated()) continue;
      const auto& t = static_cast<const gradserve::v1::Tensor&>(refl->GetMessage(response, f));
      if (f->name() == "loss" && plan_.reduction != gradserve::v1::REDUCTION_NONE) {
        GRADSERVE_ASSIGN_OR_RETURN(HostTensor l, DecodeTensor(t));
        for (double v : l.values) loss_sum_ += v;
        loss_dtype_ = t.dtype();
        loss_values_ = t.raw().empty() && t.values_size() > 0;
        has_loss_ = true;
      } else if (streamed_ && f->name() == field_) {
        GRADSERVE_RETURN_IF_ERROR(file_->Append(t));
      } else {
        AppendRows(t, static_cast<gradserve::v1::Tensor*>(merged_->GetReflection()->MutableMessage(merged_, f)));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Finish() {
    const auto* refl = merged_->GetReflection();
    const auto* desc = merged_->GetDescriptor();
    if (has_loss_) {
      double loss = loss_sum_;
      if (plan_.reduction == gradserve::v1::REDUCTION_MEAN) {
        loss = plan_.denominator == 0.0 ? std::numeric_limits<double>::quiet_NaN() : loss_sum_ / plan_.denominator;
        refl->SetDouble(merged_, desc->FindFieldByName("reduction_denominator"), plan_.denominator);
      }
      EncodeTensor(HostTensor{{}, {loss}}, {loss_dtype_, loss_values_ ? Encoding::kValues : Encoding::kRaw},
                   static_cast<gradserve::v1::Tensor*>(refl->MutableMessage(merged_, desc->FindFieldByName("loss"))));
    }
    if (streamed_) return file_->Close();
    if (!output_.path.empty()) return WriteResponseTensor(*merged_, field_, output_.path);
    return absl::OkStatus();
  }

  // "grad_logits  [1024, 128000] float32 written to g.npy", for tables.
  std::string WrittenLine() const {
    return streamed_ ? absl::StrCat(field_, "  ", file_->Describe(), " written to ", output_.path, "\n") : "";
  }
  bool streamed() const { return streamed_; }

 private:
  const ChunkPlan& plan_;
  const OutputOptions& output_;
  std::string field_;
  Message* merged_;
  bool streamed_ = false;
  std::unique_ptr<RowFileWriter> file_;
  double loss_sum_ = 0;
  bool has_loss_ = false, loss_values_ = false;
  gradserve::v1::DataType loss_dtype_ = gradserve::v1::DATA_TYPE_FLOAT64;
};

// What happened to a chunked run: the first failure, client-side (usage) or from the server.
struct Outcome {
  absl::Status client;          // reading inputs or writing the output
  grpc::Status rpc;             // the call's
  int64_t failed_chunk = -1;
};

int Report(const std::string& rpc, const ChunkPlan& plan, const Outcome& o, const ConnectionOptions& conn,
           std::ostream& err) {
  if (!o.client.ok()) return UsageError(err, o.client.message());
  const std::string where = o.failed_chunk >= 0 ? absl::StrCat(" on ", RowsOf(plan, o.failed_chunk)) : "";
  err << "gradserve: " << DescribeRpcFailure(rpc + where, o.rpc, conn.tls) << "\n";
  return ExitCodeForRpc(o.rpc.error_code());
}

template <typename Response, typename Text>
int Print(Merger& merger, const Response& merged, const OutputOptions& output, Text text, std::ostream& out,
          std::ostream& err) {
  absl::StatusOr<std::string> printed =
      output.format == OutputFormat::kJson ? ResponseJson(merged) : text(merged);
  if (!printed.ok()) {
    err << "gradserve: the server returned a malformed " << printed.status().message() << "\n";
    return kExitRpcFailed;
  }
  out << (output.format == OutputFormat::kJson ? "" : merger.WrittenLine()) << *printed;
  return kExitOk;
}

std::chrono::system_clock::time_point Deadline(const ConnectionOptions& conn, int64_t calls) {
  if (conn.timeout <= absl::ZeroDuration() || conn.timeout == absl::InfiniteDuration()) {
    return std::chrono::system_clock::time_point::max();
  }
  return std::chrono::system_clock::now() + absl::ToChronoNanoseconds(conn.timeout * calls);
}

}  // namespace

std::optional<int> RunForwardChunked(const ConnectionOptions& conn, const ForwardInputs& in,
                                     const OutputOptions& output, const ChunkOptions& chunks,
                                     std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::optional<ChunkPlan>> planned =
      PlanChunks(in.loss, "", "", 1 + in.log_probabilities, false, false, chunks.limit_bytes, chunks.chunk_bytes);
  if (!planned.ok()) return UsageError(err, planned.status().message());
  if (!planned->has_value()) return std::nullopt;
  const ChunkPlan& plan = **planned;
  gradserve::v1::ForwardResponse merged;
  Merger merger(plan, output, "probabilities", &merged);
  std::shared_ptr<GradientService::Stub> stub = GradientService::NewStub(CreateChannel(conn));
  struct Answer {
    absl::Status client;
    grpc::Status rpc;
    gradserve::v1::ForwardResponse response;
  };
  // Pipelined unary calls: up to kAhead in flight, answered in order.
  auto call = [&plan, &in, &conn, stub](int64_t k) {
    Answer a;
    gradserve::v1::ForwardRequest request;
    a.client = FillForward(plan, k, in, &request);
    if (!a.client.ok()) return a;
    grpc::ClientContext context;
    PrepareContext(conn, &context);
    a.rpc = stub->Forward(&context, request, &a.response);
    return a;
  };
  std::deque<std::future<Answer>> window;
  Outcome outcome;
  int64_t next = 0;
  for (int64_t k = 0; k < plan.chunks && outcome.client.ok() && outcome.rpc.ok(); ++k) {
    while (next < plan.chunks && next <= k + kAhead - 1) window.push_back(std::async(std::launch::async, call, next++));
    Answer a = window.front().get();
    window.pop_front();
    outcome.client = a.client.ok() ? merger.Add(k, a.response) : a.client;
    outcome.rpc = a.rpc;
    if (!a.rpc.ok()) outcome.failed_chunk = k;
    if (chunks.progress) DrawProgress(err, k + 1, plan.chunks);
  }
  for (auto& f : window) f.wait();
  if (chunks.progress) err << "\r\x1b[K" << std::flush;
  if (outcome.client.ok() && outcome.rpc.ok()) outcome.client = merger.Finish();
  if (!outcome.client.ok() || !outcome.rpc.ok()) return Report("Forward", plan, outcome, conn, err);
  return Print(merger, merged, output, [&output](const auto& r) { return ForwardText(r, output.style); }, out, err);
}

std::optional<int> RunBackwardChunked(const ConnectionOptions& conn, const BackwardInputs& in,
                                      const OutputOptions& output, const ChunkOptions& chunks,
                                      std::ostream& out, std::ostream& err) {
  const bool chain = in.method == gradserve::v1::METHOD_CHAIN_RULE && in.grad_probs.empty();
  absl::StatusOr<std::optional<ChunkPlan>> planned = PlanChunks(
      in.loss, in.grad_probs, in.grad_loss, 1 + in.probabilities + chain, in.jacobian, true, chunks.limit_bytes,
      chunks.chunk_bytes);
  if (!planned.ok()) return UsageError(err, planned.status().message());
  if (!planned->has_value()) return std::nullopt;
  const ChunkPlan& plan = **planned;
  gradserve::v1::BackwardResponse merged;
  Merger merger(plan, output, "grad_logits", &merged);
  std::unique_ptr<GradientService::Stub> stub = GradientService::NewStub(CreateChannel(conn));
  grpc::ClientContext context;
  PrepareContext(conn, &context);
  context.set_deadline(Deadline(conn, plan.chunks));  // each chunk gets a call's --timeout
  auto stream = stub->BackwardStream(&context);

  // One thread reads the input and writes requests, at most kAhead ahead of the answers; this
  // one reads answers, merges them and writes the output file.
  std::mutex mu;
  std::condition_variable cv;
  int64_t answered = 0;
  bool stop = false;
  absl::Status read_error;
  std::thread writer([&] {
    for (int64_t k = 0; k < plan.chunks; ++k) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || k < answered + kAhead; });
        if (stop) return;
      }
      gradserve::v1::BackwardRequest request;
      absl::Status filled = FillBackward(plan, k, in, &request);
      if (!filled.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        read_error = filled;
        context.TryCancel();
        return;
      }
      if (!stream->Write(request)) return;  // the stream ended: Finish() says why
    }
    stream->WritesDone();
  });
  Outcome outcome;
  gradserve::v1::BackwardResponse response;
  for (int64_t k = 0; k < plan.chunks; ++k) {
    if (!stream->Read(&response)) {
      outcome.failed_chunk = k;
      break;
    }
    outcome.client = merger.Add(k, response);
    if (chunks.progress) DrawProgress(err, k + 1, plan.chunks);
    std::lock_guard<std::mutex> lock(mu);
    ++answered;
    if (!outcome.client.ok()) {
      stop = true;
      context.TryCancel();
    }
    cv.notify_all();
    if (!outcome.client.ok()) break;
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    cv.notify_all();
  }
  writer.join();
  if (chunks.progress) err << "\r\x1b[K" << std::flush;
  outcome.rpc = stream->Finish();
  if (outcome.client.ok()) outcome.client = read_error;
  if (outcome.client.ok() && outcome.rpc.ok() && outcome.failed_chunk < 0) outcome.client = merger.Finish();
  if (outcome.client.ok() && outcome.rpc.ok() && outcome.failed_chunk >= 0) {
    outcome.rpc = grpc::Status(grpc::StatusCode::INTERNAL, "the stream ended before every chunk was answered");
  }
  if (!outcome.client.ok() || !outcome.rpc.ok()) return Report("BackwardStream", plan, outcome, conn, err);
  return Print(merger, merged, output, [&output](const auto& r) { return BackwardText(r, output.style); }, out, err);
}

}  // namespace gradserve::client
