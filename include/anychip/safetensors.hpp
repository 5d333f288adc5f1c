// Safetensors files: model weights as checkpoints ship them, in the layout DeepSeek-V3's
// FP8 checkpoints use.
//
// The format (https://github.com/huggingface/safetensors): 8 bytes, a little-endian u64 N;
// N bytes of UTF-8 JSON, the header; then the byte buffer. The header maps each tensor
// name to {"dtype": "F8_E4M3", "shape": [out, in], "data_offsets": [begin, end]}
// (offsets into the buffer, end one past the last byte; data row-major, little-endian),
// plus an optional "__metadata__" object of string -> string.
//
// Reading enforces the rules of the format's README and of the reference implementation
// (the Rust crate, tensor.rs), and is stricter than that crate in three places, marked
// (*), where it follows the README or this project's rule that an unknown key is an error.
// A file that breaks one is rejected with ErrorCode::ParseError and a message naming the
// file, the tensor and the rule:
//   - N <= kSafetensorsMaxHeaderBytes (100,000,000) and 8 + N <= the file's size;
//   - the header begins with '{' (*), is one JSON object, and is followed only by spaces
//     (*) (0x20, the padding writers use to align the buffer); no key appears twice in
//     any object (a duplicate tensor name would silently shadow another);
//   - "__metadata__", when present, is an object whose values are all strings;
//   - every other entry is an object with exactly (*) "dtype" (a name of the format's list,
//     safetensors_dtypes()), "shape" (non-negative integers) and "data_offsets" (two
//     integers, begin <= end);
//   - end - begin is the tensor's size (elements x bits / 8, a whole number of bytes);
//   - taken in offset order, the tensors tile the buffer: the first begins at 0, each
//     begins where the one before ends, and the last ends at the end of the file. So no
//     two overlap, there is no hole, and a truncated file is caught before any read.
//     The order of the entries in the JSON does not matter (the format allows any).
//
// The DeepSeek layout of an FP8 linear layer `<prefix>`: `<prefix>.weight` is F8_E4M3
// [out, in] and `<prefix>.weight_scale_inv` is F32 [ceil(out/128), ceil(in/128)], the
// dequantization multiplier of each 128x128 block (the inverse of the scale that
// quantized it, hence the name). Every such scale must be finite and > 0: the recipe
// (quantize.hpp) never makes anything else (its amax floor keeps s >= 1e-4/448); a zero
// scale would silently zero its block, NaN or infinity would poison every output the
// block touches, and a negative one would flip signs and has no UE8M0 form. A file that
// holds one is corrupt or was made by something else, so loading says where, rather than
// computing garbage.
//
// Threads: a SafetensorsFile is immutable once opened; its const methods may run
// concurrently. It maps the file, which must not be truncated while it is open (as with
// any mapped file, the reads would then fault). A SafetensorsWriter is used by one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "anychip/dtype.hpp"
#include "anychip/tensor.hpp"

namespace anychip {

inline constexpr std::uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// The dtype names of the format, with their sizes in bits.
struct SafetensorsDType {
  std::string_view name;       // "F8_E4M3", "BF16", ...
  unsigned bits;               // 4, 6, 8, 16, 32 or 64
  std::optional<DType> dtype;  // the anychip dtype of the same encoding, if there is one
};
std::span<const SafetensorsDType> safetensors_dtypes();

// The format's name for an anychip dtype: "F32", "BF16", "F16", "F8_E4M3", "F8_E5M2",
// "F8_E8M0" (ue8m0), "I32".
std::string_view safetensors_dtype_name(DType dtype);

// One tensor of a file, as its header describes it.
struct SafetensorsEntry {
  std::string name;
  const SafetensorsDType* dtype = nullptr;  // an element of safetensors_dtypes()
  Shape shape;
  std::uint64_t begin = 0, end = 0;  // data_offsets: bytes [begin, end) of the buffer
};

class SafetensorsFile {
 public:
  // Opens and validates a file (every rule above). The file is mapped read-only, or read
  // into memory where it cannot be mapped. Throws IoError when it cannot be opened or
  // read, ParseError when it breaks a rule.
  static SafetensorsFile open(const std::filesystem::path& path);
  // The same for a file image in memory; `name` stands for the file in messages.
  static SafetensorsFile from_bytes(std::vector<std::byte> bytes, std::string name);

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  // The path (or the name given to from_bytes), as messages spell it.
  const std::string& name() const;
  const std::map<std::string, std::string>& metadata() const;
  // Every tensor, in buffer order.
  const std::vector<SafetensorsEntry>& tensors() const;
  // The entry of a tensor, or nullptr when the file has none of that name.
  const SafetensorsEntry* find(std::string_view tensor) const;
  // The entry of a tensor; InvalidArgument when absent, listing the closest names.
  const SafetensorsEntry& at(std::string_view tensor) const;
  // A tensor's bytes, as stored; valid while this object lives.
  std::span<const std::byte> bytes(std::string_view tensor) const;
  // A tensor as a HostTensor of the same dtype and shape (unscaled). Unsupported when
  // anychip has no dtype for it (U8, F64, ...).
  HostTensor load(std::string_view tensor) const;

 private:
  struct Impl;
  explicit SafetensorsFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The FP8 weight of linear layer `prefix` (`<prefix>.weight` and
// `<prefix>.weight_scale_inv`, the DeepSeek layout above) as an f8e4m3 [out, in]
// HostTensor scaled<128x128, scale_dtype>. scale_dtype is f32 (the file's scales, bit
// for bit) or ue8m0, which needs every scale to be a power of two in UE8M0's range
// (2^-127 .. 2^127): a scale that is not is an error naming the tensor and its block,
// never a rounding. Throws InvalidArgument when the file has no `<prefix>.weight`,
// ParseError when the pair breaks the layout (no scale tensor, a wrong dtype or shape,
// a scale that is not finite and positive).
HostTensor load_fp8_weight(const SafetensorsFile& file, std::string_view prefix,
                           DType scale_dtype = DType::f32);

// Builds a safetensors file from named HostTensors. The output is deterministic: tensors
// are laid out by element size (largest first, so every tensor is aligned to its element
// size in the file), then by name; the header is padded with spaces to a multiple of 8.
class SafetensorsWriter {
 public:
  void set_metadata(std::string key, std::string value);
  // An unscaled tensor, stored as safetensors_dtype_name(tensor.type.dtype).
  void add(std::string name, HostTensor tensor);
  // A block-scaled FP8 weight, f8e4m3 [out, in] scaled<128x128, f32 or ue8m0>, stored as
  // `<prefix>.weight` (F8_E4M3) and `<prefix>.weight_scale_inv` (F32; ue8m0 scales are
  // written as the f32 powers of two they stand for).
  void add_fp8_weight(std::string_view prefix, HostTensor weight);
  // add() and add_fp8_weight() throw InvalidArgument for a name already added (either
  // of the pair), an empty name or "__metadata__", a tensor whose byte count does not
  // match its type, or a scale that is not finite and positive.

  // The whole file, in memory.
  std::vector<std::byte> serialize() const;
  // Writes the file atomically: into a temporary file beside `path`, flushed to disk,
  // then renamed over it, so that `path` never names a partly written file. IoError on
  // failure (and the temporary file is removed).
  void write(const std::filesystem::path& path) const;

 private:
  struct Pending {
    std::string name;
    DType dtype;
    Shape shape;
    std::vector<std::byte> bytes;
  };
  // The header (padded) and the tensors' bytes in file order.
  struct Layout {
    std::string header;
    std::vector<const std::vector<std::byte>*> buffers;
  };
  Layout layout() const;
  void add_entry(Pending entry);
  std::map<std::string, std::string> metadata_;
  std::map<std::string, Pending, std::less<>> pending_;  // by name
};

}  // namespace anychip
