#include "anychip/dtype.hpp"

#include "anychip/error.hpp"

namespace anychip {

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::f8e4m3: return "f8e4m3";
    case DType::f8e5m2: return "f8e5m2";
    case DType::ue8m0: return "ue8m0";
    case DType::i32: return "i32";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType d : kAllDTypes)
    if (dtype_name(d) == name) return d;
  return std::nullopt;
}

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32:
    case DType::i32: return 4;
    case DType::bf16:
    case DType::f16: return 2;
    case DType::f8e4m3:
    case DType::f8e5m2:
    case DType::ue8m0: return 1;
  }
  return 0;
}

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument: return "invalid_argument";
    case ErrorCode::InvalidGraph: return "invalid_graph";
    case ErrorCode::ParseError: return "parse_error";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::Unavailable: return "unavailable";
    case ErrorCode::OutOfMemory: return "out_of_memory";
    case ErrorCode::IoError: return "io_error";
    case ErrorCode::Internal: return "internal";
  }
  return "?";
}

}  // namespace anychip
