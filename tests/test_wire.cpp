// The wire format between stages: tensors survive the trip exactly (fp32) or to the
// precision asked for (fp16/bf16, half the bytes), and anything that is not a well-formed
// message of this version is refused with a clear WireError.
#include <ATen/ATen.h>
#include <caf/all.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <gtest/gtest.h>

#include <cstring>

#include "actors/protocol/actor_system.h"
#include "actors/protocol/messages.h"
#include "actors/protocol/wire_tensor.h"

namespace troupe {
namespace {

TensorMessage hidden_message(WireDType dtype) {
  at::manual_seed(7);
  TensorMessage m;
  m.session_id = 42;
  m.pos = 17;
  m.tensor = to_wire(at::randn({3, 64}), dtype);
  m.sampling.options.temperature = 0.5f;
  m.sampling.options.seed = 1234;
  m.sampling.recent = {1, 2, 3};
  m.sampling.step = 9;
  m.sampling.want_logits = true;
  return m;
}

bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(), a.nbytes()) == 0;
}

template <class F>
std::string wire_error_of(F&& f) {
  try {
    f();
  } catch (const WireError& e) {
    return e.what();
  }
  return "(no WireError)";
}

TEST(Wire, Fp32TensorRoundTripsBitExactWithItsSessionAndPosition) {
  at::manual_seed(1);
  const at::Tensor x = at::randn({5, 64});
  TensorMessage m;
  m.session_id = 7;
  m.pos = 123;
  m.tensor = to_wire(x, WireDType::f32);
  const TensorMessage back = decode_tensor_message(encode_tensor_message(m));
  EXPECT_EQ(back.session_id, 7u);
  EXPECT_EQ(back.pos, 123);
  EXPECT_TRUE(bitwise_equal(from_wire(back.tensor), x));
}

TEST(Wire, Fp16HalvesTheBytesAndComesBackAsFp32WithinHalfPrecision) {
  at::manual_seed(2);
  const at::Tensor x = at::randn({4, 128});
  const WireTensor w16 = to_wire(x, WireDType::f16);
  EXPECT_EQ(w16.data.size() * 2, to_wire(x, WireDType::f32).data.size());
  const at::Tensor back = from_wire(decode_tensor_message(encode_tensor_message({1, 0, w16, {}})).tensor);
  EXPECT_EQ(back.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::allclose(back, x, /*rtol=*/1e-3, /*atol=*/1e-3));
  EXPECT_TRUE(bitwise_equal(back, x.to(at::kHalf).to(at::kFloat)));
}

TEST(Wire, Bf16HalvesTheBytesAndComesBackAsFp32WithinBfloatPrecision) {
  at::manual_seed(3);
  const at::Tensor x = at::randn({4, 128});
  const WireTensor w = to_wire(x, WireDType::bf16);
  EXPECT_EQ(w.data.size(), static_cast<size_t>(x.numel()) * 2);
  const at::Tensor back = from_wire(decode_tensor_message(encode_tensor_message({1, 0, w, {}})).tensor);
  EXPECT_EQ(back.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::allclose(back, x, /*rtol=*/1e-2, /*atol=*/1e-2));
  EXPECT_TRUE(bitwise_equal(back, x.to(at::kBFloat16).to(at::kFloat)));
}

TEST(Wire, TokenIdsTravelAsInt32AndArriveAsInt64) {
  const std::vector<int32_t> ids = {1, 403, 511, 0};
  const WireTensor w = tokens_to_wire(ids);
  EXPECT_EQ(w.dtype, WireDType::i32);
  const at::Tensor back = from_wire(decode_tensor_message(encode_tensor_message({3, 0, w, {}})).tensor);
  EXPECT_EQ(back.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(back, at::tensor(std::vector<int64_t>{1, 403, 511, 0}, at::kLong)));
  EXPECT_TRUE(bitwise_equal(from_wire(to_wire(back, WireDType::f32)), back));
}

TEST(Wire, SamplingRequestRidesAlongUnchanged) {
  const TensorMessage back = decode_tensor_message(encode_tensor_message(hidden_message(WireDType::f32)));
  EXPECT_EQ(back.sampling.options.temperature, 0.5f);
  EXPECT_EQ(back.sampling.options.seed, 1234u);
  EXPECT_EQ(back.sampling.recent, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(back.sampling.step, 9u);
  EXPECT_TRUE(back.sampling.want_logits);
}

TEST(Wire, EveryTruncationIsRefusedWithAClearError) {
  const std::string full = encode_tensor_message(hidden_message(WireDType::f32));
  for (size_t n = 0; n < full.size(); n += (n < 64 ? 1 : 97)) {
    const std::string error = wire_error_of([&] { decode_tensor_message(full.substr(0, n)); });
    EXPECT_NE(error.find("wire message"), std::string::npos) << "prefix of " << n << " bytes: " << error;
  }
}

TEST(Wire, GarbageIsRefusedAsNotATroupeMessage) {
  std::string garbage(300, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>(i * 131 + 7);
  EXPECT_NE(wire_error_of([&] { decode_tensor_message(garbage); }).find("not a troupe tensor message"),
            std::string::npos);
  EXPECT_NE(wire_error_of([&] { decode_tensor_message(""); }).find("too short"), std::string::npos);
}

TEST(Wire, AnotherFormatVersionIsRefusedNamingBothVersions) {
  std::string bytes = encode_tensor_message(hidden_message(WireDType::f32));
  const uint32_t other = kWireFormatVersion + 1;
  std::memcpy(&bytes[4], &other, sizeof(other));  // the version follows the 4-byte magic
  const std::string error = wire_error_of([&] { decode_tensor_message(bytes); });
  EXPECT_NE(error.find("format version " + std::to_string(other)), std::string::npos) << error;
  EXPECT_NE(error.find("reads version " + std::to_string(kWireFormatVersion)), std::string::npos) << error;
}

TEST(Wire, AHugeLengthFieldIsRefusedBeforeAnythingIsAllocated) {
  std::string bytes = encode_tensor_message(hidden_message(WireDType::f32));
  // magic(4) version(4) session(8) pos(8) dtype(1), then the shape's element count.
  const uint64_t huge = uint64_t{1} << 60;
  std::memcpy(&bytes[25], &huge, sizeof(huge));
  const std::string error = wire_error_of([&] { decode_tensor_message(bytes); });
  EXPECT_NE(error.find("tensor shape claims"), std::string::npos) << error;
}

TEST(Wire, ShapeThatDisagreesWithTheDataIsRefused) {
  TensorMessage m = hidden_message(WireDType::f32);
  m.tensor.shape = {3, 65};
  const std::string error = wire_error_of([&] { decode_tensor_message(encode_tensor_message(m)); });
  EXPECT_NE(error.find("needs"), std::string::npos) << error;
}

// An empty dimension makes the element count 0 whatever the others say, but the others still
// size the tensor's strides: [0, 2^62, 2^62] must be refused, not overflow them (a fuzzer find).
TEST(Wire, AnEmptyTensorWithHugeDimensionsIsRefused) {
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{
           {0, int64_t{1} << 62, int64_t{1} << 62}, {int64_t{1} << 62, 0, int64_t{1} << 62}, {0, INT64_MAX}}) {
    for (const bool with_data : {false, true}) {
      TensorMessage m = hidden_message(WireDType::f32);
      m.tensor.shape = shape;
      if (!with_data) m.tensor.data.clear();
      const std::string bytes = encode_tensor_message(m);
      const std::string error = wire_error_of([&] { from_wire(decode_tensor_message(bytes).tensor); });
      EXPECT_NE(error.find("2^40"), std::string::npos) << error;
    }
  }
}

TEST(Wire, ActivationSurvivesCafSerialization) {
  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  caf::actor_system sys{cfg};
  const proto::Activation out{encode_tensor_message(hidden_message(WireDType::bf16))};
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  auto msg = caf::make_message(out);
  ASSERT_FALSE(msg.save(sink));
  caf::binary_deserializer source{sys, buf};
  caf::message in;
  ASSERT_FALSE(in.load(source));
  ASSERT_TRUE(in.match_elements<proto::Activation>());
  EXPECT_EQ(in.get_as<proto::Activation>(0).bytes, out.bytes);
}

// Every option set away from its default, so that a field one serializer leaves out shows.
SamplingOptions unusual_options() {
  SamplingOptions o;
  o.temperature = 0.25f;
  o.top_k = 7;
  o.top_p = 0.5f;
  o.repeat_penalty = 1.3f;
  o.repeat_window = 11;
  o.seed = 99;
  return o;
}

void expect_same_options(const SamplingOptions& a, const SamplingOptions& b) {
  EXPECT_EQ(a.temperature, b.temperature);
  EXPECT_EQ(a.top_k, b.top_k);
  EXPECT_EQ(a.top_p, b.top_p);
  EXPECT_EQ(a.repeat_penalty, b.repeat_penalty);
  EXPECT_EQ(a.repeat_window, b.repeat_window);
  EXPECT_EQ(a.seed, b.seed);
}

TEST(Wire, EverySamplingOptionSurvivesBothTheWireCodecAndCafSerialization) {
  TensorMessage m = hidden_message(WireDType::f32);
  m.sampling.options = unusual_options();
  expect_same_options(decode_tensor_message(encode_tensor_message(m)).sampling.options, unusual_options());

  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  caf::actor_system sys{cfg};
  proto::LogitsRow row;
  row.session_id = 5;
  row.logits = {1.0f, -2.0f};
  row.sampling = m.sampling;
  row.sampling.draft = {4, 8};
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  ASSERT_FALSE(caf::make_message(row).save(sink));
  caf::binary_deserializer source{sys, buf};
  caf::message in;
  ASSERT_FALSE(in.load(source));
  ASSERT_TRUE(in.match_elements<proto::LogitsRow>());
  const proto::LogitsRow& back = in.get_as<proto::LogitsRow>(0);
  expect_same_options(back.sampling.options, unusual_options());
  EXPECT_EQ(back.session_id, 5u);
  EXPECT_EQ(back.logits, row.logits);
  EXPECT_EQ(back.sampling.recent, row.sampling.recent);
  EXPECT_EQ(back.sampling.step, row.sampling.step);
  EXPECT_EQ(back.sampling.want_logits, row.sampling.want_logits);
  EXPECT_EQ(back.sampling.draft, row.sampling.draft);
}

}  // namespace
}  // namespace troupe
