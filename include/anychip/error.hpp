// The one error type of the anychip C++ API.
//
// Every failure the library reports (bad graph, bad argument, unavailable device, I/O)
// is an anychip::Error carrying a code and a message that names the thing that is wrong,
// e.g. "gemm_fp8 %7: operand a: K=1000 is not a multiple of 128". The library never
// calls abort() or exit() on bad input. The C ABI maps ErrorCode one to one onto its
// status enum.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace anychip {

enum class ErrorCode {
  InvalidArgument,  // a value passed to the API breaks a documented rule
  InvalidGraph,     // the verifier rejected an op, an operand or an attribute
  ParseError,       // a .acir text (or other input file) is malformed
  Unsupported,      // the device can never run this (dtype, op, shape class)
  Unavailable,      // the device or backend cannot be used on this machine
  OutOfMemory,      // an allocation failed
  IoError,          // a file could not be read or written
  Internal,         // a broken invariant inside anychip: a bug
};

std::string_view error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace anychip
