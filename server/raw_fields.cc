#include "server/raw_fields.h"

#include "server/buffer_pool.h"

namespace gradserve {
namespace {

// One call's logic runs on one thread from decode to encode (the library may fan out inside,
// but never decodes or allocates outputs there), so a thread-local is enough to find the call.
thread_local RawFields* current = nullptr;

}  // namespace

void RawFields::FreeDeleter::operator()(char* p) const { ReleaseBuffer(p); }

RawFields::~RawFields() { Clear(); }

void RawFields::Clear() {
  for (const Output& o : outputs_) ReleaseBuffer(o.data);
  outputs_.clear();
  inputs_.clear();
  scratch_.clear();
  held_.clear();
  copied_input_bytes_ = 0;
}

const std::string_view* RawFields::FindInput(const v1::Tensor& t) const {
  for (const Input& in : inputs_) {
    if (in.tensor == &t) return &in.bytes;
  }
  return nullptr;
}

void RawFields::SetInput(const v1::Tensor* t, std::string_view bytes) {
  for (Input& in : inputs_) {
    if (in.tensor == t) {
      in.bytes = bytes;
      return;
    }
  }
  inputs_.push_back({t, bytes});
}

char* RawFields::AllocateOutput(v1::Tensor* t, size_t bytes) {
  char* data = AcquireBuffer(bytes);
  for (Output& o : outputs_) {
    if (o.tensor == t) {  // a tensor written twice: the last buffer is its value, as in protobuf
      ReleaseBuffer(o.data);
      o.data = data;
      o.size = bytes;
      return data;
    }
  }
  outputs_.push_back({t, data, bytes});
  return data;
}

const RawFields::Output* RawFields::FindOutput(const v1::Tensor& t) const {
  for (const Output& o : outputs_) {
    if (o.tensor == &t) return &o;
  }
  return nullptr;
}

char* RawFields::ReleaseOutput(const v1::Tensor& t) {
  for (auto it = outputs_.begin(); it != outputs_.end(); ++it) {
    if (it->tensor == &t) {
      char* data = it->data;
      outputs_.erase(it);
      return data;
    }
  }
  return nullptr;
}

char* RawFields::AllocateScratch(size_t bytes) {
  scratch_.emplace_back(AcquireBuffer(bytes));
  return scratch_.back().get();
}

RawFields* RawFields::Current() { return current; }

RawFields::Scope::Scope(RawFields* fields) : previous_(current) { current = fields; }

RawFields::Scope::~Scope() { current = previous_; }

}  // namespace gradserve
