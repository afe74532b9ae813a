// The wire layer of the gRPC service: big request tensors read in place from the receive
// slices, big response tensors sent from their own buffers, and the bytes on the wire exactly
// protobuf's.
#include "server/wire_message.h"

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "gtest/gtest.h"
#include "server/raw_fields.h"
#include "server/tensor_codec.h"

namespace gradserve {
namespace {

using google::protobuf::util::MessageDifferencer;

std::vector<float> Seeded(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-4, 4);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

void SetRaw(v1::Tensor* t, std::vector<int64_t> shape, const std::vector<float>& v) {
  t->mutable_shape()->Assign(shape.begin(), shape.end());
  t->set_dtype(v1::DATA_TYPE_FLOAT32);
  t->set_raw(std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4));
}

// A 4096 × 1000 float32 Backward request, as a client sends it.
v1::BackwardRequest BigRequest() {
  v1::BackwardRequest req;
  SetRaw(req.mutable_logits(), {4096, 1000}, Seeded(4096 * 1000, 1));
  for (int r = 0; r < 4096; ++r) req.mutable_targets()->mutable_class_indices()->add_values(r % 1000);
  return req;
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// `bytes` in one slice of its own memory, placed so that offset `at` of it lands `misalign`
// bytes past a 64-byte boundary.
grpc::ByteBuffer OneSlice(const std::string& bytes, size_t at, size_t misalign, const char** begin) {
  char* block = static_cast<char*>(std::aligned_alloc(64, bytes.size() + 128));
  const size_t lead = (64 - at % 64 + misalign) % 64;
  std::memcpy(block + lead, bytes.data(), bytes.size());
  *begin = block + lead;
  // The slice frees the block through user_data, its own start.
  grpc::Slice slice(block + lead, bytes.size(), [](void* p) { std::free(p); }, block);
  return grpc::ByteBuffer(&slice, 1);
}

// Where the logits' raw payload starts in the serialised request.
size_t RawOffset(const std::string& wire, const v1::BackwardRequest& req) {
  const size_t at = wire.find(req.logits().raw().substr(0, 64));
  EXPECT_NE(at, std::string::npos);
  return at;
}

TEST(WireMessageTest, BigRawInputInOneSliceIsReadInPlace) {
  const v1::BackwardRequest req = BigRequest();
  const std::string wire = req.SerializeAsString();
  const char* begin = nullptr;
  const grpc::ByteBuffer buffer = OneSlice(wire, RawOffset(wire, req), 0, &begin);
  v1::BackwardRequest parsed;
  RawFields fields;
  ASSERT_TRUE(ParseRequest(buffer, &parsed, &fields).ok());
  EXPECT_TRUE(parsed.logits().raw().empty());  // not copied into the message
  const RawFields::Scope scope(&fields);
  const auto logits = DecodeTensor<float>(parsed.logits(), "logits", Limits{});
  ASSERT_TRUE(logits.ok()) << logits.status();
  const char* data = reinterpret_cast<const char*>(logits->data());
  EXPECT_GE(data, begin);
  EXPECT_LE(data + 4 * logits->size(), begin + wire.size());
  EXPECT_EQ(fields.copied_input_bytes(), 0);
  EXPECT_EQ(0, std::memcmp(data, req.logits().raw().data(), req.logits().raw().size()));
  EXPECT_EQ(parsed.targets().class_indices().values_size(), 4096);
}

TEST(WireMessageTest, MisalignedInputIsRealignedOnce) {
  const v1::BackwardRequest req = BigRequest();
  const std::string wire = req.SerializeAsString();
  const char* begin = nullptr;
  const grpc::ByteBuffer buffer = OneSlice(wire, RawOffset(wire, req), 1, &begin);
  v1::BackwardRequest parsed;
  RawFields fields;
  ASSERT_TRUE(ParseRequest(buffer, &parsed, &fields).ok());
  const RawFields::Scope scope(&fields);
  const auto logits = DecodeTensor<float>(parsed.logits(), "logits", Limits{});
  ASSERT_TRUE(logits.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(logits->data()) % alignof(float), 0u);
  EXPECT_EQ(fields.copied_input_bytes(), 4096 * 1000 * 4);
  EXPECT_EQ(0, std::memcmp(logits->data(), req.logits().raw().data(), req.logits().raw().size()));
}

// Copies the views back into the message, to compare it with protobuf's own parse.
void Materialize(v1::BackwardRequest* req, const RawFields& fields) {
  auto put = [&](bool has, auto mutable_tensor) {
    if (!has) return;  // mutable_*() would set it
    v1::Tensor* t = mutable_tensor();
    if (const std::string_view* bytes = fields.FindInput(*t)) t->set_raw(std::string(*bytes));
  };
  put(req->has_logits(), [&] { return req->mutable_logits(); });
  put(req->has_grad_probabilities(), [&] { return req->mutable_grad_probabilities(); });
  put(req->has_grad_loss(), [&] { return req->mutable_grad_loss(); });
  put(req->targets().has_probabilities(), [&] { return req->mutable_targets()->mutable_probabilities(); });
}

v1::BackwardRequest ParseBoth(const std::string& wire, const std::vector<size_t>& cuts, RawFields* fields) {
  std::vector<grpc::Slice> slices;
  size_t from = 0;
  for (size_t cut : cuts) {
    slices.emplace_back(wire.data() + from, cut - from);
    from = cut;
  }
  slices.emplace_back(wire.data() + from, wire.size() - from);
  const grpc::ByteBuffer buffer(slices.data(), slices.size());
  v1::BackwardRequest parsed;
  EXPECT_TRUE(ParseRequest(buffer, &parsed, fields).ok());
  return parsed;
}

TEST(WireMessageTest, InputAcrossSlicesIsGatheredAndEqualsProtobufsParse) {
  v1::BackwardRequest req = BigRequest();
  SetRaw(req.mutable_grad_loss(), {}, {0.5f});
  const std::string wire = req.SerializeAsString();
  RawFields fields;
  v1::BackwardRequest parsed = ParseBoth(wire, {3, 100, wire.size() / 2}, &fields);
  EXPECT_EQ(fields.copied_input_bytes(), 4096 * 1000 * 4);
  Materialize(&parsed, fields);
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, req));
}

TEST(WireMessageTest, LaterFieldsWinAsInProtobuf) {
  // raw twice (big, then small), and a oneof member replaced by a later one.
  v1::BackwardRequest first;
  SetRaw(first.mutable_logits(), {2, 50000}, Seeded(100000, 2));
  SetRaw(first.mutable_targets()->mutable_probabilities(), {2, 50000}, Seeded(100000, 3));
  v1::BackwardRequest second;
  SetRaw(second.mutable_logits(), {1, 2}, {1.0f, 2.0f});
  second.mutable_targets()->mutable_class_indices()->add_values(1);
  const std::string wire = first.SerializeAsString() + second.SerializeAsString();
  v1::BackwardRequest expected;
  ASSERT_TRUE(expected.ParseFromString(wire));
  RawFields fields;
  v1::BackwardRequest parsed = ParseBoth(wire, {}, &fields);
  EXPECT_EQ(fields.FindInput(parsed.logits()), nullptr);
  Materialize(&parsed, fields);
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, expected));
  EXPECT_EQ(parsed.logits().raw().size(), 8u);
}

TEST(WireMessageTest, MalformedRequestGetsGrpcsOwnStatus) {
  const std::string wire = BigRequest().SerializeAsString();
  const std::string cut = wire.substr(0, wire.size() - 5000);  // inside the class indices
  grpc::Slice slice(cut);
  const grpc::ByteBuffer buffer(&slice, 1);
  v1::BackwardRequest parsed;
  RawFields fields;
  const grpc::Status ours = ParseRequest(buffer, &parsed, &fields);
  grpc::ByteBuffer again(&slice, 1);
  v1::BackwardRequest reference;
  const grpc::Status grpcs = grpc::SerializationTraits<v1::BackwardRequest>::Deserialize(&again, &reference);
  ASSERT_FALSE(grpcs.ok());
  EXPECT_EQ(ours.error_code(), grpcs.error_code());
  EXPECT_EQ(ours.error_message(), grpcs.error_message());
}

TEST(WireMessageTest, ResponseBytesEqualProtobufsWithOutputsInSlicesOfTheirOwn) {
  const std::vector<float> grad = Seeded(4096 * 100, 4), probs = Seeded(4096 * 100, 5);
  // What the codec writes with and without a RawFields scope must serialise identically.
  auto fill = [&](v1::BackwardResponse* resp) {
    OutputTensor<float> g(resp->mutable_grad_logits(), {4096, 100}, Encoding::kRaw);
    std::memcpy(g.data(), grad.data(), grad.size() * 4);
    g.Commit();
    OutputTensor<float> loss(resp->mutable_loss(), {}, Encoding::kRaw);
    loss.data()[0] = 2.5f;
    loss.Commit();
    OutputTensor<float> p(resp->mutable_probabilities(), {4096, 100}, Encoding::kRaw);
    std::memcpy(p.data(), probs.data(), probs.size() * 4);
    p.Commit();
    resp->set_reduction_denominator(4096);
  };
  v1::BackwardResponse plain;
  fill(&plain);
  v1::BackwardResponse held;
  RawFields fields;
  {
    const RawFields::Scope scope(&fields);
    fill(&held);
  }
  EXPECT_TRUE(held.grad_logits().raw().empty());
  EXPECT_FALSE(held.loss().raw().empty());  // small: kept in the message
  const grpc::ByteBuffer out = SerializeResponse(held, &fields);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(out.Dump(&slices).ok());
  EXPECT_GE(slices.size(), 3u);  // the two big tensors' bytes are slices of their own
  EXPECT_FALSE(fields.has_outputs());  // handed over to the buffer
  EXPECT_EQ(Flatten(out), plain.SerializeAsString());
}

TEST(WireMessageTest, NestedOutputsInRepeatedMessagesSerialiseIdentically) {
  const std::vector<double> v(20000, 0.25);
  auto fill = [&](v1::VerifyGradientResponse* resp) {
    resp->set_ok(false);
    for (int k = 0; k < 2; ++k) {
      v1::Finding* f = resp->add_findings();
      f->set_code(v1::FINDING_CODE_SIGN_FLIPPED);
      f->set_message("sign");
      OutputTensor<double> m(f->mutable_mistaken_grad(), {20000}, Encoding::kRaw);
      std::memcpy(m.data(), v.data(), v.size() * 8);
      m.Commit();
      f->set_residual(k);
    }
    resp->set_summary("two findings");
  };
  v1::VerifyGradientResponse plain, held;
  fill(&plain);
  RawFields fields;
  {
    const RawFields::Scope scope(&fields);
    fill(&held);
  }
  EXPECT_EQ(Flatten(SerializeResponse(held, &fields)), plain.SerializeAsString());
}

TEST(WireMessageTest, SmallResponsesAreProtobufsOwn) {
  v1::BackwardResponse resp;
  RawFields fields;
  {
    const RawFields::Scope scope(&fields);
    OutputTensor<float> g(resp.mutable_grad_logits(), {2, 3}, Encoding::kRaw);
    for (int k = 0; k < 6; ++k) g.data()[k] = k;
    g.Commit();
  }
  EXPECT_FALSE(fields.has_outputs());
  EXPECT_EQ(Flatten(SerializeResponse(resp, &fields)), resp.SerializeAsString());
}

}  // namespace
}  // namespace gradserve
