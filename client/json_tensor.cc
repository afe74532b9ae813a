#include "client/json_tensor.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/json_value.h"
#include "client/status_macros.h"
#include "client/text_grid.h"

namespace gradserve::client {
namespace {

std::string At(absl::string_view path, const JsonValue& v) {
  return absl::StrCat(path, ":", v.line, ":", v.column, ": ");
}

// A number, or one of the strings protobuf's JSON mapping uses for non-finite doubles (and the
// quoted numbers it uses for int64, so a printed shape reads back).
absl::StatusOr<double> NumberOf(absl::string_view path, const JsonValue& v) {
  if (v.kind == JsonValue::kNumber) return v.number;
  if (v.kind == JsonValue::kString) {
    if (v.text == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (v.text == "Infinity") return std::numeric_limits<double>::infinity();
    if (v.text == "-Infinity") return -std::numeric_limits<double>::infinity();
    double d;
    if (ParseNumber(v.text, &d)) return d;
  }
  return absl::InvalidArgumentError(At(path, v) + "expected a number");
}

// Appends the numbers of a nested array to `out`, checking it is rectangular: every array at a
// depth has the length of the first one seen there (`shape`, filled in on the first descent).
absl::Status Flatten(absl::string_view path, const JsonValue& v, size_t depth,
                     std::vector<int64_t>* shape, bool* shape_known, HostTensor* out) {
  if (v.kind != JsonValue::kArray) {
    if (!*shape_known) {
      *shape_known = true;
      shape->resize(depth);
    } else if (depth != shape->size()) {
      return absl::InvalidArgumentError(At(path, v) + absl::StrCat("expected an array nested ",
                                        shape->size(), " deep like the first value, found a number"));
    }
    GRADSERVE_CLIENT_ASSIGN_OR_RETURN(double d, NumberOf(path, v));
    out->values.push_back(d);
    return absl::OkStatus();
  }
  const int64_t n = static_cast<int64_t>(v.items.size());
  if (*shape_known) {
    if (depth >= shape->size()) {
      return absl::InvalidArgumentError(At(path, v) + absl::StrCat(
          "expected a number at nesting depth ", depth, " like the first value, found an array"));
    }
    if ((*shape)[depth] != n) {
      return absl::InvalidArgumentError(At(path, v) + absl::StrCat(
          "array has ", n, " elements, expected ", (*shape)[depth], " like the first at this depth"));
    }
  } else {
    if (shape->size() <= depth) shape->resize(depth + 1);
    (*shape)[depth] = n;
    if (n == 0) {  // an empty array ends the shape here: [] is [0], [[], []] is [2, 0]
      *shape_known = true;
      shape->resize(depth + 1);
    }
  }
  for (const JsonValue& item : v.items) {
    GRADSERVE_CLIENT_RETURN_IF_ERROR(Flatten(path, item, depth + 1, shape, shape_known, out));
  }
  return absl::OkStatus();
}

// {"shape": [...], "values": [...]}: a Tensor message in protobuf's JSON mapping.
absl::StatusOr<HostTensor> FromTensorObject(absl::string_view path, const JsonValue& v) {
  HostTensor out;
  const JsonValue* values = nullptr;
  bool has_shape = false;
  for (const auto& [key, member] : v.members) {
    if (key == "shape") {
      if (member.kind != JsonValue::kArray) return absl::InvalidArgumentError(At(path, member) + "\"shape\" must be an array");
      for (const JsonValue& d : member.items) {
        GRADSERVE_CLIENT_ASSIGN_OR_RETURN(double dim, NumberOf(path, d));
        if (dim < 0 || dim != std::floor(dim)) {
          return absl::InvalidArgumentError(At(path, d) + "a dimension must be a non-negative integer");
        }
        out.shape.push_back(static_cast<int64_t>(dim));
      }
      has_shape = true;
    } else if (key == "values") {
      values = &member;
    } else if (key == "raw" && !(member.kind == JsonValue::kString && member.text.empty())) {
      return absl::InvalidArgumentError(At(path, member) +
                                        "\"raw\" tensors are not read from JSON; give \"values\"");
    }
  }
  if (values == nullptr) values = &v;  // no "values": an empty tensor, as in the proto
  if (values != &v) {
    if (values->kind != JsonValue::kArray) return absl::InvalidArgumentError(At(path, *values) + "\"values\" must be an array");
    for (const JsonValue& item : values->items) {
      GRADSERVE_CLIENT_ASSIGN_OR_RETURN(double d, NumberOf(path, item));
      out.values.push_back(d);
    }
  }
  if (!has_shape) out.shape = {static_cast<int64_t>(out.values.size())};
  if (NumElements(out.shape) != static_cast<int64_t>(out.values.size())) {
    return absl::InvalidArgumentError(At(path, v) + absl::StrCat(
        "\"shape\" ", ShapeString(out.shape), " needs ", NumElements(out.shape), " values, found ",
        out.values.size()));
  }
  return out;
}

}  // namespace

absl::StatusOr<HostTensor> ParseJsonTensor(absl::string_view path, absl::string_view contents) {
  GRADSERVE_CLIENT_ASSIGN_OR_RETURN(JsonValue root, ParseJson(path, contents));
  if (root.kind == JsonValue::kObject) return FromTensorObject(path, root);
  HostTensor out;
  bool shape_known = false;
  GRADSERVE_CLIENT_RETURN_IF_ERROR(Flatten(path, root, 0, &out.shape, &shape_known, &out));
  return out;
}

}  // namespace gradserve::client
