// anychip: the C++ API.
#pragma once

#include <string_view>

#include "anychip/device.hpp"
#include "anychip/dtype.hpp"
#include "anychip/error.hpp"
#include "anychip/formats.hpp"
#include "anychip/quantize.hpp"
#include "anychip/tensor.hpp"

namespace anychip {

std::string_view version();

}  // namespace anychip
