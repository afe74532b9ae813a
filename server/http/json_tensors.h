// Protobuf's JSON mapping for gradserve messages, fast for big tensors. protobuf 3.21's own JSON
// code spends ~1.3 µs per number parsing and ~5.7 µs printing (2 s for a [256, 1000] Backward),
// so the tensors' `values` arrays take a short cut each way, and everything else is still
// protobuf's JsonStringToMessage / MessageToJsonString:
//   - parsing: simdjson (Debian's libsimdjson) walks the body along the message's fields, reads
//     every all-number `values` array of a Tensor straight into a repeated double field and cuts
//     it out of the text; protobuf parses what is left (field names in either spelling, enums,
//     int64 strings, base64 `raw`, "NaN" / "Infinity" values, unknown fields), and the numbers
//     are swapped in. Whatever the walk cannot vouch for (invalid JSON, a duplicate field, a
//     number simdjson refuses) goes to protobuf whole, and so does any body protobuf refuses in
//     its short form, so that acceptance, values and error messages are exactly protobuf's.
//   - printing: protobuf prints the message with each tensor's values set aside, and the numbers
//     are written into one preallocated string with std::to_chars (shortest round trip;
//     "NaN", "Infinity", "-Infinity" as protobuf's mapping spells them).
//
//   std::string body = ...;  // body.reserve(size + kJsonPadding) spares the parser a copy
//   v1::BackwardRequest request;
//   GRADSERVE_RETURN_IF_ERROR(ParseJsonMessage(body, &request));
#ifndef GRADSERVE_SERVER_HTTP_JSON_TENSORS_H_
#define GRADSERVE_SERVER_HTTP_JSON_TENSORS_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace gradserve {

// Spare capacity a body needs past its size for simdjson to read it in place (its
// SIMDJSON_PADDING); a body with less is copied once.
inline constexpr size_t kJsonPadding = 64;

// JsonStringToMessage(body, message) with default options (unknown fields refused): the same
// message, or the same error, for every body.
absl::Status ParseJsonMessage(const std::string& body, google::protobuf::Message* message);

// MessageToJsonString with the proto's field names and every field present; the tensors'
// numbers in shortest round-trip form. Leaves `message` as it was.
absl::Status PrintJsonMessage(google::protobuf::Message* message, std::string* json);

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_HTTP_JSON_TENSORS_H_
