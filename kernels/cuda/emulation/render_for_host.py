#!/usr/bin/env python3
"""Writes one C++ file with anychip's CUDA kernels for a host compiler: the templates of
kernels/cuda with every PTX wrapper's body replaced by its emulation (warp_emulation.hpp),
and every kernel under test's extern "C" wrappers renamed c<index>_<name>, each with a
thunk that takes its arguments as cuLaunchKernel does (an array of pointers to them).

usage: render_for_host.py <kernels/cuda dir> <list_kernels output> <out.cpp>
"""
import json
import re
import sys

src_dir, listing, out_path = sys.argv[1:4]


def matching_brace(s, i):
    """The index past the '}' matching the '{' at s[i]; string literals are skipped."""
    depth, j = 0, i
    while True:
        ch = s[j]
        if ch == '"':
            j += 1
            while s[j] != '"':
                j += 2 if s[j] == '\\' else 1
        elif ch == '{':
            depth += 1
        elif ch == '}':
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1


def replace_body(s, signature, body):
    i = s.index(signature)
    b = s.index('{', i + len(signature) - 1)
    return s[:b] + "{ " + body + " }" + s[matching_brace(s, b):]


def read(name):
    return open(f"{src_dir}/{name}").read()


common = read("common.cuh")
common = replace_body(common, "void cp_async_16(", "emu::cp_async_16(smem, gmem, valid_bytes);")
common = replace_body(common, "void cp_async_commit(", "")
common = replace_body(common, "void cp_async_wait(", "")
common = replace_body(common, "void ldmatrix_x2_trans(", "emu::ldmatrix_x2_trans(r0, r1, smem_row);")
common = replace_body(common, "void mma_16816<BF16>(", "emu::mma_16816(d, a, b, true);")
common = replace_body(common, "void mma_16816<F16>(", "emu::mma_16816(d, a, b, false);")

# common.cuh's mbarrier and TMA wrappers are sm_90-only (#if __CUDA_ARCH__ >= 900): emulated here.
hopper = """
namespace anychip {
inline void mbarrier_init(u64* bar, u32 count) { emu::mbar_init(bar, count); }
inline void fence_barrier_init() {}
inline void fence_proxy_async() {}
inline void mbarrier_arrive(u64* bar) { emu::mbar_arrive(bar); }
inline void mbarrier_arrive_expect_tx(u64* bar, u32 bytes) { emu::mbar_arrive_expect_tx(bar, bytes); }
inline void mbarrier_wait(u64* bar, u32 parity) { emu::mbar_wait(bar, parity); }
inline void prefetch_tensor_map(const TensorMap*) {}
inline void tma_load_2d(void* smem, const TensorMap* map, u64* bar, int inner, int outer) {
  emu::tma_load_2d(smem, map, bar, inner, outer);
}
}  // namespace anychip
"""

sm90 = read("gemm_fp8_sm90.cuh")
for f in ("wgmma_fence(", "wgmma_commit(", "fence_operand("):
    sm90 = replace_body(sm90, "void " + f, "")
# wgmma's .sync.aligned instructions keep a warp's lanes together; emulated lanes are threads.
sm90 = replace_body(sm90, "void wgmma_wait(", "emu::warp_sync();")
sm90 = replace_body(sm90, "void wgmma_fp8(",
                    "emu::wgmma_fp8(d, desc_a, desc_b, scale_d, BN, IsE4M3<AF>::value, IsE4M3<BF>::value);")
sm90 = re.sub(r'asm volatile\("setmaxnreg[^)]*\);', "", sm90)

mma = replace_body(read("gemm_fp8_mma.cuh"), "void mma_fp8(",
                   "emu::mma_fp8(d, a, b, IsE4M3<AF>::value, IsE4M3<BF>::value);")
attention = read("attention.cuh")

text = "\n".join([common, hopper, sm90, mma, read("gemm.cuh"), attention, read("quantize.cuh"),
                  read("elementwise.cuh")])
text = re.sub(r"extern __shared__ (?:__align__\(\d+\) )?u8 (\w+)\[\];",
              r"u8* \1 = reinterpret_cast<u8*>(emu::g_dynamic_smem.data());", text)
for h in ("cuda_bf16.h", "cuda_fp16.h", "cuda_fp8.h"):
    text = text.replace(f"#include <{h}>", "")

out = ['#include "warp_emulation.hpp"', text, "namespace thunks {"]
table = []
for line in open(listing):
    k = json.loads(line)
    if "wrapper" not in k:
        continue
    i = k["index"]
    w = re.sub(r"\banychip_(\w+)\(", lambda m: f"c{i}_anychip_{m.group(1)}(", k["wrapper"])
    out.append(w)
    for m in re.finditer(r'extern "C" __global__ void (?:__launch_bounds__\([^)]*\) )?(c\d+_anychip_\w+)\(([^)]*)\)', w):
        name, params = m.group(1), m.group(2)
        types = [" ".join(t for t in p.split()[:-1] if t not in ("__restrict__", "__grid_constant__"))
                 for p in params.split(",")]
        args = ", ".join(f"*reinterpret_cast<{t}*>(a[{n}])" for n, t in enumerate(types))
        out.append(f"void {name}_thunk(void** a) {{ {name}({args}); }}")
        table.append((i, name[len(f"c{i}_"):], f"{name}_thunk"))
out.append("}  // namespace thunks")
out.append("struct Thunk { int index; const char* kernel; void (*fn)(void**); };")
out.append("const Thunk kThunks[] = {\n" + ",\n".join(f'  {{{i}, "{k}", thunks::{f}}}' for i, k, f in table) + "};")
open(out_path, "w").write("\n".join(out) + "\n")
print(f"{len(table)} kernels rendered for the host", file=sys.stderr)
