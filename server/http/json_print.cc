// PrintJsonMessage: protobuf prints the message with each tensor's values replaced by one
// marker number (the tensor's index), and the real values are written where the markers stand.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/repeated_field.h"
#include "google/protobuf/util/json_util.h"
#include "gradserve/v1/gradserve.pb.h"
#include "lib/parallel.h"
#include "server/http/json_tensors.h"

namespace gradserve {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::RepeatedField;

// The longest shortest-round-trip double, "-2.2250738585072014e-308", is 24 characters; a
// non-finite value is at most "\"-Infinity\"" (11).
constexpr size_t kMaxNumberChars = 32;

void CollectTensors(Message& m, std::vector<v1::Tensor*>* tensors) {
  if (m.GetDescriptor() == v1::Tensor::descriptor()) {
    tensors->push_back(static_cast<v1::Tensor*>(&m));
    return;
  }
  const auto* reflection = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(m, f); ++i) {
        CollectTensors(*reflection->MutableRepeatedMessage(&m, f, i), tensors);
      }
    } else {
      CollectTensors(*reflection->MutableMessage(&m, f), tensors);
    }
  }
}

char* WriteDouble(char* out, double v) {
  if (v == 0 && std::signbit(v)) {
    // protobuf's reader takes "-0" for the integer 0, i.e. +0.0; "-0.0" keeps the sign.
    std::memcpy(out, "-0.0", 4);
    return out + 4;
  }
  if (std::isfinite(v)) return std::to_chars(out, out + kMaxNumberChars, v).ptr;
  const std::string_view text = std::isnan(v) ? "\"NaN\"" : v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  std::memcpy(out, text.data(), text.size());
  return out + text.size();
}

// Arrays at least this long are printed on several cores (~35 ns a number on one).
constexpr int kParallelNumbers = 1 << 15;
constexpr int64_t kMaxBlocks = 64;

// Writes "v0,v1,..." at `out`, which has room for (size + kMaxBlocks) numbers and commas;
// returns the end. A long array is cut into blocks printed concurrently, each into its
// worst-case share of the room, and then moved together (a memmove, ~0.5 ms for 5 MB).
char* WriteValues(const RepeatedField<double>& values, char* out) {
  const int64_t n = values.size();
  if (n < kParallelNumbers) {
    for (int64_t i = 0; i < n; ++i) {
      if (i > 0) *out++ = ',';
      out = WriteDouble(out, values.Get(i));
    }
    return out;
  }
  const int64_t blocks = std::min<int64_t>(kMaxBlocks, 4 * ResolveThreads(0));
  const int64_t per_block = (n + blocks - 1) / blocks;
  const int64_t room = per_block * (kMaxNumberChars + 1);
  std::vector<char*> ends(blocks);
  ParallelForRows(blocks, per_block * 8, ExecContext{}, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      char* p = out + b * room;
      for (int64_t i = b * per_block; i < std::min(n, (b + 1) * per_block); ++i) {
        if (i > 0) *p++ = ',';
        p = WriteDouble(p, values.Get(i));
      }
      ends[b] = p;
    }
  }).IgnoreError();  // no cancellation: every block is printed
  char* p = ends[0];
  for (int64_t b = 1; b < blocks; ++b) {
    const size_t length = ends[b] - (out + b * room);
    std::memmove(p, out + b * room, length);
    p += length;
  }
  return p;
}

// The next `"values":[` key in protobuf's compact output. Inside a string every quote is
// escaped, so a key's opening quote is the one preceded by '{' or ','.
size_t FindValuesKey(std::string_view json, size_t from) {
  constexpr std::string_view kKey = "\"values\":[";
  for (size_t at = json.find(kKey, from); at != std::string_view::npos; at = json.find(kKey, at + 1)) {
    if (at > 0 && (json[at - 1] == '{' || json[at - 1] == ',')) return at;
  }
  return std::string_view::npos;
}

}  // namespace

absl::Status PrintJsonMessage(Message* message, std::string* json) {
  std::vector<v1::Tensor*> tensors;
  std::vector<RepeatedField<double>> values;
  // Puts the values back however this returns.
  struct Restore {
    std::vector<v1::Tensor*>& tensors;
    std::vector<RepeatedField<double>>& values;
    ~Restore() {
      for (size_t k = 0; k < values.size(); ++k) values[k].Swap(tensors[k]->mutable_values());
    }
  };
  const Restore restore{tensors, values};
  CollectTensors(*message, &tensors);
  // Each tensor's values aside (a swap, no copy), its index in their place.
  size_t numbers = 0;
  for (size_t k = 0; k < tensors.size(); ++k) {
    values.emplace_back().Swap(tensors[k]->mutable_values());
    tensors[k]->add_values(static_cast<double>(k));
    numbers += values[k].size();
  }
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  print.always_print_primitive_fields = true;
  std::string skeleton;
  const auto printed = google::protobuf::util::MessageToJsonString(*message, &skeleton, print);
  if (!printed.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(printed.code()), std::string(printed.message()));
  }

  json->resize(skeleton.size() + (numbers + tensors.size() * kMaxBlocks) * (kMaxNumberChars + 1));
  char* out = json->data();
  std::vector<bool> written(tensors.size(), false);
  size_t from = 0;
  for (size_t at = FindValuesKey(skeleton, 0); at != std::string::npos; at = FindValuesKey(skeleton, from)) {
    const size_t open = at + std::strlen("\"values\":[");
    size_t k = 0;
    const auto [end, error] = std::from_chars(skeleton.data() + open, skeleton.data() + skeleton.size(), k);
    if (error != std::errc() || end == skeleton.data() + skeleton.size() || *end != ']' ||
        k >= tensors.size() || written[k]) {
      return absl::InternalError(absl::StrCat("cannot find tensor values in the printed ",
                                              message->GetDescriptor()->full_name(), " at byte ", at));
    }
    written[k] = true;
    std::memcpy(out, skeleton.data() + from, open - from);
    out += open - from;
    out = WriteValues(values[k], out);
    from = end - skeleton.data();  // the ']'
  }
  std::memcpy(out, skeleton.data() + from, skeleton.size() - from);
  out += skeleton.size() - from;
  json->resize(out - json->data());
  for (size_t k = 0; k < tensors.size(); ++k) {
    if (!written[k]) {
      return absl::InternalError(absl::StrCat("tensor ", k, " of ", tensors.size(), " is missing from the printed ",
                                              message->GetDescriptor()->full_name()));
    }
  }
  return absl::OkStatus();
}

}  // namespace gradserve
