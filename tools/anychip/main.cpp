#include <cstdio>

#include "anychip/anychip.hpp"

int main() {
  std::printf("anychip %.*s\n", static_cast<int>(anychip::version().size()), anychip::version().data());
  return 0;
}
