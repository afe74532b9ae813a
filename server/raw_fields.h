// The big `raw` bytes of a call's tensors, held outside their protobuf messages so that no copy is
// made that the transport does not force.
//
// A request's big raw fields stay in gRPC's receive slices (server/wire_message.h registers a view
// of each here and leaves the parsed Tensor's `raw` empty); a response's big raw outputs are
// buffers allocated here without zero-filling, which the math writes and gRPC sends as slices of
// their own. The codec (server/tensor_codec.h) consults the RawFields of the current thread, set
// for the duration of one RPC's logic by a RawFields::Scope, so the handlers need not know: with
// no scope (the HTTP gateway, the tests of the handlers) everything lives in the messages as before.
//
//   RawFields fields;
//   GRADSERVE_RETURN_IF_ERROR(ParseRequest(buffer, &request, &fields));
//   { RawFields::Scope scope(&fields); status = RunBackward(request, &response, limits, exec); }
//   grpc::ByteBuffer out = SerializeResponse(response, &fields);
#ifndef GRADSERVE_SERVER_RAW_FIELDS_H_
#define GRADSERVE_SERVER_RAW_FIELDS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "gradserve/v1/gradserve.pb.h"

namespace gradserve {

// Raw outputs at least this large are written to a buffer of their own and sent as a slice;
// smaller ones go into the message, where the copy is cheaper than the bookkeeping.
inline constexpr size_t kExternalRawBytes = 64 << 10;

class RawFields {
 public:
  RawFields() = default;
  RawFields(const RawFields&) = delete;
  RawFields& operator=(const RawFields&) = delete;
  ~RawFields();

  // The raw bytes of input `t`, if they are held here (nullptr otherwise).
  const std::string_view* FindInput(const v1::Tensor& t) const;
  // Registers `bytes` (which must outlive this object's use) as the raw field of input `t`.
  void SetInput(const v1::Tensor* t, std::string_view bytes);

  // Whether the codec may hold big outputs here (default true). Off for a handler that sizes its
  // response with ByteSizeLong() as it builds it (VerifyGradient's findings), which counts
  // only what is in the message.
  bool external_outputs() const { return external_outputs_; }
  void set_external_outputs(bool on) { external_outputs_ = on; }

  // An uninitialised, 64-byte aligned buffer of `bytes` (from server/buffer_pool.h) that stands
  // for `t`'s raw field.
  char* AllocateOutput(v1::Tensor* t, size_t bytes);
  // The output buffer standing for `t`'s raw field, or nullptr.
  struct Output {
    const v1::Tensor* tensor;
    char* data;
    size_t size;
  };
  const Output* FindOutput(const v1::Tensor& t) const;
  bool has_outputs() const { return !outputs_.empty(); }
  // Hands the buffer of `t` over to the caller, who must ReleaseBuffer() it (server/buffer_pool.h).
  char* ReleaseOutput(const v1::Tensor& t);

  // An uninitialised buffer of `bytes` that lives as long as this object (for gathered inputs).
  char* AllocateScratch(size_t bytes);

  // Keeps `held` (what the input views point into) alive until Clear().
  void KeepAlive(std::shared_ptr<void> held) { held_.push_back(std::move(held)); }

  // Bytes of input tensors copied on their way to the math: raw fields gathered from several
  // receive slices, and misaligned ones realigned by the codec. 0 means the math read the
  // request's bytes where gRPC received them.
  int64_t copied_input_bytes() const { return copied_input_bytes_; }
  void AddCopiedInputBytes(int64_t n) { copied_input_bytes_ += n; }

  // Forgets every tensor (external_outputs() stays), for the next message of a stream.
  void Clear();

  // The RawFields of the calling thread (nullptr outside a Scope).
  static RawFields* Current();

  // Makes `fields` the calling thread's for its lifetime.
  class Scope {
   public:
    explicit Scope(RawFields* fields);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    RawFields* previous_;
  };

 private:
  struct Input {
    const v1::Tensor* tensor;
    std::string_view bytes;
  };
  struct FreeDeleter {
    void operator()(char* p) const;
  };
  std::vector<Input> inputs_;
  std::vector<Output> outputs_;  // owned until released
  std::vector<std::unique_ptr<char, FreeDeleter>> scratch_;
  std::vector<std::shared_ptr<void>> held_;
  int64_t copied_input_bytes_ = 0;
  bool external_outputs_ = true;
};

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_RAW_FIELDS_H_
