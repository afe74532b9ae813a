#include "client/response_json.h"

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "base/status_macros.h"
#include "client/tensor_codec.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"

namespace gradserve::client {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Rewrites every gradserve.v1.Tensor inside `m` (at any depth, e.g. findings' mistaken_grad)
// from raw bytes to values.
absl::Status DecodeTensors(Message* m) {
  if (auto* t = dynamic_cast<gradserve::v1::Tensor*>(m)) {
    if (t->raw().empty()) return absl::OkStatus();
    GRADSERVE_ASSIGN_OR_RETURN(HostTensor host, DecodeTensor(*t));
    t->clear_raw();
    t->mutable_values()->Add(host.values.begin(), host.values.end());
    return absl::OkStatus();
  }
  const Reflection* reflection = m->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(*m, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (field->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(*m, field); ++i) {
        absl::Status s = DecodeTensors(reflection->MutableRepeatedMessage(m, field, i));
        if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(field->name(), "[", i, "]: ", s.message()));
      }
    } else {
      absl::Status s = DecodeTensors(reflection->MutableMessage(m, field));
      if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(field->name(), ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ResponseJson(const Message& response) {
  std::unique_ptr<Message> copy(response.New());
  copy->CopyFrom(response);
  absl::Status decoded = DecodeTensors(copy.get());
  if (!decoded.ok()) return absl::InvalidArgumentError(absl::StrCat("response ", decoded.message()));
  google::protobuf::util::JsonPrintOptions options;
  // One line: scripts read it whole, and `jq .` indents it for people.
  options.add_whitespace = false;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(*copy, &json, options);
  if (!status.ok()) return absl::InternalError(absl::StrCat("cannot print JSON: ", status.ToString()));
  // Decoded tensors keep an empty "raw", which always_print_primitive_fields prints; it says
  // nothing. (In this compact form the sequence can only be that key: quotes inside strings are
  // escaped.)
  absl::StrReplaceAll({{"\"raw\":\"\",", ""}}, &json);
  return json + "\n";
}

}  // namespace gradserve::client
