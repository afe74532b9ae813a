#include "client/json_tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/element_count.h"
#include "base/status_macros.h"
#include "client/text_grid.h"
#include "gradserve/v1/gradserve.pb.h"
#include "nlohmann/json.hpp"

namespace gradserve::client {
namespace {

using nlohmann::json;

// A tensor needs a handful of levels; deeper documents are refused rather than recursed into.
constexpr size_t kMaxDepth = 64;

// Where a value sits: "[1][0]" for an array element, "/values[3]" inside a tensor object.
std::string At(absl::string_view path, const std::string& place) {
  return absl::StrCat(path, ": ", place.empty() ? "" : place + ": ");
}

std::string Shown(const json& v) {
  std::string s = v.dump();
  return s.size() > 24 ? s.substr(0, 21) + "..." : s;
}

// A number, or one of the strings protobuf's JSON mapping uses for non-finite doubles (and the
// quoted numbers it uses for int64, so a printed shape reads back).
absl::StatusOr<double> NumberOf(absl::string_view path, const std::string& place, const json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (s == "Infinity") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
    // A quoted number must itself be JSON's number grammar ("1e3", not "0x10" or " 1").
    const json inner = json::parse(s, nullptr, /*allow_exceptions=*/false);
    if (inner.is_number()) return inner.get<double>();
  }
  return absl::InvalidArgumentError(At(path, place) + "expected a number, found " + Shown(v));
}

// Appends the numbers of a nested array to `out`, checking it is rectangular: every array at a
// depth has the length of the first one seen there (`shape`, filled in on the first descent).
absl::Status Flatten(absl::string_view path, const json& v, const std::string& place,
                     std::vector<int64_t>* shape, bool* shape_known, HostTensor* out) {
  const size_t depth = std::count(place.begin(), place.end(), '[');
  if (depth > kMaxDepth) {
    return absl::InvalidArgumentError(At(path, place) + absl::StrCat("nested deeper than ", kMaxDepth, " levels"));
  }
  if (!v.is_array()) {
    if (!*shape_known) {
      *shape_known = true;
      shape->resize(depth);
    } else if (depth != shape->size()) {
      return absl::InvalidArgumentError(At(path, place) + absl::StrCat(
          "expected an array nested ", shape->size(), " deep like the first value, found ", Shown(v)));
    }
    GRADSERVE_ASSIGN_OR_RETURN(double d, NumberOf(path, place, v));
    out->values.push_back(d);
    return absl::OkStatus();
  }
  const int64_t n = static_cast<int64_t>(v.size());
  if (*shape_known) {
    if (depth >= shape->size()) {
      return absl::InvalidArgumentError(At(path, place) + absl::StrCat(
          "expected a number at nesting depth ", depth, " like the first value, found an array"));
    }
    if ((*shape)[depth] != n) {
      return absl::InvalidArgumentError(At(path, place) + absl::StrCat(
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
  for (size_t i = 0; i < v.size(); ++i) {
    GRADSERVE_RETURN_IF_ERROR(
        Flatten(path, v[i], absl::StrCat(place, "[", i, "]"), shape, shape_known, out));
  }
  return absl::OkStatus();
}

// {"shape": [...], "dtype": ..., "values": [...]}: a Tensor message in protobuf's JSON mapping.
absl::StatusOr<HostTensor> FromTensorObject(absl::string_view path, const json& v) {
  HostTensor out;
  bool has_shape = false;
  for (const auto& [key, member] : v.items()) {
    const std::string place = "/" + key;
    if (key == "shape") {
      if (!member.is_array()) return absl::InvalidArgumentError(At(path, place) + "must be an array");
      for (size_t i = 0; i < member.size(); ++i) {
        const std::string where = absl::StrCat(place, "[", i, "]");
        GRADSERVE_ASSIGN_OR_RETURN(double dim, NumberOf(path, where, member[i]));
        // 2^62 keeps the conversion defined and any product of real dimensions checkable.
        if (!(dim >= 0 && dim <= 4.6e18 && dim == std::floor(dim))) {
          return absl::InvalidArgumentError(At(path, where) + absl::StrCat(
              "a dimension must be an integer in [0, 2^62], found ", Shown(member[i])));
        }
        out.shape.push_back(static_cast<int64_t>(dim));
      }
      has_shape = true;
    } else if (key == "values") {
      if (!member.is_array()) return absl::InvalidArgumentError(At(path, place) + "must be an array");
      for (size_t i = 0; i < member.size(); ++i) {
        GRADSERVE_ASSIGN_OR_RETURN(double d, NumberOf(path, absl::StrCat(place, "[", i, "]"), member[i]));
        out.values.push_back(d);
      }
    } else if (key == "dtype") {
      gradserve::v1::DataType dtype;
      if (!member.is_string() || !gradserve::v1::DataType_Parse(member.get<std::string>(), &dtype) ||
          dtype == gradserve::v1::DATA_TYPE_UNSPECIFIED) {
        return absl::InvalidArgumentError(At(path, place) + "expected DATA_TYPE_FLOAT16, DATA_TYPE_BFLOAT16, "
                                          "DATA_TYPE_FLOAT32 or DATA_TYPE_FLOAT64, found " + Shown(member));
      }
      out.dtype = dtype;
    } else if (key == "raw") {
      if (!(member.is_string() && member.get_ref<const std::string&>().empty())) {
        return absl::InvalidArgumentError(At(path, place) + "raw tensors are not read from JSON; give \"values\"");
      }
    } else {
      return absl::InvalidArgumentError(At(path, place) + "unknown key \"" + key +
                                        "\"; a tensor object has shape, dtype and values");
    }
  }
  if (!has_shape) out.shape = {static_cast<int64_t>(out.values.size())};
  // Capped just above the number of values, so a product of dimensions up to 2^62 cannot overflow.
  const int64_t have = static_cast<int64_t>(out.values.size());
  if (CappedElementCount(out.shape, have) != have) {
    return absl::InvalidArgumentError(At(path, "") + absl::StrCat(
        "\"shape\" ", ShapeString(out.shape), " does not match the ", out.values.size(), " values given"));
  }
  return out;
}

// "[json.exception.parse_error.101] parse error at line 3, column 3: syntax error ..." becomes
// "path:3:3: syntax error ...", the way compilers point at a place.
std::string SyntaxError(absl::string_view path, const json::parse_error& e) {
  std::string what = e.what();
  const std::string marker = "parse error at line ";
  size_t at = what.find(marker);
  int line = 0, column = 0;
  if (at != std::string::npos && std::sscanf(what.c_str() + at + marker.size(), "%d, column %d", &line, &column) == 2) {
    const size_t colon = what.find(": ", at);
    return absl::StrCat(path, ":", line, ":", column, ": ",
                        colon == std::string::npos ? what : what.substr(colon + 2));
  }
  return absl::StrCat(path, ": ", what);
}

}  // namespace

absl::StatusOr<HostTensor> ParseJsonTensor(absl::string_view path, absl::string_view contents) {
  json root;
  try {
    root = json::parse(contents.begin(), contents.end());
  } catch (const json::parse_error& e) {
    return absl::InvalidArgumentError(SyntaxError(path, e));
  } catch (const json::exception& e) {  // e.g. out_of_range.406: "number overflow parsing '1e400'"
    const std::string what = e.what();
    const size_t tag_end = what.find("] ");
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", tag_end == std::string::npos ? what : what.substr(tag_end + 2)));
  }
  if (root.is_object()) return FromTensorObject(path, root);
  HostTensor out;
  bool shape_known = false;
  GRADSERVE_RETURN_IF_ERROR(Flatten(path, root, "", &out.shape, &shape_known, &out));
  return out;
}

}  // namespace gradserve::client
