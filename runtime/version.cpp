#include "anychip/anychip.hpp"

namespace anychip {

std::string_view version() { return "0.1.0"; }

}  // namespace anychip
