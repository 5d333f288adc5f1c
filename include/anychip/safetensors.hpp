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
// Sharded checkpoints (as Hugging Face ships large models: DeepSeek-V3 is 163 files
// model-000NN-of-00163.safetensors) add an index, model.safetensors.index.json =
// {"metadata": {"total_size": N, ...}, "weight_map": {"<tensor>": "<shard file>", ...}}.
// SafetensorsCheckpoint reads one; its rules (ParseError unless said otherwise, each message
// naming the index, the tensor and the rule):
//   - the index is one JSON object with no duplicate key, holding "weight_map" (an object
//     of tensor name -> string) and optionally "metadata" (an object; "total_size", when
//     present, a non-negative integer); no other key;
//   - a shard path is relative, non-empty and has no ".." component: an index must not
//     reach outside its directory;
//   - every shard the map names exists as a regular file (IoError), checked at open;
//   - when a shard is opened (lazily, on the first lookup of one of its tensors, and once),
//     it holds every tensor the map assigns to it, and every tensor it holds is mapped to
//     it: a tensor in a shard but mapped to another (or to none) is an error, as it would
//     be silently shadowed or lost.
//
// Threads: a SafetensorsFile is immutable once opened; its const methods may run
// concurrently. It maps the file, which must not be truncated while it is open (as with
// any mapped file, the reads would then fault). A SafetensorsCheckpoint's const methods may
// run concurrently too (opening a shard takes a lock). A SafetensorsWriter or
// SafetensorsShardedWriter is used by one thread.
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

// What the loaders need of a checkpoint, whether one file or a sharded set: tensors by
// name. load_fp8_weight takes one, so that a weight and its scale may sit in different
// shards.
class SafetensorsSource {
 public:
  virtual ~SafetensorsSource() = default;
  // The file (or index) as messages spell it.
  virtual const std::string& name() const = 0;
  // Every tensor's name: a file's in buffer order, a sharded checkpoint's sorted.
  virtual std::vector<std::string> tensor_names() const = 0;
  // The entry of a tensor, or nullptr when there is none of that name.
  virtual const SafetensorsEntry* find(std::string_view tensor) const = 0;
  // The entry of a tensor; InvalidArgument when absent, listing the closest names.
  virtual const SafetensorsEntry& at(std::string_view tensor) const = 0;
  // A tensor's bytes, as stored; valid while this object lives.
  virtual std::span<const std::byte> bytes(std::string_view tensor) const = 0;
  // A tensor as a HostTensor of the same dtype and shape (unscaled). Unsupported when
  // anychip has no dtype for it (U8, F64, ...).
  virtual HostTensor load(std::string_view tensor) const = 0;
};

class SafetensorsFile final : public SafetensorsSource {
 public:
  // Opens and validates a file (every rule above). The file is mapped read-only, or read
  // into memory where it cannot be mapped. Throws IoError when it cannot be opened or
  // read, ParseError when it breaks a rule.
  static SafetensorsFile open(const std::filesystem::path& path);
  // The same for a file image in memory; `name` stands for the file in messages.
  static SafetensorsFile from_bytes(std::vector<std::byte> bytes, std::string name);

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile() override;

  // The path (or the name given to from_bytes), as messages spell it.
  const std::string& name() const override;
  const std::map<std::string, std::string>& metadata() const;
  // Every tensor, in buffer order.
  const std::vector<SafetensorsEntry>& tensors() const;
  std::vector<std::string> tensor_names() const override;
  const SafetensorsEntry* find(std::string_view tensor) const override;
  const SafetensorsEntry& at(std::string_view tensor) const override;
  std::span<const std::byte> bytes(std::string_view tensor) const override;
  HostTensor load(std::string_view tensor) const override;

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
// The two tensors may come from different shards of a checkpoint.
HostTensor load_fp8_weight(const SafetensorsSource& file, std::string_view prefix,
                           DType scale_dtype = DType::f32);

// A checkpoint of one safetensors file or of shards listed by an index (the rules above).
class SafetensorsCheckpoint final : public SafetensorsSource {
 public:
  // `path` is a .safetensors file, an index (a path ending in .json), or a directory that
  // holds model.safetensors.index.json or else exactly one .safetensors file. The index is
  // read and every shard's existence checked now; shards are mapped when first needed.
  // IoError when something cannot be read or does not exist, ParseError when the index
  // breaks a rule, InvalidArgument for a directory with no checkpoint or an ambiguous one.
  static SafetensorsCheckpoint open(const std::filesystem::path& path);

  SafetensorsCheckpoint(SafetensorsCheckpoint&&) noexcept;
  SafetensorsCheckpoint& operator=(SafetensorsCheckpoint&&) noexcept;
  ~SafetensorsCheckpoint() override;

  // The index path, or the single file's.
  const std::string& name() const override;
  // The shard files, as the index names them resolved against its directory (sorted).
  std::vector<std::filesystem::path> shard_paths() const;
  // The shard holding a tensor, opened (and checked against the map) if it was not yet;
  // InvalidArgument when the checkpoint has no such tensor.
  const SafetensorsFile& shard_of(std::string_view tensor) const;
  std::vector<std::string> tensor_names() const override;
  // Opens the tensor's shard, which may throw as open() describes for shards.
  const SafetensorsEntry* find(std::string_view tensor) const override;
  const SafetensorsEntry& at(std::string_view tensor) const override;
  std::span<const std::byte> bytes(std::string_view tensor) const override;
  HostTensor load(std::string_view tensor) const override;

 private:
  struct Impl;
  explicit SafetensorsCheckpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

inline constexpr std::string_view kSafetensorsIndexName = "model.safetensors.index.json";

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
  friend class SafetensorsShardedWriter;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, Pending, std::less<>> pending_;  // by name
};

// Builds a sharded checkpoint: the caller places each tensor in a shard, and write() lays
// out the files as Hugging Face does.
class SafetensorsShardedWriter {
 public:
  // InvalidArgument unless 1 <= shard_count <= 99999 (the five digits of the file names).
  explicit SafetensorsShardedWriter(std::size_t shard_count);
  std::size_t shard_count() const { return shards_.size(); }
  // Shard i (0-based); InvalidArgument when out of range.
  SafetensorsWriter& shard(std::size_t i);
  // The file name of shard i: model-<i+1>-of-<n>.safetensors, both five digits.
  std::string shard_file_name(std::size_t i) const;
  // Writes every shard and then kSafetensorsIndexName into `dir` (created if missing),
  // each file atomically (SafetensorsWriter::write), the index last so that it never
  // names a shard not yet on disk. metadata.total_size is the sum of the tensors' bytes.
  // InvalidArgument when a tensor name is in two shards, IoError on failure.
  void write(const std::filesystem::path& dir) const;

 private:
  std::vector<SafetensorsWriter> shards_;
};

}  // namespace anychip
