// A small JSON reader that remembers where each value starts, for error messages that point at
// a line and column (protobuf's JSON parser reports neither). Reads RFC 8259 JSON; the input
// files are small, so the tree is plain vectors.
//
//   absl::StatusOr<JsonValue> v = ParseJson("z.json", "[1, 2]");
//   v->kind == JsonValue::kArray; v->items[1].number == 2; v->items[1].column == 5
#ifndef GRADSERVE_CLIENT_JSON_VALUE_H_
#define GRADSERVE_CLIENT_JSON_VALUE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gradserve::client {

struct JsonValue {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = kNull;
  bool boolean = false;
  double number = 0;
  std::string text;                                         // kString
  std::vector<JsonValue> items;                             // kArray
  std::vector<std::pair<std::string, JsonValue>> members;   // kObject, in file order
  int64_t line = 1, column = 1;                             // where the value starts, 1-based
};

// Parses `contents`; errors read "path:line:column: what was expected".
absl::StatusOr<JsonValue> ParseJson(absl::string_view path, absl::string_view contents);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_JSON_VALUE_H_
