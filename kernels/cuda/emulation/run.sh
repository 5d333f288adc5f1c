#!/usr/bin/env bash
# Runs anychip's CUDA kernels on the CPU, without a GPU: every conformance case (and a few
# more) on sm_89 / sm_90 (mma.sync) and sm_90a (wgmma + TMA, FP8 GEMM), against the float64
# reference. Each CUDA thread is a std::thread, one CTA at a time; the PTX the kernels issue
# by hand (mma.sync, ldmatrix, cp.async, mbarrier, the TMA's 128-byte-swizzled copies,
# wgmma reading shared memory through its descriptors) is emulated in warp_emulation.hpp.
#
# What it checks: the kernels' indexing, masking, pipelines, barriers' phases, splits,
# edges and numerics. What it cannot: that the hardware means by each instruction what the
# emulation does (fragment layouts, swizzle and descriptor encodings come from the PTX ISA
# manual as read here), timing, occupancy, and anything the GPU does in parallel that one
# CTA at a time hides. It is slow (a few minutes for everything): pass a case-name
# substring to run fewer (run.sh attention/).
#
# Needs: a build of anychip (BUILD_DIR, default build-cuda) and the CUDA Toolkit headers
# (CUDA_INCLUDE, default /usr/local/cuda/include); g++ with C++20.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$repo/build-cuda}
CUDA_INCLUDE=${CUDA_INCLUDE:-/usr/local/cuda/include}
WORK=${WORK:-/tmp/anychip-cuda-emulation}
mkdir -p "$WORK"
libs=()
for l in runtime backends kernels sim ir; do libs+=("$BUILD_DIR/libanychip_$l.a"); done
libs+=(-ltbb -lxxhash -ldl -pthread)
flags=(-std=c++20 -O1 -w -Wno-psabi -I"$here" -I"$WORK" -I"$repo/include" -I"$repo")
g++ "${flags[@]}" "$here/list_kernels.cc" "${libs[@]}" -o "$WORK/list_kernels"
"$WORK/list_kernels" >"$WORK/kernels.jsonl"
python3 "$here/render_for_host.py" "$repo/kernels/cuda" "$WORK/kernels.jsonl" "$WORK/kernels_host.cpp"
g++ "${flags[@]}" -I"$CUDA_INCLUDE" "$here/run_kernels.cc" "${libs[@]}" -o "$WORK/run_kernels"
"$WORK/run_kernels" "${1:-}"
