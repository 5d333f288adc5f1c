// How the C ABI (anychip/anychip.h) turns C++ failures into statuses. Internal to
// runtime/; tests include it to check the mapping.
#pragma once

#include <cstddef>

#include "anychip/anychip.h"
#include "anychip/dtype.hpp"
#include "anychip/error.hpp"

namespace anychip::capi {

// ErrorCode -> anychip_status, one to one, in ErrorCode's order.
inline constexpr struct {
  ErrorCode code;
  anychip_status status;
} kStatusOfCode[] = {
    {ErrorCode::InvalidArgument, ANYCHIP_ERROR_INVALID_ARGUMENT},
    {ErrorCode::InvalidGraph, ANYCHIP_ERROR_INVALID_GRAPH},
    {ErrorCode::ParseError, ANYCHIP_ERROR_PARSE},
    {ErrorCode::Unsupported, ANYCHIP_ERROR_UNSUPPORTED},
    {ErrorCode::Unavailable, ANYCHIP_ERROR_UNAVAILABLE},
    {ErrorCode::OutOfMemory, ANYCHIP_ERROR_OUT_OF_MEMORY},
    {ErrorCode::IoError, ANYCHIP_ERROR_IO},
    {ErrorCode::Internal, ANYCHIP_ERROR_INTERNAL},
};

// Internal is the last ErrorCode: a code added after it must get a row above (and a
// status in anychip.h), or this fails.
inline constexpr std::size_t kErrorCodeCount = static_cast<std::size_t>(ErrorCode::Internal) + 1;
static_assert(std::size(kStatusOfCode) == kErrorCodeCount, "one anychip_status per ErrorCode");
consteval bool statuses_are_one_to_one() {
  for (std::size_t i = 0; i < std::size(kStatusOfCode); ++i)
    if (static_cast<std::size_t>(kStatusOfCode[i].code) != i ||
        static_cast<std::size_t>(kStatusOfCode[i].status) != i + 1)
      return false;
  return true;
}
static_assert(statuses_are_one_to_one(), "anychip_status is ErrorCode + 1, in order");

// anychip_dtype mirrors DType value for value.
static_assert(std::size(kAllDTypes) == 7, "a new DType needs its anychip_dtype (anychip.h)");
static_assert(static_cast<int>(DType::f32) == ANYCHIP_F32 && static_cast<int>(DType::bf16) == ANYCHIP_BF16 &&
              static_cast<int>(DType::f16) == ANYCHIP_F16 && static_cast<int>(DType::f8e4m3) == ANYCHIP_F8E4M3 &&
              static_cast<int>(DType::f8e5m2) == ANYCHIP_F8E5M2 && static_cast<int>(DType::ue8m0) == ANYCHIP_UE8M0 &&
              static_cast<int>(DType::i32) == ANYCHIP_I32);

constexpr anychip_status status_of(ErrorCode code) {
  return kStatusOfCode[static_cast<std::size_t>(code)].status;
}

// The status of the exception being handled (call inside a catch block), and its message:
// anychip::Error keeps its code and what(); std::bad_alloc is OutOfMemory; anything else
// is Internal. Never throws.
anychip_status status_of_current_exception(const char* function) noexcept;

}  // namespace anychip::capi
