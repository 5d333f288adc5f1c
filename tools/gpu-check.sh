#!/usr/bin/env bash
# tools/gpu-check.sh: the CUDA backend on a Hopper GPU (H100 / H200 / H800), in one call.
#
#   1. finds or builds the `anychip` command (Release, CLI only),
#   2. lists the devices, and checks that NVRTC and the toolkit headers are found,
#   3. runs the conformance suite on cuda:0 (every op against the float64 reference),
#   4. checks the SASS of the FP8 GEMM for Hopper's own instructions (QGMMA, UTMALDG),
#   5. benchmarks, each against a peer timed in the same run:
#        the FP8 block-scaled GEMM (1x128 activations, 128x128 weights) against
#        torch._scaled_mm with blockwise scales (cuBLASLt), on DeepSeek-V3 shapes
#        M in {64, 128, 4096} x (N x K) in {2112x7168, 24576x1536, 7168x16384, 4096x7168,
#        7168x2048}; where this PyTorch cannot do blockwise scaling, row-wise scaled
#        torch._scaled_mm is the peer, and the table says so;
#        attention against torch.nn.functional.scaled_dot_product_attention;
#   6. writes the figures (date, GPU, driver, commands, times, ratios) as JSON and Markdown.
#
# Written in a session without a GPU: NOT YET RUN. Expect to fix small things on the first
# run; every step logs what it ran and goes on after a failure.
#
# On the device tool's machine (see /work/.library/device/README.md), from the repo root:
#   run(command="bash tools/gpu-check.sh", timeout_s=600)
# Results go to $OUT (the device tool brings them back: 7 files at most), else to docs/perf/.
# The whole check takes about 5-8 minutes (build ~2, conformance ~1-2, benchmarks ~3); if a
# call runs out of time, split it with GPU_CHECK_SKIP_BENCH=1 / GPU_CHECK_SKIP_CONFORMANCE=1.
#
# Environment:
#   ANYCHIP_BIN         an `anychip` binary to use instead of building (e.g. one built here
#                       and carried; libtbb.so.12 and libxxhash.so.0 must be found)
#   ANYCHIP_GPU_LIBS    a folder of shared libraries to put on LD_LIBRARY_PATH first
#   BUILD_DIR           build directory (default build-gpu)
#   GPU_CHECK_QUICK=1   three GEMM shapes and two attention shapes only
#   GPU_CHECK_SKIP_CONFORMANCE=1, GPU_CHECK_SKIP_BENCH=1   skip those steps
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

DATE=$(date -u +%Y-%m-%d)
if [ -n "${OUT:-}" ]; then RESULTS=$OUT; else RESULTS=$REPO/docs/perf; fi
mkdir -p "$RESULTS"
LOG=$RESULTS/gpu-check.log
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1
export ANYCHIP_CACHE_DIR=${ANYCHIP_CACHE_DIR:-/tmp/anychip-kernel-cache}
[ -n "${ANYCHIP_GPU_LIBS:-}" ] && export LD_LIBRARY_PATH=$ANYCHIP_GPU_LIBS:${LD_LIBRARY_PATH:-}

STATUS=()  # "step: result" lines for the summary
note() { STATUS+=("$1"); echo "== $1"; }
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 ))s; }

echo "== gpu-check $DATE, repo $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv 2>/dev/null
echo "GPU: ${GPU:-none found}; driver ${DRIVER:-?}"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))' 2>&1

# ---- 1. the anychip binary -------------------------------------------------------------------
BIN=""
runs() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }
if [ -n "${ANYCHIP_BIN:-}" ] && runs "$ANYCHIP_BIN"; then
  BIN=$ANYCHIP_BIN
  note "binary: given, $BIN"
else
  BUILD_DIR=${BUILD_DIR:-build-gpu}
  echo "== building anychip in $BUILD_DIR ($(elapsed))"
  if cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DANYCHIP_BUILD_TESTS=OFF \
       -DANYCHIP_BUILD_BENCHMARKS=OFF >"$RESULTS/cmake.log" 2>&1 &&
     cmake --build "$BUILD_DIR" --target anychip_cli -j "$(nproc)" >>"$RESULTS/cmake.log" 2>&1; then
    BIN=$REPO/$BUILD_DIR/bin/anychip
    note "binary: built in $BUILD_DIR ($(elapsed))"
  else
    tail -20 "$RESULTS/cmake.log"
    for candidate in build-cuda/bin/anychip build/bin/anychip; do
      if runs "$REPO/$candidate"; then BIN=$REPO/$candidate; break; fi
    done
    if [ -n "$BIN" ]; then
      note "binary: build failed (cmake.log), using the carried $BIN"
    else
      note "binary: build failed (see cmake.log) and no carried binary runs; stopping"
    fi
  fi
fi

# ---- 2. devices, NVRTC, headers ----------------------------------------------------------------
cuda_reason() {  # "available", or why cuda:0 is not
  "$BIN" devices --json 2>/dev/null | python3 -c '
import json, sys
try:
    devices = json.load(sys.stdin)["devices"]
except Exception as e:
    print(f"anychip devices --json failed ({e})"); sys.exit()
for d in devices:
    if d["id"] == "cuda:0":
        print("available" if d["available"] else (d["reason"] or "unavailable")); break
else:
    reasons = [d["id"] + ": " + str(d["reason"]) for d in devices if d["backend"] == "cuda"]
    print("; ".join(reasons) or "no cuda:0 listed")'
}
if [ -n "$BIN" ]; then
  "$BIN" devices
  "$BIN" devices --json >"$RESULTS/devices.json" 2>&1
  reason=$(cuda_reason)
  if [ "$reason" != available ] && echo "$reason" | grep -q -i "nvrtc"; then
    # NVRTC from the toolkit, else from PyTorch's wheels.
    lib=$(ls /usr/local/cuda*/lib64/libnvrtc.so.1[0-9]* /usr/local/cuda*/lib/libnvrtc.so.1[0-9]* 2>/dev/null | head -1)
    if [ -z "$lib" ]; then
      site=$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null)
      [ -n "$site" ] && lib=$(find "$site/nvidia" -name 'libnvrtc.so.1*' 2>/dev/null | grep -v builtins | head -1)
    fi
    [ -n "$lib" ] && export ANYCHIP_NVRTC_LIBRARY=$lib && echo "using NVRTC $lib"
    for inc in /usr/local/cuda/include "$(dirname "$(dirname "${lib:-/x/y}")")/include"; do
      [ -f "$inc/cuda_fp8.h" ] && export ANYCHIP_CUDA_INCLUDE_DIR=$inc && break
    done
    reason=$(cuda_reason)
  fi
  if [ "$reason" = available ]; then note "cuda:0 available"; else note "cuda:0 UNAVAILABLE: $reason"; BIN_OK=0; fi
fi
BIN_OK=${BIN_OK:-1}
[ -z "$BIN" ] && BIN_OK=0

# ---- 3. conformance on cuda:0 ------------------------------------------------------------------
if [ "$BIN_OK" = 1 ] && [ "${GPU_CHECK_SKIP_CONFORMANCE:-0}" != 1 ]; then
  echo "== conformance on cuda:0 ($(elapsed))"
  timeout 240 "$BIN" conformance --device cuda:0 --json >"$RESULTS/conformance-cuda.json"
  rc=$?
  summary=$(python3 - "$RESULTS/conformance-cuda.json" <<'EOF'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"no JSON ({e})"); sys.exit()
for d in j["devices"]:
    print(d["device"], " ".join(f"{k} {v}" for k, v in sorted(d["counts"].items())))
    for r in d["results"]:
        if r["outcome"] not in ("pass",):
            print(f"  {r['outcome']:11} {r['case']:44} rel_err {r['rel_err']:.3g} tol {r['tolerance']:.3g} {r['detail'][:160]}")
EOF
)
  echo "$summary"
  note "conformance cuda:0 (exit $rc): $(echo "$summary" | head -1)"
fi

# ---- 4. SASS: Hopper's instructions in the FP8 GEMM --------------------------------------------
if [ "$BIN_OK" = 1 ] && command -v cuobjdump >/dev/null; then
  "$BIN" emit --target cuda:0 --op gemm_fp8 --m 4096 --n 7168 --k 16384 --format cubin --out "$RESULTS/gemm_fp8.cubin" &&
    cuobjdump --dump-sass "$RESULTS/gemm_fp8.cubin" 2>&1 | head -c 8000000 >"$RESULTS/gemm_fp8.sass"
  q=$(grep -c QGMMA "$RESULTS/gemm_fp8.sass" 2>/dev/null); t=$(grep -c UTMALDG "$RESULTS/gemm_fp8.sass" 2>/dev/null)
  l=$(grep -c -E "LDL|STL" "$RESULTS/gemm_fp8.sass" 2>/dev/null)
  note "SASS of gemm_fp8 4096x7168x16384: QGMMA $q, UTMALDG $t, local-memory accesses $l"
  rm -f "$RESULTS/gemm_fp8.cubin"
fi

# ---- 5. benchmarks against peers ---------------------------------------------------------------
if [ "$BIN_OK" = 1 ] && [ "${GPU_CHECK_SKIP_BENCH:-0}" != 1 ]; then
  echo "== benchmarks ($(elapsed))"
  BIN="$BIN" RESULTS="$RESULTS" DATE="$DATE" GPU="$GPU" DRIVER="$DRIVER" QUICK="${GPU_CHECK_QUICK:-0}" \
    timeout 300 python3 - <<'EOF'
import json, os, statistics, subprocess, sys, time

BIN, RESULTS = os.environ["BIN"], os.environ["RESULTS"]
QUICK = os.environ.get("QUICK") == "1"
WARMUP, REPEATS = 3, 20
records = []

def ours(args):
    cmd = [BIN, "bench"] + args + ["--device", "cuda:0", "--warmup", str(WARMUP), "--repeats", str(REPEATS), "--json"]
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if p.returncode != 0:
        return None, " ".join(cmd), (p.stderr or p.stdout).strip()[-400:]
    j = json.loads(p.stdout)
    return j, " ".join(cmd), f"{time.time() - t:.1f}s wall"

try:
    import torch
    import torch.nn.functional as F
    HAVE_TORCH = torch.cuda.is_available()
except Exception as e:  # noqa: BLE001
    HAVE_TORCH = False
    print("no torch:", e)

def time_torch(fn):
    """Median device time of fn() over REPEATS calls, CUDA events around each (no L2 flush,
    as anychip's bench)."""
    for _ in range(WARMUP):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(REPEATS):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); e.synchronize()
        times.append(s.elapsed_time(e) * 1e-3)
    return statistics.median(times)

def cdiv(a, b):
    return (a + b - 1) // b

def gemm_peer(m, n, k):
    """torch._scaled_mm with DeepSeek's scales (1x128 on A, 128x128 on B), else row-wise."""
    f8 = torch.float8_e4m3fn
    a = (torch.randn(m, k, device="cuda") * 0.5).to(f8)
    b = (torch.randn(n, k, device="cuda") * 0.5).to(f8)  # row-major [N, K]; b.t() is column-major
    sa = torch.rand(m, k // 128, device="cuda") + 0.5
    sb = torch.rand(cdiv(n, 128), k // 128, device="cuda") + 0.5
    l4 = cdiv(k // 128, 4) * 4
    sb_pad = torch.zeros(cdiv(n, 128), l4, device="cuda")
    sb_pad[:, : k // 128] = sb
    attempts = [
        ("torch._scaled_mm blockwise 1x128/128x128 (cuBLASLt)",
         lambda: torch._scaled_mm(a, b.t(), scale_a=sa.t().contiguous().t(), scale_b=sb_pad.t(),
                                  out_dtype=torch.bfloat16)),
        ("torch._scaled_mm row-wise scales (cuBLASLt; NOT blockwise)",
         lambda: torch._scaled_mm(a, b.t(), scale_a=torch.rand(m, 1, device="cuda"),
                                  scale_b=torch.rand(1, n, device="cuda"), out_dtype=torch.bfloat16)),
    ]
    errors = []
    for name, fn in attempts:
        try:
            fn(); torch.cuda.synchronize()
            return name, time_torch(fn), errors
        except Exception as e:  # noqa: BLE001
            errors.append(f"{name}: {str(e).splitlines()[0][:200]}")
    return None, None, errors

gemm_shapes = [(2112, 7168), (24576, 1536), (7168, 16384), (4096, 7168), (7168, 2048)]
ms = [64, 128, 4096]
if QUICK:
    gemm_shapes, ms = [(2112, 7168), (7168, 16384)], [64, 4096]
for m in ms:
    for n, k in gemm_shapes:
        if QUICK and (m, n) == (64, 7168):
            continue
        flops = 2.0 * m * n * k
        j, cmd, info = ours(["gemm", "--m", str(m), "--n", str(n), "--k", str(k), "--scale-fmt", "fp32", "--out", "bf16"])
        rec = {"op": "gemm_fp8", "m": m, "n": n, "k": k, "command": cmd}
        if j is None:
            rec["error"] = info
        else:
            rec.update(ours_seconds=j["device_seconds"], ours_tflops=flops / j["device_seconds"] / 1e12, spec=j["spec"])
        if HAVE_TORCH:
            name, secs, errs = gemm_peer(m, n, k)
            rec["peer"] = name
            rec["peer_errors"] = errs
            if secs:
                rec.update(peer_seconds=secs, peer_tflops=flops / secs / 1e12)
                if "ours_seconds" in rec:
                    rec["ratio"] = secs / rec["ours_seconds"]  # > 1: anychip faster
        print(json.dumps(rec), flush=True)
        records.append(rec)

# Attention: (batch, seq_q, seq_kv, heads_q, heads_kv, dk, dv, causal)
att_shapes = [
    (1, 4096, 4096, 32, 8, 128, 128, True),   # GQA prefill
    (2, 2048, 2048, 16, 16, 128, 128, True),  # MHA prefill
    (32, 1, 4096, 32, 8, 128, 128, False),    # GQA decode
    (32, 1, 4096, 16, 1, 576, 512, False),    # MLA decode (absorbed): one KV head, Dk 576, Dv 512
]
if QUICK:
    att_shapes = att_shapes[:1] + att_shapes[3:]
for b, sq, skv, hq, hkv, dk, dv, causal in att_shapes:
    args = ["attention", "--batch", str(b), "--seq-q", str(sq), "--seq-kv", str(skv), "--heads", str(hq),
            "--kv-heads", str(hkv), "--head-dim", str(dk), "--head-dim-v", str(dv), "--dtype", "bf16"]
    if causal:
        args.append("--causal")
    j, cmd, info = ours(args)
    rec = {"op": "attention", "batch": b, "seq_q": sq, "seq_kv": skv, "heads_q": hq, "heads_kv": hkv,
           "dk": dk, "dv": dv, "causal": causal, "command": cmd}
    if j is None:
        rec["error"] = info
    else:
        rec.update(ours_seconds=j["device_seconds"], ours_tflops=j["tflops"], spec=j["spec"])
    if HAVE_TORCH:
        q = torch.randn(b, hq, sq, dk, device="cuda", dtype=torch.bfloat16)
        kk = torch.randn(b, hkv, skv, dk, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(b, hkv, skv, dv, device="cuda", dtype=torch.bfloat16)
        # SDPA's causal mask is top-left aligned: the same as anychip's bottom-right when Sq == Skv.
        fn = lambda: F.scaled_dot_product_attention(q, kk, v, is_causal=causal and sq == skv,  # noqa: E731
                                                     enable_gqa=hq != hkv)
        try:
            fn(); torch.cuda.synchronize()
            secs = time_torch(fn)
            rec.update(peer="torch.nn.functional.scaled_dot_product_attention", peer_seconds=secs)
            if "ours_seconds" in rec:
                rec["ratio"] = secs / rec["ours_seconds"]
        except Exception as e:  # noqa: BLE001
            rec["peer_errors"] = [str(e).splitlines()[0][:200]]
    print(json.dumps(rec), flush=True)
    records.append(rec)

meta = {"date": os.environ["DATE"], "gpu": os.environ["GPU"], "driver": os.environ["DRIVER"],
        "torch": torch.__version__ if HAVE_TORCH else None, "warmup": WARMUP, "repeats": REPEATS,
        "timing": "median of CUDA-event times around each launch, inputs resident (no L2 flush), both sides"}
json.dump({"meta": meta, "records": records}, open(os.path.join(RESULTS, "gpu-check.json"), "w"), indent=1)

def f(x, d=1):
    return "-" if x is None else f"{x:.{d}f}"

lines = [f"# CUDA backend on {meta['gpu']} — {meta['date']}", "",
         f"Driver {meta['driver']}, torch {meta['torch']}. Written by `tools/gpu-check.sh`; {meta['timing']};"
         f" warmup {WARMUP}, repeats {REPEATS}. ratio = peer time / anychip time (> 1: anychip faster).", "",
         "## FP8 block-scaled GEMM (1x128 x 128x128 scales, bf16 out)", "",
         "| M x N x K | anychip TFLOP/s | peer TFLOP/s | ratio | peer | anychip spec |", "|---|---|---|---|---|---|"]
for r in records:
    if r["op"] != "gemm_fp8":
        continue
    lines.append(f"| {r['m']} x {r['n']} x {r['k']} | {f(r.get('ours_tflops'))} | {f(r.get('peer_tflops'))} | "
                 f"{f(r.get('ratio'), 2)} | {r.get('peer') or '; '.join(r.get('peer_errors', [])) or '-'} | "
                 f"`{r.get('spec', r.get('error', ''))}` |")
lines += ["", "## Attention (bf16) against scaled_dot_product_attention", "",
          "| B, Sq, Skv, Hq/Hkv, Dk/Dv, causal | anychip ms | SDPA ms | ratio | anychip TFLOP/s |",
          "|---|---|---|---|---|"]
for r in records:
    if r["op"] != "attention":
        continue
    ms_ = lambda s: None if s is None else s * 1e3  # noqa: E731
    lines.append(f"| {r['batch']}, {r['seq_q']}, {r['seq_kv']}, {r['heads_q']}/{r['heads_kv']}, {r['dk']}/{r['dv']}, "
                 f"{r['causal']} | {f(ms_(r.get('ours_seconds')), 3)} | {f(ms_(r.get('peer_seconds')), 3)} | "
                 f"{f(r.get('ratio'), 2)} | {f(r.get('ours_tflops'))} |")
lines += ["", "Commands: see `command` in gpu-check.json."]
open(os.path.join(RESULTS, f"cuda-{meta['date']}.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
  note "benchmarks (exit $?): $RESULTS/cuda-$DATE.md, $RESULTS/gpu-check.json"
fi

echo
echo "== summary ($(elapsed)); results in $RESULTS"
for s in "${STATUS[@]}"; do echo "  $s"; done
