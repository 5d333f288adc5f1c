// Prints one JSON line per kernel under test: index, target, case, spec, and the rendered
// extern "C" wrappers (or why the target does not support it).
#include <iostream>
#include <nlohmann/json.hpp>

#include "kernels_under_test.hpp"

int main() {
  anychip::emulation::for_each_kernel([](const anychip::emulation::KernelUnderTest& k) {
    nlohmann::json j{{"index", k.index}, {"arch", k.arch}, {"case", k.c->name}, {"spec", anychip::kernels::describe(k.spec)}};
    if (!k.unsupported.empty()) {
      j["unsupported"] = k.unsupported;
    } else {
      const std::string src = anychip::kernels::cuda::render(k.spec, k.target);
      const std::string marker = "// ---- this spec ----\n";
      j["wrapper"] = src.substr(src.find(marker) + marker.size());
    }
    std::cout << j.dump() << "\n";
  });
}
