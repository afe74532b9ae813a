#include "client/output_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "client/npy.h"
#include "client/tensor_codec.h"

namespace gradserve::client {
namespace {

using google::protobuf::FieldDescriptor;

bool IsTensorField(const FieldDescriptor* f) {
  return f != nullptr && !f->is_repeated() && f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
         f->message_type() == gradserve::v1::Tensor::descriptor();
}

}  // namespace

absl::Status CheckOutput(const google::protobuf::Descriptor* type, absl::string_view field,
                         absl::string_view path) {
  const std::string lower = absl::AsciiStrToLower(path);
  if (!absl::EndsWith(lower, ".npy") && !absl::EndsWith(lower, ".csv")) {
    return absl::InvalidArgumentError(absl::StrCat("--output ", path, ": name a .npy or .csv file"));
  }
  if (IsTensorField(type->FindFieldByName(std::string(field)))) return absl::OkStatus();
  std::vector<std::string> tensors;
  for (int i = 0; i < type->field_count(); ++i) {
    if (IsTensorField(type->field(i))) tensors.push_back(type->field(i)->name());
  }
  return absl::InvalidArgumentError(absl::StrCat("--output-field ", field, ": ", type->name(),
                                                 " has the tensors ", absl::StrJoin(tensors, ", ")));
}

std::string EncodeCsv(const HostTensor& t, gradserve::v1::DataType dtype) {
  const int64_t width = t.shape.empty() ? 1 : t.shape.back();
  const int digits = dtype == gradserve::v1::DATA_TYPE_FLOAT64 ? 17 : 9;
  std::string out;
  for (size_t i = 0; i < t.values.size(); ++i) {
    absl::StrAppend(&out, absl::StrFormat("%.*g", digits, t.values[i]));
    const bool row_end = t.shape.size() > 1 && (static_cast<int64_t>(i) + 1) % width == 0;
    absl::StrAppend(&out, row_end || i + 1 == t.values.size() ? "\n" : ",");
  }
  return out;
}

absl::Status WriteResponseTensor(const google::protobuf::Message& response, absl::string_view field,
                                 const std::string& path) {
  const FieldDescriptor* f = response.GetDescriptor()->FindFieldByName(std::string(field));
  if (!IsTensorField(f)) return CheckOutput(response.GetDescriptor(), field, path);
  if (!response.GetReflection()->HasField(response, f)) {
    return absl::InvalidArgumentError(absl::StrCat("--output: the response has no ", field,
                                                   " (was it asked for?)"));
  }
  const auto& wire = static_cast<const gradserve::v1::Tensor&>(response.GetReflection()->GetMessage(response, f));
  absl::StatusOr<HostTensor> t = DecodeTensor(wire);
  if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat("response ", field, ": ", t.status().message()));
  const std::string contents = absl::EndsWith(absl::AsciiStrToLower(path), ".npy") ? EncodeNpy(*t, t->dtype)
                                                                                   : EncodeCsv(*t, t->dtype);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (out) out.write(contents.data(), contents.size());
  if (!out) return absl::InvalidArgumentError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

}  // namespace gradserve::client
