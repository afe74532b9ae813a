#include "server/wire_message.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/slice.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "server/buffer_pool.h"

namespace gradserve {
namespace {

namespace pb = google::protobuf;
using pb::internal::WireFormat;
using pb::internal::WireFormatLite;

constexpr int kRawField = v1::Tensor::kRawFieldNumber;

bool IsTensor(const pb::Descriptor* d) { return d == v1::Tensor::descriptor(); }

// One occurrence of a Tensor's raw field: where it is (field numbers from the root) and, when
// it was left out of the shell, its bytes. On the wire the last occurrence of a field wins.
struct RawOccurrence {
  std::vector<int> path;
  bool external;
  std::string_view bytes;
};

// Copies a message's wire bytes to a "shell" that protobuf parses, minus the big Tensor.raw
// fields, recording where those were. Only singular message fields are entered; the request
// types have no repeated messages and no recursion, so the depth is the schema's.
class RequestScanner {
 public:
  RequestScanner(pb::io::CodedInputStream* in, RawFields* fields) : in_(in), fields_(fields) {}

  bool Scan(const pb::Descriptor* d, std::string* shell) {
    pb::io::StringOutputStream sink(shell);
    pb::io::CodedOutputStream out(&sink);
    for (;;) {
      const uint32_t tag = in_->ReadTag();
      if (tag == 0) return in_->ConsumedEntireMessage();
      const int number = WireFormatLite::GetTagFieldNumber(tag);
      const bool delimited =
          WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
      if (IsTensor(d) && number == kRawField && delimited) {
        if (!Raw(tag, &out)) return false;
        continue;
      }
      const pb::FieldDescriptor* f = delimited ? d->FindFieldByNumber(number) : nullptr;
      if (f != nullptr && f->type() == pb::FieldDescriptor::TYPE_MESSAGE && !f->is_repeated()) {
        uint32_t length;
        if (!in_->ReadVarint32(&length)) return false;
        const auto limit = in_->PushLimit(static_cast<int>(length));
        std::string sub;
        path_.push_back(number);
        const bool ok = Scan(f->message_type(), &sub);
        path_.pop_back();
        in_->PopLimit(limit);
        if (!ok) return false;
        out.WriteTag(tag);
        out.WriteVarint32(static_cast<uint32_t>(sub.size()));
        out.WriteString(sub);
        continue;
      }
      if (!WireFormatLite::SkipField(in_, tag, &out)) return false;  // copies it to `out`
    }
  }

  const std::vector<RawOccurrence>& found() const { return found_; }

 private:
  bool Raw(uint32_t tag, pb::io::CodedOutputStream* out) {
    uint32_t length;
    if (!in_->ReadVarint32(&length) || length > static_cast<uint32_t>(INT32_MAX)) return false;
    if (length < kExternalRawBytes) {
      std::string bytes;
      if (!in_->ReadString(&bytes, static_cast<int>(length))) return false;
      out->WriteTag(tag);
      out->WriteVarint32(length);
      out->WriteString(bytes);
      found_.push_back({path_, false, {}});
      return true;
    }
    const void* data = nullptr;
    int available = 0;
    std::string_view bytes;
    if (in_->GetDirectBufferPointer(&data, &available) && static_cast<uint32_t>(available) >= length) {
      bytes = std::string_view(static_cast<const char*>(data), length);  // inside one receive slice
      if (!in_->Skip(static_cast<int>(length))) return false;
    } else {  // across slices: gathered once
      char* buffer = fields_->AllocateScratch(length);
      if (!in_->ReadRaw(buffer, static_cast<int>(length))) return false;
      fields_->AddCopiedInputBytes(length);
      bytes = std::string_view(buffer, length);
    }
    found_.push_back({path_, true, bytes});
    return true;
  }

  pb::io::CodedInputStream* in_;
  RawFields* fields_;
  std::vector<int> path_;
  std::vector<RawOccurrence> found_;
};

// The Tensor at `path` in `root`, or nullptr when a message on the way is not set (a oneof
// member replaced by a later one).
const v1::Tensor* TensorAt(const pb::Message& root, const std::vector<int>& path) {
  const pb::Message* m = &root;
  for (int number : path) {
    const pb::FieldDescriptor* f = m->GetDescriptor()->FindFieldByNumber(number);
    if (f == nullptr || !m->GetReflection()->HasField(*m, f)) return nullptr;
    m = &m->GetReflection()->GetMessage(*m, f);
  }
  return IsTensor(m->GetDescriptor()) ? static_cast<const v1::Tensor*>(m) : nullptr;
}

// The request's slices (shared with gRPC's buffer) and the reader over them, kept alive with
// the views: for a buffer gRPC had to decompress, the reader holds the decompressed bytes.
struct HeldRequest {
  explicit HeldRequest(const grpc::ByteBuffer& b) : buffer(b), reader(&buffer) {}
  grpc::ByteBuffer buffer;
  grpc::ProtoBufferReader reader;
};

bool ScanInto(const grpc::ByteBuffer& buffer, pb::Message* message, RawFields* fields) {
  auto held = std::make_shared<HeldRequest>(buffer);
  if (!held->reader.status().ok()) return false;
  std::string shell;
  std::vector<RawOccurrence> found;
  {
    pb::io::CodedInputStream in(&held->reader);
    RequestScanner scanner(&in, fields);
    if (!scanner.Scan(message->GetDescriptor(), &shell)) return false;
    found = scanner.found();
  }
  fields->KeepAlive(std::move(held));
  if (!message->ParseFromString(shell)) return false;
  for (size_t k = 0; k < found.size(); ++k) {
    bool last = true;  // for its tensor
    for (size_t later = k + 1; later < found.size(); ++later) last = last && found[later].path != found[k].path;
    if (!last || !found[k].external) continue;
    if (const v1::Tensor* t = TensorAt(*message, found[k].path)) fields->SetInput(t, found[k].bytes);
  }
  return true;
}

// Serialises a response: protobuf's bytes, with each raw output of RawFields spliced in as a
// slice of its own, at the place protobuf would have put the field.
class ResponseWriter {
 public:
  explicit ResponseWriter(RawFields* fields) : fields_(fields) {}

  bool HasExternal(const pb::Message& m) const {
    if (IsTensor(m.GetDescriptor())) return fields_->FindOutput(static_cast<const v1::Tensor&>(m)) != nullptr;
    std::vector<const pb::FieldDescriptor*> fs;
    m.GetReflection()->ListFields(m, &fs);
    for (const pb::FieldDescriptor* f : fs) {
      if (f->type() != pb::FieldDescriptor::TYPE_MESSAGE) continue;
      for (int i = 0; i < Count(m, f); ++i) {
        if (HasExternal(Element(m, f, i))) return true;
      }
    }
    return false;
  }

  size_t Size(const pb::Message& m) const {
    std::vector<const pb::FieldDescriptor*> fs;
    m.GetReflection()->ListFields(m, &fs);
    size_t size = 0;
    for (const pb::FieldDescriptor* f : fs) {
      if (f->type() != pb::FieldDescriptor::TYPE_MESSAGE) {
        size += WireFormat::FieldByteSize(f, m);
        continue;
      }
      for (int i = 0; i < Count(m, f); ++i) {
        const pb::Message& sub = Element(m, f, i);
        const size_t n = HasExternal(sub) ? Size(sub) : sub.ByteSizeLong();
        size += WireFormatLite::TagSize(f->number(), WireFormatLite::TYPE_BYTES) +
                WireFormatLite::LengthDelimitedSize(n);
      }
    }
    if (const RawFields::Output* raw = External(m)) {
      size += WireFormatLite::TagSize(kRawField, WireFormatLite::TYPE_BYTES) +
              WireFormatLite::LengthDelimitedSize(raw->size);
    }
    return size;
  }

  void Emit(const pb::Message& m) {
    std::vector<const pb::FieldDescriptor*> fs;
    m.GetReflection()->ListFields(m, &fs);  // in field-number order, as protobuf writes them
    const RawFields::Output* raw = External(m);
    for (const pb::FieldDescriptor* f : fs) {
      if (raw != nullptr && f->number() > kRawField) {
        EmitRaw(m, *raw);
        raw = nullptr;
      }
      if (f->type() != pb::FieldDescriptor::TYPE_MESSAGE) {
        pb::io::StringOutputStream sink(&pending_);
        pb::io::CodedOutputStream out(&sink);
        WireFormat::SerializeFieldWithCachedSizes(f, m, &out);
        continue;
      }
      for (int i = 0; i < Count(m, f); ++i) {
        const pb::Message& sub = Element(m, f, i);
        const bool external = HasExternal(sub);
        Head(f->number(), external ? Size(sub) : sub.ByteSizeLong());
        if (external) {
          Emit(sub);
        } else {
          sub.AppendToString(&pending_);
        }
      }
    }
    if (raw != nullptr) EmitRaw(m, *raw);
  }

  grpc::ByteBuffer Finish() {
    Flush();
    return grpc::ByteBuffer(slices_.data(), slices_.size());
  }

 private:
  static int Count(const pb::Message& m, const pb::FieldDescriptor* f) {
    return f->is_repeated() ? m.GetReflection()->FieldSize(m, f) : 1;
  }
  static const pb::Message& Element(const pb::Message& m, const pb::FieldDescriptor* f, int i) {
    return f->is_repeated() ? m.GetReflection()->GetRepeatedMessage(m, f, i)
                            : m.GetReflection()->GetMessage(m, f);
  }
  const RawFields::Output* External(const pb::Message& m) const {
    return IsTensor(m.GetDescriptor()) ? fields_->FindOutput(static_cast<const v1::Tensor&>(m)) : nullptr;
  }

  // A length-delimited field's tag and length.
  void Head(int number, size_t length) {
    pb::io::StringOutputStream sink(&pending_);
    pb::io::CodedOutputStream out(&sink);
    out.WriteTag(WireFormatLite::MakeTag(number, WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
    out.WriteVarint64(length);
  }

  void EmitRaw(const pb::Message& tensor, const RawFields::Output& raw) {
    const size_t size = raw.size;
    Head(kRawField, size);
    Flush();
    char* data = fields_->ReleaseOutput(static_cast<const v1::Tensor&>(tensor));
    slices_.emplace_back(data, size, &ReleaseBuffer);  // back to the pool once gRPC has sent it
  }

  void Flush() {
    if (pending_.empty()) return;
    slices_.emplace_back(pending_);
    pending_.clear();
  }

  RawFields* fields_;
  std::string pending_;
  std::vector<grpc::Slice> slices_;
};

}  // namespace

grpc::Status ParseRequest(const grpc::ByteBuffer& buffer, pb::Message* message, RawFields* fields) {
  message->Clear();
  fields->Clear();
  if (buffer.Length() >= kZeroCopyRequestBytes && ScanInto(buffer, message, fields)) {
    return grpc::Status::OK;
  }
  // Small, or malformed: protobuf parses it whole, and its verdict is gRPC's own.
  message->Clear();
  fields->Clear();
  grpc::ByteBuffer again(buffer);  // shares the slices; Deserialize empties it
  return grpc::SerializationTraits<pb::Message>::Deserialize(&again, message);
}

grpc::ByteBuffer SerializeResponse(const pb::Message& message, RawFields* fields) {
  ResponseWriter writer(fields);
  if (!fields->has_outputs() || !writer.HasExternal(message)) {
    grpc::ByteBuffer out;
    bool own = false;
    (void)grpc::SerializationTraits<pb::Message>::Serialize(message, &out, &own);
    return out;
  }
  writer.Emit(message);
  return writer.Finish();
}

}  // namespace gradserve
