// Safetensors files and sharded checkpoints: the format's rules, the DeepSeek FP8 layout,
// round trips, and files and indexes damaged in every way a test can think of (each rejected
// with a message naming the file, the tensor and the rule; never a crash or a read out of
// bounds).
#include "anychip/safetensors.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <thread>

#include "anychip/error.hpp"
#include "anychip/formats.hpp"

namespace fs = std::filesystem;
using namespace anychip;

namespace {

using Bytes = std::vector<std::byte>;

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() /
               ("anychip-safetensors-" + name + "-" + std::to_string(::getpid()) + "-" +
                std::to_string(std::random_device{}()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::uint64_t fresh_seed() {
  return (std::uint64_t{std::random_device{}()} << 32) | std::random_device{}();
}

// A file image written by hand: the 8-byte little-endian header size, the header text
// exactly as given (no padding added), then the buffer. Independent of the writer.
Bytes image(const std::string& header, const std::vector<std::uint8_t>& buffer) {
  Bytes out;
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(std::byte(n >> (8 * i)));
  for (char c : header) out.push_back(std::byte(c));
  for (std::uint8_t b : buffer) out.push_back(std::byte(b));
  return out;
}

Bytes size_field_only(std::uint64_t n, std::size_t extra) {
  Bytes out;
  for (int i = 0; i < 8; ++i) out.push_back(std::byte(n >> (8 * i)));
  out.resize(8 + extra, std::byte{'{'});
  return out;
}

void write_file(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

Bytes read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

// Runs f, which must throw an anychip::Error of `code` whose message holds `needle`.
void expect_error(const std::function<void()>& f, ErrorCode code, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one holding: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(error_code_name(e.code()), error_code_name(code)) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message: " << e.what() << "\nexpected to hold: " << needle;
  }
}

// Opening the image must fail with ParseError, naming the file and holding `needle`.
void expect_rejected(const Bytes& bytes, const std::string& needle) {
  expect_error([&] { SafetensorsFile::from_bytes(bytes, "bad.safetensors"); },
               ErrorCode::ParseError, "bad.safetensors: " + needle);
}

// One F32 [2] tensor named "x" at [0, 8), with the entry given as JSON text.
Bytes one_tensor(const std::string& entry, std::size_t buffer_bytes = 8) {
  return image("{\"x\":" + entry + "}", std::vector<std::uint8_t>(buffer_bytes, 0x3F));
}

TensorType plain(DType dtype, Shape shape) {
  return TensorType{dtype, std::move(shape), std::nullopt};
}

TensorType weight_type(std::int64_t out, std::int64_t in, DType scale_dtype) {
  return TensorType{DType::f8e4m3, {out, in}, ScaleLayout{kWeightBlock, scale_dtype}};
}

// A valid DeepSeek-style file: two FP8 linear layers, a norm, a router and its bias.
SafetensorsWriter deepseek_like(std::uint64_t seed) {
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  w.add_fp8_weight("model.layers.0.self_attn.q_a_proj",
                   HostTensor::random(weight_type(300, 200, DType::f32), seed));
  w.add_fp8_weight("model.layers.0.mlp.down_proj",
                   HostTensor::random(weight_type(128, 384, DType::ue8m0), seed + 1));
  w.add("model.layers.0.input_layernorm.weight",
        HostTensor::random(plain(DType::bf16, {200}), seed + 2));
  w.add("model.layers.0.mlp.gate.weight",
        HostTensor::random(plain(DType::f32, {8, 200}), seed + 3));
  w.add("model.layers.0.mlp.gate.e_score_correction_bias",
        HostTensor::random(plain(DType::f32, {8}), seed + 4));
  return w;
}

// A small file of the same kind, for tests that damage it thousands of times.
SafetensorsWriter small_layer(std::uint64_t seed) {
  SafetensorsWriter w;
  w.add_fp8_weight("l.q", HostTensor::random(weight_type(20, 30, DType::f32), seed));
  w.add_fp8_weight("l.o", HostTensor::random(weight_type(12, 20, DType::ue8m0), seed + 1));
  w.add("l.norm.weight", HostTensor::random(plain(DType::bf16, {30}), seed + 2));
  w.add("l.gate.weight", HostTensor::random(plain(DType::f32, {4, 30}), seed + 3));
  return w;
}

std::uint64_t header_size(const Bytes& bytes) {
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t(std::to_integer<unsigned>(bytes[i])) << (8 * i);
  return n;
}

// Overwrites float i of tensor `name` in a file image.
void patch_f32(Bytes& bytes, const std::string& name, std::size_t i, float v) {
  const std::uint64_t begin = SafetensorsFile::from_bytes(bytes, "patch").at(name).begin;
  std::memcpy(bytes.data() + 8 + header_size(bytes) + begin + 4 * i, &v, 4);
}

// ---------------------------------------------------------------------------------------
// Round trips and files from elsewhere

TEST(Safetensors, EveryDTypeRoundTripsBitForBit) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  SafetensorsWriter w;
  std::map<std::string, HostTensor> written;
  std::uint64_t s = seed;
  for (DType d : kAllDTypes) {
    for (const Shape& shape : {Shape{3, 5, 7}, Shape{129}, Shape{}, Shape{0, 4}}) {
      const std::string name = std::string(dtype_name(d)) + "." + std::to_string(shape.size()) +
                               "d" + (shape == Shape{0, 4} ? ".empty" : "");
      // A one-element tensor of HostTensor::random can round to zero (a tiny FP8 value,
      // an int near 0); draw again, so that every tensor here holds a non-zero byte.
      HostTensor t = HostTensor::random(plain(d, shape), ++s);
      while (t.type.numel() > 0 && std::count(t.data.begin(), t.data.end(), std::byte{0}) ==
                                       std::ptrdiff_t(t.data.size()))
        t = HostTensor::random(plain(d, shape), ++s);
      written.emplace(name, t);
      w.add(name, t);
    }
  }
  w.set_metadata("format", "pt");
  w.set_metadata("note", "ünïcode and \"quotes\"");
  const fs::path path = fresh_dir("roundtrip") / "all.safetensors";
  w.write(path);

  const auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{
                                 {"format", "pt"}, {"note", "ünïcode and \"quotes\""}}));
  ASSERT_EQ(file.tensors().size(), written.size());
  const auto whole = read_file(path);
  const std::uint64_t header = header_size(whole);
  EXPECT_EQ(header % 8, 0u) << "the header is padded so that the buffer is aligned";
  for (const auto& [name, t] : written) {
    SCOPED_TRACE(name);
    const SafetensorsEntry& e = file.at(name);
    EXPECT_EQ(e.dtype->name, safetensors_dtype_name(t.type.dtype));
    EXPECT_EQ(e.shape, t.type.shape);
    EXPECT_EQ((8 + header + e.begin) % dtype_size(t.type.dtype), 0u)
        << "each tensor is aligned in the file";
    const HostTensor got = file.load(name);
    EXPECT_EQ(got.type, t.type);
    EXPECT_EQ(got.data, t.data);
  }
  EXPECT_EQ(w.serialize(), whole) << "serialize() and write() make the same file";
}

TEST(Safetensors, Fp8WeightsRoundTripWithF32AndUe8m0Scales) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const HostTensor a =
      HostTensor::random(weight_type(300, 200, DType::f32), seed);  // partial blocks
  const HostTensor b = HostTensor::random(weight_type(256, 384, DType::ue8m0), seed + 1);
  SafetensorsWriter w;
  w.add_fp8_weight("layer.a", a);
  w.add_fp8_weight("layer.b", b);
  const auto file = SafetensorsFile::from_bytes(w.serialize(), "fp8.safetensors");

  // The DeepSeek layout on disk.
  EXPECT_EQ(file.at("layer.a.weight").dtype->name, "F8_E4M3");
  EXPECT_EQ(file.at("layer.a.weight").shape, (Shape{300, 200}));
  EXPECT_EQ(file.at("layer.a.weight_scale_inv").dtype->name, "F32");
  EXPECT_EQ(file.at("layer.a.weight_scale_inv").shape, (Shape{3, 2}));
  EXPECT_EQ(file.at("layer.b.weight_scale_inv").dtype->name, "F32");
  EXPECT_EQ(file.at("layer.b.weight_scale_inv").shape, (Shape{2, 3}));

  const HostTensor a2 = load_fp8_weight(file, "layer.a");
  EXPECT_EQ(a2.type, a.type);
  EXPECT_EQ(a2.data, a.data);
  EXPECT_EQ(a2.scales, a.scales);
  const HostTensor b2 = load_fp8_weight(file, "layer.b", DType::ue8m0);
  EXPECT_EQ(b2.type, b.type);
  EXPECT_EQ(b2.data, b.data);
  EXPECT_EQ(b2.scales, b.scales);
  // The same UE8M0 weight read with f32 scales dequantizes to the same values.
  const HostTensor b3 = load_fp8_weight(file, "layer.b", DType::f32);
  EXPECT_EQ(b3.values(), b.values());
}

TEST(Safetensors, DeepSeekLayerLoadsItsPlainTensorsInTheirOwnDType) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const auto file =
      SafetensorsFile::from_bytes(deepseek_like(seed).serialize(), "layer.safetensors");
  EXPECT_EQ(file.load("model.layers.0.input_layernorm.weight").type, plain(DType::bf16, {200}));
  EXPECT_EQ(file.load("model.layers.0.mlp.gate.weight").type, plain(DType::f32, {8, 200}));
  EXPECT_EQ(file.load("model.layers.0.mlp.gate.e_score_correction_bias").type,
            plain(DType::f32, {8}));
  EXPECT_EQ(load_fp8_weight(file, "model.layers.0.self_attn.q_a_proj").type,
            weight_type(300, 200, DType::f32));
  // A plain load of an FP8 weight is the unscaled bytes.
  EXPECT_EQ(file.load("model.layers.0.mlp.down_proj.weight").type,
            plain(DType::f8e4m3, {128, 384}));
}

TEST(Safetensors, HandWrittenFileReadsCorrectly) {
  // Entries in the JSON deliberately not in buffer order (the format allows any order),
  // the header not padded, so the tensors sit unaligned in the file.
  const std::string header =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"lin.weight\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,3],\"data_offsets\":[16,22]},"
      "\"norm\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
      "\"lin.weight_scale_inv\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[8,12]}}";
  const std::vector<std::uint8_t> buffer = {
      0x00, 0x00, 0xC0, 0x3F, 0x00, 0x00, 0x00, 0xC0,  // a: 1.5, -2.0
      0x00, 0x00, 0x00, 0x3F,                          // lin.weight_scale_inv: 0.5
      0x00, 0xC0, 0x00, 0x3F,                          // norm: bf16 -2.0, 0.5
      0x38, 0x40, 0xB8, 0x30, 0x7E, 0xFE,              // lin.weight: e4m3 1, 2, -1, 0.5, 448, -448
  };
  const auto file = SafetensorsFile::from_bytes(image(header, buffer), "hand.safetensors");
  EXPECT_EQ(file.metadata().at("format"), "pt");
  ASSERT_EQ(file.tensors().size(), 4u);
  EXPECT_EQ(file.tensors()[0].name, "a");  // buffer order
  EXPECT_EQ(file.tensors()[3].name, "lin.weight");
  EXPECT_EQ(file.load("a").values(), (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(file.load("norm").values(), (std::vector<double>{-2.0, 0.5}));
  const HostTensor w = load_fp8_weight(file, "lin");
  EXPECT_EQ(w.type, weight_type(2, 3, DType::f32));
  EXPECT_EQ(w.values(), (std::vector<double>{0.5, 1, -0.5, 0.25, 224, -224}));
  EXPECT_EQ(load_fp8_weight(file, "lin", DType::ue8m0).scales, (Bytes{std::byte{126}}));  // 2^-1
  EXPECT_EQ(file.bytes("lin.weight").size(), 6u);
}

TEST(Safetensors, ReadsTheReferenceImplementationsDocumentationExample) {
  // The file of the Rust crate's SafeTensors::deserialize doc example: header size 0x3C,
  // no padding; its buffer, zeros there, holds values here.
  const std::string header = R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})";
  ASSERT_EQ(header.size(), 0x3Cu);
  const auto file = SafetensorsFile::from_bytes(
      image(header, {0x01, 0, 0, 0, 0xFE, 0xFF, 0xFF, 0xFF, 0x03, 0, 0, 0, 0x70, 0x11, 0x01, 0}),
      "doc");
  EXPECT_EQ(file.load("test").type, plain(DType::i32, {2, 2}));
  EXPECT_EQ(file.load("test").values(), (std::vector<double>{1, -2, 3, 70000}));
}

TEST(Safetensors, ReadsAFileWrittenByPythonSafetensors) {
  if (std::system("python3 -c 'import numpy, safetensors.numpy' >/dev/null 2>&1") != 0)
    GTEST_SKIP()
        << "Python's safetensors package (with numpy) is not installed; nothing to compare against";
  const std::uint64_t seed = fresh_seed() % 1000000;
  SCOPED_TRACE("seed " + std::to_string(seed));
  const fs::path dir = fresh_dir("python");
  const fs::path script = dir / "make.py";
  {
    std::ofstream py(script);
    py << R"(import sys
import numpy as np
from safetensors.numpy import save_file
out, seed = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(seed)
t = {
    "w.f32": rng.standard_normal((3, 130)).astype(np.float32),
    "w.f16": rng.standard_normal((5,)).astype(np.float16),
    "w.i32": rng.integers(-1000, 1000, (2, 3), dtype=np.int32),
    "w.u8": rng.integers(1, 255, (7,), dtype=np.uint8),
    "w.scalar": np.array(rng.standard_normal(), dtype=np.float32),
}
save_file(t, out + "/np.safetensors", metadata={"made_by": "numpy"})
for k, v in t.items():
    v.astype(v.dtype.newbyteorder("<")).tofile(out + "/" + k + ".raw")
try:
    import torch
    from safetensors.torch import save_file as save_torch
except ImportError:
    sys.exit(0)
if not hasattr(torch, "float8_e4m3fn"):
    sys.exit(0)
g = torch.Generator().manual_seed(seed)
w = (torch.rand((200, 300), generator=g) * 2 - 1) * 400
s = torch.rand((2, 3), generator=g) + 0.5
save_torch({"lin.weight": w.to(torch.float8_e4m3fn), "lin.weight_scale_inv": s,
            "norm.weight": torch.rand((300,), generator=g).to(torch.bfloat16)}, out + "/pt.safetensors")
w.to(torch.float8_e4m3fn).view(torch.uint8).numpy().tofile(out + "/lin.weight.raw")
s.numpy().tofile(out + "/lin.weight_scale_inv.raw")
)";
  }
  const std::string cmd =
      "python3 " + script.string() + " " + dir.string() + " " + std::to_string(seed);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  const auto file = SafetensorsFile::open(dir / "np.safetensors");
  EXPECT_EQ(file.metadata().at("made_by"), "numpy");
  for (const char* name : {"w.f32", "w.f16", "w.i32", "w.u8", "w.scalar"}) {
    SCOPED_TRACE(name);
    const Bytes raw = read_file(dir / (std::string(name) + ".raw"));
    const auto got = file.bytes(name);
    EXPECT_EQ(Bytes(got.begin(), got.end()), raw);
  }
  EXPECT_EQ(file.load("w.f32").type, plain(DType::f32, {3, 130}));
  EXPECT_EQ(file.load("w.scalar").type, plain(DType::f32, {}));
  EXPECT_EQ(file.load("w.f16").data, read_file(dir / "w.f16.raw"));
  EXPECT_EQ(file.load("w.i32").data, read_file(dir / "w.i32.raw"));
  expect_error([&] { file.load("w.u8"); }, ErrorCode::Unsupported, "tensor 'w.u8' is U8");

  if (!fs::exists(dir / "pt.safetensors")) return;  // torch absent: the FP8 half needs it
  const auto pt = SafetensorsFile::open(dir / "pt.safetensors");
  const HostTensor w = load_fp8_weight(pt, "lin");
  EXPECT_EQ(w.type, weight_type(200, 300, DType::f32));
  EXPECT_EQ(w.data, read_file(dir / "lin.weight.raw"));
  EXPECT_EQ(w.scales, read_file(dir / "lin.weight_scale_inv.raw"));
  EXPECT_EQ(pt.load("norm.weight").type, plain(DType::bf16, {300}));
}

TEST(Safetensors, EmptyFileAndPaddedHeaderAreValid) {
  const auto empty = SafetensorsFile::from_bytes(image("{}", {}), "empty");
  EXPECT_TRUE(empty.tensors().empty());
  const auto padded = SafetensorsFile::from_bytes(image("{}      ", {}), "padded");
  EXPECT_TRUE(padded.tensors().empty());
  // A zero-size tensor may sit anywhere on the chain, even beside another at its offset.
  const auto zero = SafetensorsFile::from_bytes(
      image(
          R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
          {0, 0, 0x80, 0x3F}),
      "zero");
  EXPECT_EQ(zero.load("e").data.size(), 0u);
  EXPECT_EQ(zero.load("x").values(), (std::vector<double>{1.0}));
}

// ---------------------------------------------------------------------------------------
// The format's rules, one test each

TEST(SafetensorsRejects, FileShorterThanTheSizeField) {
  expect_rejected(Bytes(5, std::byte{1}), "5 bytes is too short for the 8-byte header size");
  expect_rejected(Bytes{}, "0 bytes is too short");
}

TEST(SafetensorsRejects, HeaderSizePastTheEndOfTheFile) {
  expect_rejected(size_field_only(100, 20),
                  "header size 100 runs past the end of the file (28 bytes)");
}

TEST(SafetensorsRejects, HeaderSizeOverTheFormatsLimit) {
  expect_rejected(size_field_only(100'000'001, 20),
                  "header size 100000001 exceeds the format's limit of 100000000 bytes");
  expect_rejected(size_field_only(std::numeric_limits<std::uint64_t>::max(), 20),
                  "header size 18446744073709551615 exceeds the format's limit");
}

TEST(SafetensorsRejects, TruncatedBuffer) {
  Bytes b = image(R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})",
                  std::vector<std::uint8_t>(16, 0x40));
  b.pop_back();
  expect_rejected(b,
                  "truncated: tensor 'x' ends at byte 16 of the buffer, but the file holds 15 "
                  "bytes after the header");
}

TEST(SafetensorsRejects, HeaderThatIsNotJson) {
  expect_rejected(image(R"({"x": })", {}), "header is not valid JSON: ");
  expect_rejected(image("{\"x\xff\":{}}", {}), "header is not valid JSON: ");  // not UTF-8
}

TEST(SafetensorsRejects, HeaderThatIsNotAnObject) {
  expect_rejected(image("[1, 2]", {}), "header is not a JSON object (it must begin with '{')");
  expect_rejected(image(" {}", {}), "header is not a JSON object (it must begin with '{')");
  expect_rejected(image("", {}), "header is not a JSON object");
}

TEST(SafetensorsRejects, PaddingOtherThanSpaces) {
  expect_rejected(image("{}\n", {}),
                  "header has bytes other than spaces (0x20) after its JSON object");
  expect_rejected(image("{}\t ", {}),
                  "header has bytes other than spaces (0x20) after its JSON object");
}

TEST(SafetensorsRejects, EntryMissingDtype) {
  expect_rejected(one_tensor(R"({"shape":[2],"data_offsets":[0,8]})"),
                  "tensor 'x': missing \"dtype\"");
}

TEST(SafetensorsRejects, EntryMissingShape) {
  expect_rejected(one_tensor(R"({"dtype":"F32","data_offsets":[0,8]})"),
                  "tensor 'x': missing \"shape\"");
}

TEST(SafetensorsRejects, EntryMissingDataOffsets) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[2]})"),
                  "tensor 'x': missing \"data_offsets\"");
}

TEST(SafetensorsRejects, EntryWithAnUnknownKey) {
  expect_rejected(
      one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8],"stride":[1]})"),
      "tensor 'x': unknown key 'stride' (an entry holds dtype, shape and data_offsets)");
}

TEST(SafetensorsRejects, EntryWithWrongJsonTypes) {
  expect_rejected(one_tensor(R"([1, 2])"), "tensor 'x': entry must be an object, not array");
  expect_rejected(one_tensor(R"({"dtype":32,"shape":[2],"data_offsets":[0,8]})"),
                  "tensor 'x': dtype must be a string, not integer 32");
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":"2","data_offsets":[0,8]})"),
                  "tensor 'x': shape must be an array, not string");
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":{"begin":0}})"),
                  "tensor 'x': data_offsets must be [begin, end], two non-negative integers, not "
                  "{\"begin\":0}");
  expect_rejected(
      one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0]})"),
      "tensor 'x': data_offsets must be [begin, end], two non-negative integers, not [0]");
  expect_rejected(
      one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8.0]})"),
      "tensor 'x': data_offsets must be [begin, end], two non-negative integers, not [0,8.0]");
  expect_rejected(
      one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})"),
      "tensor 'x': data_offsets must be [begin, end], two non-negative integers, not [-8,0]");
}

TEST(SafetensorsRejects, UnknownDType) {
  expect_rejected(one_tensor(R"({"dtype":"F8_E4M3FN","shape":[8],"data_offsets":[0,8]})"),
                  "tensor 'x': unknown dtype 'F8_E4M3FN' (the format's dtypes: BOOL, F4, ");
  expect_rejected(one_tensor(R"({"dtype":"f32","shape":[2],"data_offsets":[0,8]})"),
                  "tensor 'x': unknown dtype 'f32'");
}

TEST(SafetensorsRejects, NegativeDimension) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"),
                  "tensor 'x': shape[0] is integer -2, not a non-negative integer");
}

TEST(SafetensorsRejects, NonIntegerDimension) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[1,2.0],"data_offsets":[0,8]})"),
                  "tensor 'x': shape[1] is number 2.0, not a non-negative integer");
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})"),
                  "tensor 'x': shape[0] is string, not a non-negative integer");
  expect_rejected(
      one_tensor(R"({"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]})"),
      "tensor 'x': shape[0] is number 1e+20, not a non-negative integer");
  expect_rejected(
      one_tensor(R"({"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]})"),
      "tensor 'x': shape[0] is integer 9223372036854775808, not a non-negative integer");
}

TEST(SafetensorsRejects, ShapeWithTooManyElements) {
  expect_rejected(
      one_tensor(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]})"),
      "tensor 'x': shape [4294967296, 4294967296] has too many elements");
  expect_rejected(
      one_tensor(R"({"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]})"),
      "tensor 'x': shape [4611686018427387904] has too many elements");  // fits int64, not in bits
}

TEST(SafetensorsRejects, OffsetsSpanningOtherThanTheTensorsSize) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,8]})"),
                  "tensor 'x': data_offsets [0, 8] span 8 bytes, but F32[2, 3] is 24 bytes");
}

TEST(SafetensorsRejects, SubByteTensorThatIsNotAWholeNumberOfBytes) {
  expect_rejected(one_tensor(R"({"dtype":"F4","shape":[3],"data_offsets":[0,2]})", 2),
                  "tensor 'x': F4[3] is 12 bits, not a whole number of bytes");
}

TEST(SafetensorsRejects, OffsetsThatEndBeforeTheyBegin) {
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[8,0]})"),
                  "tensor 'x': data_offsets [8, 0] end before they begin");
}

TEST(SafetensorsRejects, OverlappingTensors) {
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                        std::vector<std::uint8_t>(12, 1)),
                  "tensors 'a' (data_offsets [0, 8]) and 'b' (data_offsets [4, 12]) overlap");
  // Two names for the same bytes overlap too.
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                        std::vector<std::uint8_t>(8, 1)),
                  "tensors 'a' (data_offsets [0, 8]) and 'b' (data_offsets [0, 8]) overlap");
}

TEST(SafetensorsRejects, HoleBetweenTensors) {
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})",
                        std::vector<std::uint8_t>(16, 1)),
                  "bytes [8, 12) of the buffer belong to no tensor (a hole before 'b'); tensors "
                  "must tile the buffer");
  expect_rejected(one_tensor(R"({"dtype":"F32","shape":[1],"data_offsets":[4,8]})"),
                  "bytes [0, 4) of the buffer belong to no tensor (a hole before 'x')");
}

TEST(SafetensorsRejects, BufferNotCoveredToTheEnd) {
  expect_rejected(
      one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 12),
      "the last 4 bytes of the buffer belong to no tensor (the tensors end at byte 8 of 12)");
  expect_rejected(image("{}", {1, 2}), "the last 2 bytes of the buffer belong to no tensor");
}

TEST(SafetensorsRejects, DuplicateTensorNames) {
  expect_rejected(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                        std::vector<std::uint8_t>(8, 1)),
                  "header has the key 'a' twice (tensor names must be unique)");
}

TEST(SafetensorsRejects, DuplicateKeysInsideAnEntryOrTheMetadata) {
  expect_rejected(one_tensor(R"({"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]})"),
                  "header has the key 'dtype' twice in 'x'");
  expect_rejected(image(R"({"__metadata__":{"k":"1","k":"2"}})", {}),
                  "header has the key 'k' twice in '__metadata__'");
}

TEST(SafetensorsRejects, MetadataThatIsNotStringToString) {
  expect_rejected(image(R"({"__metadata__":{"k":1}})", {}),
                  "__metadata__ 'k' must be a string, not integer 1");
  expect_rejected(image(R"({"__metadata__":["k"]})", {}),
                  "__metadata__ must be an object of strings, not array");
}

TEST(SafetensorsRejects, HeaderNestedDeeperThanAnyValidOne) {
  const std::string deep = "{\"x\":{\"dtype\":\"F32\",\"shape\":" + std::string(100000, '[') + "}}";
  expect_rejected(image(deep, {}), "header nests JSON deeper than 64 levels");
}

TEST(SafetensorsRejects, FileThatCannotBeOpened) {
  const fs::path dir = fresh_dir("open");
  expect_error([&] { SafetensorsFile::open(dir / "absent.safetensors"); }, ErrorCode::IoError,
               (dir / "absent.safetensors").string() + ": cannot open: ");
  expect_error([&] { SafetensorsFile::open(dir); }, ErrorCode::IoError,
               dir.string() + ": not a regular file");
}

TEST(SafetensorsRejects, MalformedFileOnDiskNamingItsPath) {
  const fs::path path = fresh_dir("disk") / "short.safetensors";
  write_file(path, Bytes(3, std::byte{0}));
  expect_error([&] { SafetensorsFile::open(path); }, ErrorCode::ParseError,
               path.string() + ": 3 bytes is too short for the 8-byte header size");
}

// ---------------------------------------------------------------------------------------
// Names and dtypes asked for

TEST(SafetensorsRejects, NameNotPresentListingTheClosestNames) {
  const auto file =
      SafetensorsFile::from_bytes(deepseek_like(fresh_seed()).serialize(), "layer.safetensors");
  expect_error(
      [&] { file.load("model.layers.0.mlp.gate.wieght"); }, ErrorCode::InvalidArgument,
      "layer.safetensors: no tensor 'model.layers.0.mlp.gate.wieght'; the closest names are "
      "'model.layers.0.mlp.gate.weight', ");
  expect_error([&] { load_fp8_weight(file, "model.layers.0.mlp.down_prj"); },
               ErrorCode::InvalidArgument,
               "no tensor 'model.layers.0.mlp.down_prj.weight'; the closest names are "
               "'model.layers.0.mlp.down_proj.weight', ");
  EXPECT_EQ(file.find("nothing"), nullptr);
  const auto empty = SafetensorsFile::from_bytes(image("{}", {}), "empty.safetensors");
  expect_error([&] { empty.bytes("w"); }, ErrorCode::InvalidArgument,
               "empty.safetensors: no tensor 'w'; the file holds no tensors");
}

TEST(SafetensorsRejects, LoadingADTypeAnychipHasNot) {
  const auto file = SafetensorsFile::from_bytes(
      image(R"({"ids":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})", {7, 8, 9}),
      "u8.safetensors");
  expect_error([&] { file.load("ids"); }, ErrorCode::Unsupported,
               "u8.safetensors: tensor 'ids' is U8, which anychip has no dtype for (it loads "
               "F8_E5M2, F8_E4M3, "
               "F8_E8M0, F16, BF16, I32, F32)");
  EXPECT_EQ(file.bytes("ids")[2], std::byte{9});
}

// ---------------------------------------------------------------------------------------
// The DeepSeek FP8 layout

TEST(SafetensorsRejects, Fp8WeightWithoutItsScale) {
  const auto file = SafetensorsFile::from_bytes(
      image(R"({"l.weight":{"dtype":"F8_E4M3","shape":[2,2],"data_offsets":[0,4]}})",
            {0x38, 0x38, 0x38, 0x38}),
      "noscale.safetensors");
  expect_error(
      [&] { load_fp8_weight(file, "l"); }, ErrorCode::ParseError,
      "noscale.safetensors: FP8 weight 'l.weight' has no scale tensor 'l.weight_scale_inv'");
}

TEST(SafetensorsRejects, Fp8ScaleOfTheWrongShape) {
  SafetensorsWriter writer;
  writer.add("l.weight", HostTensor(plain(DType::f8e4m3, {300, 200})));
  writer.add("l.weight_scale_inv", HostTensor::random(plain(DType::f32, {2, 3}), fresh_seed()));
  const auto file = SafetensorsFile::from_bytes(writer.serialize(), "shape.safetensors");
  expect_error([&] { load_fp8_weight(file, "l"); }, ErrorCode::ParseError,
               "shape.safetensors: tensor 'l.weight_scale_inv' has shape [2, 3]; weight 'l.weight' "
               "[300, 200] "
               "needs [3, 2] (one scale per 128x128 block)");
}

TEST(SafetensorsRejects, Fp8WeightOfTheWrongDTypeOrRank) {
  const std::string scale =
      R"("l.weight_scale_inv":{"dtype":"F32","shape":[1,1],"data_offsets":[8,12]})";
  const auto bf16 = SafetensorsFile::from_bytes(
      image("{\"l.weight\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]}," + scale +
                "}",
            std::vector<std::uint8_t>(12, 0x3F)),
      "bf16.safetensors");
  expect_error([&] { load_fp8_weight(bf16, "l"); }, ErrorCode::ParseError,
               "bf16.safetensors: tensor 'l.weight' is BF16; an FP8 weight must be F8_E4M3");
  const auto rank3 = SafetensorsFile::from_bytes(
      image("{\"l.weight\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,2,2],\"data_offsets\":[0,8]}," +
                scale + "}",
            std::vector<std::uint8_t>(12, 0x3F)),
      "rank3.safetensors");
  expect_error([&] { load_fp8_weight(rank3, "l"); }, ErrorCode::ParseError,
               "rank3.safetensors: tensor 'l.weight' has shape [2, 2, 2]; an FP8 weight must be "
               "2-D [out, in]");
}

TEST(SafetensorsRejects, Fp8ScaleOfTheWrongDType) {
  const auto file = SafetensorsFile::from_bytes(
      image(R"({"l.weight":{"dtype":"F8_E4M3","shape":[2,2],"data_offsets":[0,4]},)"
            R"("l.weight_scale_inv":{"dtype":"BF16","shape":[1,1],"data_offsets":[4,6]}})",
            {0x38, 0x38, 0x38, 0x38, 0x80, 0x3F}),
      "scaledtype.safetensors");
  expect_error(
      [&] { load_fp8_weight(file, "l"); }, ErrorCode::ParseError,
      "scaledtype.safetensors: tensor 'l.weight_scale_inv' is BF16; a weight scale must be F32");
}

// NaN, infinity, zero and negative scales are rejected: the recipe never makes them, and
// each would silently corrupt its block (see safetensors.hpp).
TEST(SafetensorsRejects, Fp8ScalesThatAreNotFiniteAndPositive) {
  const Bytes good = [] {
    SafetensorsWriter w;
    w.add_fp8_weight("l", HostTensor::random(weight_type(300, 200, DType::f32), fresh_seed()));
    return w.serialize();
  }();
  ASSERT_NO_THROW(load_fp8_weight(SafetensorsFile::from_bytes(good, "good"), "l"));
  const std::pair<float, std::string> cases[] = {
      {std::numeric_limits<float>::quiet_NaN(), "nan"},
      {std::numeric_limits<float>::infinity(), "inf"},
      {-std::numeric_limits<float>::infinity(), "-inf"},
      {0.0f, "0"},
      {-0.0f, "-0"},
      {-0.25f, "-0.25"},
  };
  for (const auto& [value, text] : cases) {
    SCOPED_TRACE(text);
    Bytes bad = good;
    patch_f32(bad, "l.weight_scale_inv", 3, value);  // block [1, 1] of [3, 2]
    const auto file = SafetensorsFile::from_bytes(bad, "scale.safetensors");
    expect_error([&] { load_fp8_weight(file, "l"); }, ErrorCode::ParseError,
                 "scale.safetensors: tensor 'l.weight_scale_inv': block [1, 1] has scale " + text +
                     "; a weight scale must be finite and positive");
  }
}

TEST(SafetensorsRejects, Ue8m0ScalesThatAreNotExactPowersOfTwo) {
  Bytes bytes = [] {
    SafetensorsWriter w;
    w.add_fp8_weight("l", HostTensor::random(weight_type(300, 200, DType::ue8m0), fresh_seed()));
    return w.serialize();
  }();
  ASSERT_NO_THROW(load_fp8_weight(SafetensorsFile::from_bytes(bytes, "pow2"), "l", DType::ue8m0));
  patch_f32(bytes, "l.weight_scale_inv", 4, 0.3f);  // block [2, 0]
  patch_f32(bytes, "l.weight_scale_inv", 5, 0.7f);  // a later block: the first one is named
  const auto file = SafetensorsFile::from_bytes(bytes, "ue8m0.safetensors");
  expect_error([&] { load_fp8_weight(file, "l", DType::ue8m0); }, ErrorCode::ParseError,
               "ue8m0.safetensors: tensor 'l.weight_scale_inv': block [2, 0] has scale "
               "0.300000012, not a power "
               "of two in UE8M0's range (2^-127..2^127); load it with f32 scales");
  EXPECT_NO_THROW(load_fp8_weight(file, "l", DType::f32));  // f32 keeps any positive scale

  patch_f32(bytes, "l.weight_scale_inv", 4,
            std::ldexp(1.0f, -128));  // a power of two below UE8M0's range
  patch_f32(bytes, "l.weight_scale_inv", 5, 0.5f);
  expect_error(
      [&] { load_fp8_weight(SafetensorsFile::from_bytes(bytes, "tiny"), "l", DType::ue8m0); },
      ErrorCode::ParseError,
      "block [2, 0] has scale 2.93873588e-39, not a power of two in UE8M0's range");
  patch_f32(bytes, "l.weight_scale_inv", 4, std::ldexp(1.0f, -127));  // the smallest UE8M0 value
  EXPECT_EQ(
      load_fp8_weight(SafetensorsFile::from_bytes(bytes, "edge"), "l", DType::ue8m0).scales[4],
      std::byte{0});
}

TEST(SafetensorsRejects, BadScaleDTypeArgument) {
  const auto file = SafetensorsFile::from_bytes(deepseek_like(fresh_seed()).serialize(), "layer");
  expect_error([&] { load_fp8_weight(file, "model.layers.0.mlp.down_proj", DType::bf16); },
               ErrorCode::InvalidArgument,
               "load_fp8_weight: scale_dtype must be f32 or ue8m0, not bf16");
}

// ---------------------------------------------------------------------------------------
// The writer

TEST(SafetensorsWriter, RejectsWhatWouldMakeABadFile) {
  const std::uint64_t seed = fresh_seed();
  SafetensorsWriter w;
  w.add("a", HostTensor::random(plain(DType::f32, {4}), seed));
  expect_error([&] { w.add("a", HostTensor::random(plain(DType::f32, {4}), seed)); },
               ErrorCode::InvalidArgument, "safetensors writer: the name 'a' is already taken");
  expect_error([&] { w.add("__metadata__", HostTensor::random(plain(DType::f32, {4}), seed)); },
               ErrorCode::InvalidArgument, "the name '__metadata__' is reserved");
  expect_error([&] { w.add("", HostTensor::random(plain(DType::f32, {4}), seed)); },
               ErrorCode::InvalidArgument, "the name '' is reserved");
  expect_error([&] { w.add("s", HostTensor::random(weight_type(128, 128, DType::f32), seed)); },
               ErrorCode::InvalidArgument,
               "tensor 's' is block-scaled (f8e4m3[128, 128] scaled<128x128, f32>); add it with "
               "add_fp8_weight");
  HostTensor short_data = HostTensor::random(plain(DType::bf16, {4}), seed);
  short_data.data.pop_back();
  expect_error([&] { w.add("b", short_data); }, ErrorCode::InvalidArgument,
               "tensor 'b' holds 7 bytes, but bf16[4] is 8");
  expect_error(
      [&] {
        w.add_fp8_weight(
            "act", HostTensor::random(
                       {DType::f8e4m3, {4, 128}, ScaleLayout{kActivationBlock, DType::f32}}, seed));
      },
      ErrorCode::InvalidArgument,
      "weight 'act.weight' is f8e4m3[4, 128] scaled<1x128, f32>; the DeepSeek layout holds");

  w.add("l.weight_scale_inv", HostTensor::random(plain(DType::f32, {1, 1}), seed));
  expect_error(
      [&] { w.add_fp8_weight("l", HostTensor::random(weight_type(128, 128, DType::f32), seed)); },
      ErrorCode::InvalidArgument, "the name 'l.weight_scale_inv' is already taken");
  EXPECT_EQ(SafetensorsFile::from_bytes(w.serialize(), "w").find("l.weight"), nullptr)
      << "a rejected pair adds neither tensor";

  HostTensor nan_scale = HostTensor::random(weight_type(300, 200, DType::f32), seed);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(nan_scale.scales.data() + 4 * 1, &nan, 4);
  expect_error(
      [&] { w.add_fp8_weight("n", nan_scale); }, ErrorCode::InvalidArgument,
      "weight 'n.weight': block [0, 1] has scale nan; a weight scale must be finite and positive");
}

TEST(SafetensorsWriter, ReplacesAnExistingFileAndLeavesNoTemporaryFile) {
  const fs::path dir = fresh_dir("replace");
  const fs::path path = dir / "model.safetensors";
  write_file(path, Bytes(100, std::byte{'x'}));
  const SafetensorsWriter w = deepseek_like(fresh_seed());
  w.write(path);
  EXPECT_EQ(read_file(path), w.serialize());
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(SafetensorsWriter, FailedWriteLeavesNothingBehind) {
  const fs::path dir = fresh_dir("fail");
  expect_error([&] { deepseek_like(1).write(dir / "missing" / "model.safetensors"); },
               ErrorCode::IoError,
               (dir / "missing" / "model.safetensors").string() + ": cannot create ");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 0);
}

// Runs writer.write(path) in a child process whose file size limit (RLIMIT_FSIZE) stops
// the write halfway through the new file: with SIGXFSZ at its default the child dies
// there, as in a crash; with it ignored, write() fails with EFBIG. Returns the status.
int write_cut_short(const SafetensorsWriter& writer, const fs::path& path, bool die) {
  const std::size_t half = writer.serialize().size() / 2;
  const pid_t child = ::fork();
  if (child == 0) {
    const rlimit no_core{0, 0}, limit{half, half};
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::signal(SIGXFSZ, die ? SIG_DFL : SIG_IGN);
    ::setrlimit(RLIMIT_FSIZE, &limit);
    try {
      writer.write(path);
    } catch (const Error& e) {
      const bool expected = e.code() == ErrorCode::IoError &&
                            std::string(e.what()).find(": cannot write: ") != std::string::npos;
      ::_exit(expected ? 3 : 4);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return status;
}

TEST(SafetensorsWriter, CrashMidWriteLeavesThePreviousFileWhole) {
  const fs::path dir = fresh_dir("crash");
  const fs::path path = dir / "model.safetensors";
  const SafetensorsWriter old_file = small_layer(fresh_seed());
  old_file.write(path);
  const int status = write_cut_short(deepseek_like(fresh_seed()), path, /*die=*/true);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ) << "status " << status;
  EXPECT_EQ(read_file(path), old_file.serialize());
  // The crash leaves its half-written temporary file, under another name.
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path() != path) {
      EXPECT_NE(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
    }
  }
}

TEST(SafetensorsWriter, FailedMidWriteKeepsThePreviousFileAndRemovesItsTemporaryFile) {
  const fs::path dir = fresh_dir("efbig");
  const fs::path path = dir / "model.safetensors";
  const SafetensorsWriter old_file = small_layer(fresh_seed());
  old_file.write(path);
  const int status = write_cut_short(deepseek_like(fresh_seed()), path, /*die=*/false);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 3) << "3: IoError 'cannot write', 4: another error, 0: none";
  EXPECT_EQ(read_file(path), old_file.serialize());
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

// ---------------------------------------------------------------------------------------
// Damaged bytes: an Error or a correct load, never a crash (the ASan build checks reads)

// Everything a caller might do with an opened file; any failure must be an anychip::Error.
void use_everything(const SafetensorsFile& file) {
  for (const auto& e : file.tensors()) {
    const auto b = file.bytes(e.name);
    volatile std::byte sink{};
    for (std::byte x : b) sink = sink ^ x;  // touches every byte, so ASan sees any bad read
    try {
      const HostTensor h = file.load(e.name);
      EXPECT_EQ(h.data.size(), h.type.data_bytes());
    } catch (const Error&) {
    }
    const std::string suffix = ".weight";
    if (e.name.size() > suffix.size() && e.name.ends_with(suffix)) {
      for (DType sd : {DType::f32, DType::ue8m0}) {
        try {
          const HostTensor w =
              load_fp8_weight(file, e.name.substr(0, e.name.size() - suffix.size()), sd);
          EXPECT_EQ(w.scales.size(), w.type.scale_bytes());
        } catch (const Error&) {
        }
      }
    }
  }
}

TEST(SafetensorsFuzz, EveryTruncationIsRejected) {
  const Bytes good = small_layer(fresh_seed()).serialize();
  use_everything(SafetensorsFile::from_bytes(good, "good"));
  for (std::size_t n = 0; n < good.size(); ++n) {
    try {
      SafetensorsFile::from_bytes(
          Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)), "cut");
      ADD_FAILURE() << "a file cut to " << n << " of " << good.size() << " bytes opened";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::ParseError) << e.what();
    }
  }
}

// The larger file at sampled lengths, from disk, through the mapping.
TEST(SafetensorsFuzz, TruncatedFilesOnDiskAreRejected) {
  const Bytes good = deepseek_like(fresh_seed()).serialize();
  const fs::path path = fresh_dir("cut") / "cut.safetensors";
  std::mt19937_64 rng(fresh_seed());
  for (int i = 0; i < 64; ++i) {
    const std::size_t n = std::uniform_int_distribution<std::size_t>(0, good.size() - 1)(rng);
    write_file(path, Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)));
    expect_error([&] { SafetensorsFile::open(path); }, ErrorCode::ParseError, path.string() + ": ");
  }
  write_file(path, good);
  use_everything(SafetensorsFile::open(path));
}

TEST(SafetensorsFuzz, FlippedHeaderBytesGiveAnErrorOrAConsistentFile) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const Bytes good = small_layer(seed).serialize();
  const std::uint64_t header = header_size(good);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> where(0, 8 + header - 1);
  std::uniform_int_distribution<int> flips(1, 3), bits(1, 255);
  int opened = 0;
  for (int round = 0; round < 4000; ++round) {
    Bytes bad = good;
    for (int f = flips(rng); f > 0; --f) bad[where(rng)] ^= std::byte(bits(rng));
    try {
      const auto file = SafetensorsFile::from_bytes(bad, "flipped");
      ++opened;
      use_everything(file);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::ParseError) << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("flipped: ", 0), 0u) << e.what();
    }
  }
  RecordProperty("opened", opened);
}

TEST(SafetensorsFuzz, FlippedBufferBytesStillLoad) {
  const std::uint64_t seed = fresh_seed();
  const Bytes good = deepseek_like(seed).serialize();
  const std::uint64_t header = header_size(good);
  std::mt19937_64 rng(seed);
  Bytes bad = good;
  for (int i = 0; i < 200; ++i)
    bad[std::uniform_int_distribution<std::size_t>(8 + header, good.size() - 1)(rng)] ^=
        std::byte{0x5A};
  const auto file =
      SafetensorsFile::from_bytes(bad, "data-flipped");  // the format does not check values
  EXPECT_EQ(file.tensors().size(), 7u);
  use_everything(file);
}

// ---------------------------------------------------------------------------------------
// Sharded checkpoints (model.safetensors.index.json + shards)

const std::string kIndex(kSafetensorsIndexName);

// An FP8 weight as the two plain tensors of the DeepSeek layout, so that a test can put
// them in different shards.
std::pair<HostTensor, HostTensor> weight_and_scale(const HostTensor& w) {
  SafetensorsWriter one;
  one.add_fp8_weight("w", w);
  const auto file = SafetensorsFile::from_bytes(one.serialize(), "split");
  return {file.load("w.weight"), file.load("w.weight_scale_inv")};
}

struct ThreeShards {
  HostTensor a, b, norm, gate;
};

// Three shards: a's weight in the first and its scale in the second, b's weight in the
// second and its scale in the third, as real checkpoints split layers across files.
ThreeShards write_three_shards(const fs::path& dir, std::uint64_t seed) {
  ThreeShards t{HostTensor::random(weight_type(300, 200, DType::f32), seed),
                HostTensor::random(weight_type(256, 384, DType::ue8m0), seed + 1),
                HostTensor::random(plain(DType::bf16, {200}), seed + 2),
                HostTensor::random(plain(DType::f32, {8, 200}), seed + 3)};
  auto [aw, as] = weight_and_scale(t.a);
  auto [bw, bs] = weight_and_scale(t.b);
  SafetensorsShardedWriter w(3);
  w.shard(0).add("layer.a.weight", aw);
  w.shard(0).add("layer.norm.weight", t.norm);
  w.shard(1).add("layer.a.weight_scale_inv", as);
  w.shard(1).add("layer.b.weight", bw);
  w.shard(2).add("layer.b.weight_scale_inv", bs);
  w.shard(2).add("layer.gate.weight", t.gate);
  w.write(dir);
  return t;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(SafetensorsCheckpoint, RoundTripsThroughThreeShardsWithWeightsAndScalesApart) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const fs::path dir = fresh_dir("sharded");
  const ThreeShards t = write_three_shards(dir, seed);

  // The files and the index as Hugging Face lays them out.
  for (const char* f : {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                        "model-00003-of-00003.safetensors"})
    EXPECT_TRUE(fs::is_regular_file(dir / f)) << f;
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 4u) << "a temporary file was left behind";
  const std::string index = read_text(dir / kIndex);
  EXPECT_NE(index.find("\"layer.a.weight_scale_inv\": \"model-00002-of-00003.safetensors\""),
            std::string::npos)
      << index;
  const std::size_t total = t.a.data.size() + 4 * static_cast<std::size_t>(t.a.type.scale_count()) +
                            t.b.data.size() + 4 * static_cast<std::size_t>(t.b.type.scale_count()) +
                            t.norm.data.size() + t.gate.data.size();
  EXPECT_NE(index.find("\"total_size\": " + std::to_string(total)), std::string::npos) << index;

  const auto ckpt = SafetensorsCheckpoint::open(dir);
  EXPECT_EQ(ckpt.name(), (dir / kIndex).string());
  EXPECT_EQ(ckpt.shard_paths().size(), 3u);
  EXPECT_EQ(ckpt.tensor_names(),
            (std::vector<std::string>{"layer.a.weight", "layer.a.weight_scale_inv",
                                      "layer.b.weight", "layer.b.weight_scale_inv",
                                      "layer.gate.weight", "layer.norm.weight"}));
  EXPECT_EQ(ckpt.shard_of("layer.b.weight").name(),
            (dir / "model-00002-of-00003.safetensors").string());

  const HostTensor a = load_fp8_weight(ckpt, "layer.a");
  EXPECT_EQ(a.type, t.a.type);
  EXPECT_EQ(a.data, t.a.data);
  EXPECT_EQ(a.scales, t.a.scales);
  const HostTensor b = load_fp8_weight(ckpt, "layer.b", DType::ue8m0);
  EXPECT_EQ(b.type, t.b.type);
  EXPECT_EQ(b.data, t.b.data);
  EXPECT_EQ(b.scales, t.b.scales);
  EXPECT_EQ(ckpt.load("layer.norm.weight").data, t.norm.data);
  EXPECT_EQ(ckpt.load("layer.gate.weight").data, t.gate.data);
  EXPECT_EQ(ckpt.at("layer.gate.weight").shape, (Shape{8, 200}));
  EXPECT_EQ(ckpt.bytes("layer.norm.weight").size(), t.norm.data.size());
  EXPECT_EQ(ckpt.find("layer.c.weight"), nullptr);
  expect_error([&] { ckpt.at("layer.a.weigth"); }, ErrorCode::InvalidArgument,
               (dir / kIndex).string() + ": no tensor 'layer.a.weigth'; the closest names are "
                                         "'layer.a.weight'");
  fs::remove_all(dir);
}

TEST(SafetensorsCheckpoint, OpensAnIndexPathADirectoryOrASingleFile) {
  const std::uint64_t seed = fresh_seed();
  const fs::path dir = fresh_dir("forms");
  const ThreeShards t = write_three_shards(dir / "sharded", seed);

  const auto by_index = SafetensorsCheckpoint::open(dir / "sharded" / kIndex);
  EXPECT_EQ(load_fp8_weight(by_index, "layer.a").data, t.a.data);

  SafetensorsWriter single;
  single.add_fp8_weight("layer.a", t.a);
  fs::create_directories(dir / "single");
  single.write(dir / "single" / "layer.safetensors");
  for (const fs::path& p : {dir / "single", dir / "single" / "layer.safetensors"}) {
    const auto ckpt = SafetensorsCheckpoint::open(p);
    EXPECT_EQ(ckpt.name(), (dir / "single" / "layer.safetensors").string());
    EXPECT_EQ(ckpt.shard_paths().size(), 1u);
    EXPECT_EQ(load_fp8_weight(ckpt, "layer.a").scales, t.a.scales);
  }

  single.write(dir / "single" / "other.safetensors");
  expect_error([&] { SafetensorsCheckpoint::open(dir / "single"); }, ErrorCode::InvalidArgument,
               "has no index and 2 .safetensors files");
  fs::create_directories(dir / "empty");
  expect_error([&] { SafetensorsCheckpoint::open(dir / "empty"); }, ErrorCode::InvalidArgument,
               "has no index and 0 .safetensors files");
  fs::remove_all(dir);
}

TEST(SafetensorsCheckpoint, OpensEachShardOnlyWhenOneOfItsTensorsIsNeeded) {
  const fs::path dir = fresh_dir("lazy");
  const ThreeShards t = write_three_shards(dir, fresh_seed());
  // A damaged third shard does not stop the tensors of the other two.
  const fs::path third = dir / "model-00003-of-00003.safetensors";
  Bytes bytes = read_file(third);
  bytes.resize(bytes.size() - 1);
  write_file(third, bytes);
  const auto ckpt = SafetensorsCheckpoint::open(dir);
  EXPECT_EQ(ckpt.load("layer.norm.weight").data, t.norm.data);
  EXPECT_EQ(load_fp8_weight(ckpt, "layer.a").data, t.a.data);
  expect_error([&] { ckpt.load("layer.gate.weight"); }, ErrorCode::ParseError,
               third.string() + ": truncated");
  fs::remove_all(dir);
}

TEST(SafetensorsCheckpoint, ThreadsLoadingFromUnopenedShardsSeeTheSameTensors) {
  const fs::path dir = fresh_dir("threads");
  const ThreeShards t = write_three_shards(dir, fresh_seed());
  const auto ckpt = SafetensorsCheckpoint::open(dir);
  std::vector<HostTensor> a(8), b(8);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < a.size(); ++i)
    threads.emplace_back([&, i] {
      a[i] = load_fp8_weight(ckpt, "layer.a");
      b[i] = load_fp8_weight(ckpt, "layer.b", DType::ue8m0);
    });
  for (auto& th : threads) th.join();
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].scales, t.a.scales) << i;
    EXPECT_EQ(b[i].data, t.b.data) << i;
  }
  fs::remove_all(dir);
}

// A directory with shards holding "a" (model-00001-of-00002) and "b" (model-00002-...),
// whose index the test replaces.
fs::path two_shards(const std::string& name) {
  const fs::path dir = fresh_dir(name);
  SafetensorsShardedWriter w(2);
  w.shard(0).add("a", HostTensor::random(plain(DType::f32, {2}), fresh_seed()));
  w.shard(1).add("b", HostTensor::random(plain(DType::f32, {3}), fresh_seed()));
  w.write(dir);
  return dir;
}

constexpr const char* kShard1 = "model-00001-of-00002.safetensors";
constexpr const char* kShard2 = "model-00002-of-00002.safetensors";

std::string weight_map(const std::string& entries) {
  return "{\"metadata\": {\"total_size\": 20}, \"weight_map\": {" + entries + "}}";
}

// Opening `dir` with `index` as its index fails with `code` and "<index path>: needle";
// `lookup`, when given, is the tensor whose loading must fail (a shard's rules are checked
// when it is opened).
void expect_index_rejected(const fs::path& dir, const std::string& index, ErrorCode code,
                           const std::string& needle, const std::string& lookup = "") {
  SCOPED_TRACE(index);
  write_text(dir / kIndex, index);
  expect_error(
      [&] {
        const auto ckpt = SafetensorsCheckpoint::open(dir);
        if (!lookup.empty()) ckpt.load(lookup);
      },
      code, (dir / kIndex).string() + ": " + needle);
}

TEST(SafetensorsCheckpointRejects, IndexThatIsNotJsonOrNotAnObject) {
  const fs::path dir = two_shards("notjson");
  expect_index_rejected(dir, "{\"weight_map\": {\"a\": ", ErrorCode::ParseError,
                        "index is not valid JSON");
  expect_index_rejected(dir, "[1, 2]", ErrorCode::ParseError,
                        "an index must be a JSON object, not array");
  fs::remove_all(dir);
}

TEST(SafetensorsCheckpointRejects, IndexWithoutAWeightMapOrWithAnUnknownKey) {
  const fs::path dir = two_shards("nomap");
  expect_index_rejected(dir, "{\"metadata\": {}}", ErrorCode::ParseError,
                        "missing \"weight_map\"");
  expect_index_rejected(dir, "{\"weight_map\": [\"a\"]}", ErrorCode::ParseError,
                        "weight_map must be an object, not array");
  expect_index_rejected(dir, "{\"weight_map\": {}, \"weightmap\": {}}", ErrorCode::ParseError,
                        "unknown key 'weightmap'");
  expect_index_rejected(dir, "{\"metadata\": {\"total_size\": -1}, \"weight_map\": {}}",
                        ErrorCode::ParseError,
                        "metadata.total_size must be a non-negative integer");
  fs::remove_all(dir);
}

TEST(SafetensorsCheckpointRejects, WeightMapValuesThatAreNotStrings) {
  const fs::path dir = two_shards("nonstring");
  expect_index_rejected(dir, weight_map("\"a\": 1"), ErrorCode::ParseError,
                        "weight_map 'a' must be a shard file name (a string), not integer 1");
  expect_index_rejected(dir, weight_map("\"a\": [\"" + std::string(kShard1) + "\"]"),
                        ErrorCode::ParseError, "weight_map 'a' must be a shard file name");
  fs::remove_all(dir);
}

TEST(SafetensorsCheckpointRejects, ShardPathsEscapingTheDirectory) {
  const fs::path dir = two_shards("escape");
  // The escaping paths name a real shard, so that only the rule can reject them.
  const std::string real = (dir / kShard1).string();
  expect_index_rejected(dir, weight_map("\"a\": \"" + real + "\""), ErrorCode::ParseError,
                        "weight_map 'a' -> '" + real + "': the shard path is absolute");
  const std::string up = "../" + dir.filename().string() + "/" + kShard1;
  expect_index_rejected(dir, weight_map("\"a\": \"" + up + "\""), ErrorCode::ParseError,
                        "weight_map 'a' -> '" + up + "': the shard path contains \"..\"");
  expect_index_rejected(dir, weight_map("\"a\": \"\""), ErrorCode::ParseError,
                        "weight_map 'a' -> '': the shard path is empty");
  fs::remove_all(dir);
}

TEST(SafetensorsCheckpointRejects, ShardThatDoesNotExist) {
  const fs::path dir = two_shards("missing");
  expect_index_rejected(
      dir,
      weight_map("\"a\": \"" + std::string(kShard1) + "\", \"b\": \"model-00003.safetensors\""),
      ErrorCode::IoError, "shard 'model-00003.safetensors' (holding 'b') does not exist");
  fs::remove_all(dir);
}

TEST(SafetensorsCheckpointRejects, TensorMappedToAShardThatDoesNotHoldIt) {
  const fs::path dir = two_shards("absent");
  expect_index_rejected(dir,
                        weight_map("\"a\": \"" + std::string(kShard1) + "\", \"b\": \"" + kShard2 +
                                   "\", \"c\": \"" + kShard2 + "\""),
                        ErrorCode::ParseError,
                        "the weight_map maps tensor 'c' to shard '" + std::string(kShard2) +
                            "', which does not hold it",
                        "b");
  fs::remove_all(dir);
}

TEST(SafetensorsCheckpointRejects, TensorInAShardButMappedToAnotherOrToNone) {
  const fs::path dir = two_shards("elsewhere");
  // "a" lies in shard 1; the map says shard 2 (which does not hold it either).
  expect_index_rejected(dir,
                        weight_map("\"a\": \"" + std::string(kShard2) + "\", \"b\": \"" + kShard2 +
                                   "\", \"x\": \"" + kShard1 + "\""),
                        ErrorCode::ParseError,
                        "tensor 'a' is in shard '" + std::string(kShard1) +
                            "' but the weight_map maps it to '" + kShard2 + "'",
                        "x");
  expect_index_rejected(dir,
                        weight_map("\"b\": \"" + std::string(kShard2) + "\", \"x\": \"" +
                                   kShard1 + "\""),
                        ErrorCode::ParseError,
                        "tensor 'a' is in shard '" + std::string(kShard1) +
                            "' but the weight_map does not list it",
                        "x");
  fs::remove_all(dir);
}

TEST(SafetensorsCheckpointRejects, DuplicateKeys) {
  const fs::path dir = two_shards("duplicate");
  expect_index_rejected(dir,
                        weight_map("\"a\": \"" + std::string(kShard1) + "\", \"a\": \"" + kShard2 +
                                   "\""),
                        ErrorCode::ParseError, "index has the key 'a' twice in 'weight_map'");
  expect_index_rejected(dir, "{\"weight_map\": {}, \"weight_map\": {}}", ErrorCode::ParseError,
                        "index has the key 'weight_map' twice");
  fs::remove_all(dir);
}

TEST(SafetensorsShardedWriter, RejectsATensorInTwoShardsAnEmptyShardAndNoShards) {
  const fs::path dir = fresh_dir("writer");
  {
    SafetensorsShardedWriter w(2);
    w.shard(0).add("a", HostTensor::random(plain(DType::f32, {2}), fresh_seed()));
    w.shard(1).add("a", HostTensor::random(plain(DType::f32, {2}), fresh_seed()));
    expect_error([&] { w.write(dir); }, ErrorCode::InvalidArgument,
                 "tensor 'a' is in both 'model-00001-of-00002.safetensors' and "
                 "'model-00002-of-00002.safetensors'");
  }
  {
    SafetensorsShardedWriter w(2);
    w.shard(0).add("a", HostTensor::random(plain(DType::f32, {2}), fresh_seed()));
    expect_error([&] { w.write(dir); }, ErrorCode::InvalidArgument,
                 "shard 1 (model-00002-of-00002.safetensors) holds no tensors");
    expect_error([&] { w.shard(2); }, ErrorCode::InvalidArgument, "shard 2 of 2");
  }
  expect_error([] { SafetensorsShardedWriter w(0); }, ErrorCode::InvalidArgument, "0 shards");
  EXPECT_TRUE(fs::is_empty(dir)) << "a rejected write left files behind";
  fs::remove_all(dir);
}

}  // namespace
