#include "server/http/json_tensors.h"

#include <cmath>
#include <utility>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "gradserve/v1/gradserve.pb.h"
#include "nlohmann/json.hpp"

namespace gradserve {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using Json = nlohmann::ordered_json;

absl::Status FromProtobuf(const google::protobuf::util::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.code()), std::string(s.message()));
}

bool IsTensor(const Descriptor* d) { return d == v1::Tensor::descriptor(); }

// Where a tensor sits: message fields (and indexes into repeated ones) from the root.
struct Step {
  const FieldDescriptor* field;
  int index;  // -1: a singular field
};
struct Extracted {
  std::vector<Step> path;
  std::vector<double> values;
};

const FieldDescriptor* FindField(const Descriptor* d, const std::string& key) {
  if (const FieldDescriptor* f = d->FindFieldByName(key)) return f;
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->json_name() == key) return d->field(i);
  }
  return nullptr;
}

// Takes every all-number `values` array of a tensor out of `j` (a message of type `d`).
void Extract(Json& j, const Descriptor* d, std::vector<Step>& path, std::vector<Extracted>& out) {
  if (!j.is_object()) return;
  if (IsTensor(d)) {
    auto it = j.find("values");
    if (it == j.end() || !it->is_array()) return;
    std::vector<double> values;
    values.reserve(it->size());
    for (const Json& v : *it) {
      if (!v.is_number()) return;  // "NaN", "Infinity" and other spellings: protobuf's job
      values.push_back(v.get<double>());
    }
    out.push_back({path, std::move(values)});
    j.erase(it);
    return;
  }
  for (auto& [key, value] : j.items()) {
    const FieldDescriptor* f = FindField(d, key);
    if (f == nullptr || f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      if (!value.is_array()) continue;
      for (size_t i = 0; i < value.size(); ++i) {
        path.push_back({f, static_cast<int>(i)});
        Extract(value[i], f->message_type(), path, out);
        path.pop_back();
      }
    } else {
      path.push_back({f, -1});
      Extract(value, f->message_type(), path, out);
      path.pop_back();
    }
  }
}

// Puts the values of every tensor in `m` (visited in field order) into `j`, its skeleton.
void Splice(Message& m, Json& j) {
  if (IsTensor(m.GetDescriptor())) {
    auto& t = static_cast<v1::Tensor&>(m);
    Json values = Json::array();
    values.get_ref<Json::array_t&>().reserve(t.values_size());
    for (double v : t.values()) {
      // protobuf's mapping spells the non-finite values as strings.
      if (std::isfinite(v)) {
        values.push_back(v);
      } else {
        values.push_back(std::isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
      }
    }
    j["values"] = std::move(values);
    return;
  }
  const auto* reflection = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    auto it = j.find(f->name());
    if (it == j.end()) continue;
    if (f->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(m, f) && i < static_cast<int>(it->size()); ++i) {
        Splice(*reflection->MutableRepeatedMessage(&m, f, i), (*it)[i]);
      }
    } else {
      Splice(*reflection->MutableMessage(&m, f), *it);
    }
  }
}

}  // namespace

absl::Status ParseJsonMessage(const std::string& body, Message* message) {
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::vector<Extracted> extracted;
  if (!j.is_discarded()) {
    std::vector<Step> path;
    Extract(j, message->GetDescriptor(), path, extracted);
  }
  if (extracted.empty()) return FromProtobuf(google::protobuf::util::JsonStringToMessage(body, message));
  absl::Status s = FromProtobuf(google::protobuf::util::JsonStringToMessage(j.dump(), message));
  if (!s.ok()) return s;
  for (Extracted& e : extracted) {
    Message* m = message;
    for (const Step& step : e.path) {
      const auto* reflection = m->GetReflection();
      m = step.index < 0 ? reflection->MutableMessage(m, step.field)
                         : reflection->MutableRepeatedMessage(m, step.field, step.index);
    }
    static_cast<v1::Tensor*>(m)->mutable_values()->Assign(e.values.begin(), e.values.end());
  }
  return absl::OkStatus();
}

absl::Status PrintJsonMessage(Message* message, std::string* json) {
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  print.always_print_primitive_fields = true;
  // The skeleton: the same message with every tensor's values moved aside.
  std::unique_ptr<Message> skeleton(message->New());
  skeleton->CopyFrom(*message);  // cheap next to printing: values are copied as one block
  std::vector<v1::Tensor*> tensors;
  std::function<void(Message&)> clear = [&](Message& m) {
    if (IsTensor(m.GetDescriptor())) {
      static_cast<v1::Tensor&>(m).clear_values();
      return;
    }
    const auto* reflection = m.GetReflection();
    std::vector<const FieldDescriptor*> fields;
    reflection->ListFields(m, &fields);
    for (const FieldDescriptor* f : fields) {
      if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
      if (f->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(m, f); ++i) clear(*reflection->MutableRepeatedMessage(&m, f, i));
      } else {
        clear(*reflection->MutableMessage(&m, f));
      }
    }
  };
  clear(*skeleton);
  std::string text;
  absl::Status s = FromProtobuf(google::protobuf::util::MessageToJsonString(*skeleton, &text, print));
  if (!s.ok()) return s;
  Json j = Json::parse(text);
  Splice(*message, j);
  *json = j.dump(-1, ' ', false, Json::error_handler_t::replace);
  return absl::OkStatus();
}

}  // namespace gradserve
