// Requests and responses between gRPC's byte buffers and protobuf messages, with the big tensor
// bytes left where they are (server/raw_fields.h holds them).
//
// A request is parsed with protobuf for everything but the `raw` fields of its tensors of at
// least kExternalRawBytes: those are registered as views of gRPC's receive slices (or, when a
// field straddles two slices, gathered once into one buffer). A response is serialised by
// protobuf except for the raw outputs held in RawFields, which become slices of their own that
// gRPC frees after sending: the bytes on the wire are exactly protobuf's serialisation of the
// message with those fields filled in, so every client parses the same message.
//
//   RawFields fields;
//   grpc::Status parsed = ParseRequest(request_buffer, &request, &fields);
//   ... RawFields::Scope, the RPC's logic ...
//   *response_buffer = SerializeResponse(response, &fields);
#ifndef GRADSERVE_SERVER_WIRE_MESSAGE_H_
#define GRADSERVE_SERVER_WIRE_MESSAGE_H_

#include <cstddef>

#include "google/protobuf/message.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/status.h"
#include "server/raw_fields.h"

namespace gradserve {

// Requests smaller than this are parsed by protobuf whole: a few small copies cost less than
// the bookkeeping.
inline constexpr size_t kZeroCopyRequestBytes = 64 << 10;

// Parses `buffer` into `message` (cleared first). The registered views point into `buffer`'s
// slices: `buffer` must not change while `fields` is used. A malformed buffer gets the status
// gRPC's own deserialisation gives it.
grpc::Status ParseRequest(const grpc::ByteBuffer& buffer, google::protobuf::Message* message,
                          RawFields* fields);

// `message` on the wire, the raw outputs of `fields` included (their buffers are handed over
// to the returned buffer's slices and leave `fields`).
grpc::ByteBuffer SerializeResponse(const google::protobuf::Message& message, RawFields* fields);

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_WIRE_MESSAGE_H_
