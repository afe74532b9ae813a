// ParseJsonMessage: the tensors' numbers through simdjson, the rest through protobuf.
#include <cmath>
#include <limits>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "google/protobuf/arena.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/repeated_field.h"
#include "google/protobuf/util/json_util.h"
#include "gradserve/v1/gradserve.pb.h"
#include "server/http/json_tensors.h"
#include "simdjson.h"

namespace gradserve {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::RepeatedField;
namespace ondemand = simdjson::ondemand;

static_assert(kJsonPadding >= simdjson::SIMDJSON_PADDING);

// Bodies up to this size reuse their thread's parser (and its buffers); bigger ones get their
// own, so that a rare huge body does not keep its buffers alive on every HTTP thread.
constexpr size_t kReusedParserBytes = size_t{4} << 20;

absl::Status Protobuf(std::string_view json, Message* message) {
  const auto s = google::protobuf::util::JsonStringToMessage(json, message);
  return absl::Status(static_cast<absl::StatusCode>(s.code()), std::string(s.message()));
}

// The field a key names, as protobuf's mapping reads it: the proto name or the lowerCamelCase
// JSON name. Any other spelling is left to protobuf (the walk does not descend into it).
const FieldDescriptor* FindField(const Descriptor* d, std::string_view key) {
  if (const FieldDescriptor* f = d->FindFieldByName(std::string(key))) return f;
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->json_name() == key) return d->field(i);
  }
  return nullptr;
}

// protobuf reads a number without '.', 'e' or 'E' as an integer and then converts it, so "-0"
// becomes +0.0 where simdjson (and strtod) keep the sign.
bool IsIntegerToken(std::string_view token) { return token.find_first_of(".eE") == std::string_view::npos; }

struct TensorValues {
  std::vector<const FieldDescriptor*> path;  // singular message fields from the root
  RepeatedField<double>* values;              // on the message's arena, or in `owned`
  std::unique_ptr<RepeatedField<double>> owned;
};

// One walk over the body along the message's fields. Every method returns false when the walk
// cannot vouch for the body; the caller then hands it to protobuf whole.
class Walk {
 public:
  Walk(ondemand::document& doc, const char* text, google::protobuf::Arena* arena)
      : doc_(doc), text_(text), arena_(arena) {}

  bool Message(ondemand::object object, const Descriptor* d) {
    std::vector<const FieldDescriptor*> seen;
    for (auto field : object) {
      std::string_view key;
      if (field.error() || field.unescaped_key().get(key)) return false;
      const FieldDescriptor* f = FindField(d, key);
      if (f == nullptr) continue;  // unknown: protobuf refuses it in the short form too
      // Repeated keys merge in protobuf's reading; not worth copying.
      for (const FieldDescriptor* s : seen) {
        if (s == f) return false;
      }
      seen.push_back(f);
      ondemand::value value;
      ondemand::json_type type;
      if (field.value().get(value) || value.type().get(type)) return false;
      if (d == v1::Tensor::descriptor() && f->number() == v1::Tensor::kValuesFieldNumber) {
        if (type == ondemand::json_type::array && !Values(value)) return false;
        continue;
      }
      if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated() ||
          type != ondemand::json_type::object) {
        continue;
      }
      ondemand::object child;
      if (value.get_object().get(child)) return false;
      path_.push_back(f);
      if (!Message(child, f->message_type())) return false;
      path_.pop_back();
    }
    return true;
  }

  std::vector<std::pair<size_t, size_t>>& cuts() { return cuts_; }  // [begin, end) of each array
  std::vector<TensorValues>& tensors() { return tensors_; }

 private:
  // A tensor's `values` array: kept when every element is a JSON number.
  bool Values(ondemand::value value) {
    const char* begin = value.raw_json_token().data();
    ondemand::array array;
    size_t count = 0;
    if (value.get_array().get(array) || array.count_elements().get(count)) return false;
    if (count > static_cast<size_t>(std::numeric_limits<int>::max())) return false;
    // On the message's arena, so that swapping it in later moves no numbers.
    RepeatedField<double>* values = google::protobuf::Arena::Create<RepeatedField<double>>(arena_);
    std::unique_ptr<RepeatedField<double>> owned(arena_ == nullptr ? values : nullptr);
    values->Reserve(static_cast<int>(count));
    bool numbers = true;
    for (auto element : array) {
      ondemand::value v;
      if (element.get(v)) return false;
      if (!numbers) continue;
      double x;
      const simdjson::error_code e = v.get_double().get(x);
      if (e == simdjson::INCORRECT_TYPE) {
        numbers = false;  // "NaN", "1.5", true, ...: this array stays in the text, for protobuf
        continue;
      }
      if (e) return false;  // 1e400, 01, 1.: protobuf's error message
      if (x == 0 && std::signbit(x) && IsIntegerToken(v.raw_json_token())) x = 0.0;
      values->AddAlreadyReserved(x);
    }
    if (!numbers) return true;
    const char* end;
    if (doc_.current_location().get(end)) return false;  // the token after ']'
    cuts_.emplace_back(begin - text_, end - text_);
    tensors_.push_back({path_, values, std::move(owned)});
    return true;
  }

  ondemand::document& doc_;
  const char* text_;
  google::protobuf::Arena* arena_;
  std::vector<const FieldDescriptor*> path_;
  std::vector<std::pair<size_t, size_t>> cuts_;
  std::vector<TensorValues> tensors_;
};

// Walks `text` (padded); false: protobuf takes the body whole.
bool WalkBody(ondemand::parser& parser, simdjson::padded_string_view text, Message* message,
              std::vector<std::pair<size_t, size_t>>* cuts, std::vector<TensorValues>* tensors) {
  ondemand::document doc;
  ondemand::object root;
  if (parser.iterate(text).get(doc) || doc.get_object().get(root)) return false;
  Walk walk(doc, text.data(), message->GetArena());
  if (!walk.Message(root, message->GetDescriptor())) return false;
  *cuts = std::move(walk.cuts());
  *tensors = std::move(walk.tensors());
  return true;
}

}  // namespace

absl::Status ParseJsonMessage(const std::string& body, Message* message) {
  simdjson::padded_string copy;
  simdjson::padded_string_view text(body);
  if (text.padding() < simdjson::SIMDJSON_PADDING) {
    copy = simdjson::padded_string(body);
    text = copy;
  }
  std::vector<std::pair<size_t, size_t>> cuts;
  std::vector<TensorValues> tensors;
  bool walked;
  if (body.size() <= kReusedParserBytes) {
    thread_local ondemand::parser parser;
    walked = WalkBody(parser, text, message, &cuts, &tensors);
  } else {
    ondemand::parser parser;
    walked = WalkBody(parser, text, message, &cuts, &tensors);
  }
  if (!walked || cuts.empty()) return Protobuf(body, message);

  std::string rest;
  size_t from = 0;
  for (const auto& [begin, end] : cuts) {
    rest.append(body, from, begin - from).append("[]");
    from = end;
  }
  rest.append(body, from, std::string::npos);
  if (!Protobuf(rest, message).ok()) {
    // protobuf's words about the body as sent (its messages quote the text around the error).
    return Protobuf(body, message);
  }
  for (TensorValues& t : tensors) {
    Message* m = message;
    for (const FieldDescriptor* f : t.path) m = m->GetReflection()->MutableMessage(m, f);
    static_cast<v1::Tensor*>(m)->mutable_values()->Swap(t.values);
  }
  return absl::OkStatus();
}

}  // namespace gradserve
