// Shared pieces of the `anychip` command: running a graph on a device and reporting it.
// The command uses the public API (include/anychip) only.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anychip/anychip.hpp"

namespace anychip::cli {

struct RunOptions {
  std::string device = "cpu";
  bool check = false;
  bool json = false;
  int warmup = -1;   // -1: 1, or 0 on simulated devices (their time is deterministic)
  int repeats = -1;  // -1: 5, or 1 on simulated devices
  std::uint64_t seed = 1;
  bool no_cache = false;
  bool no_data = false;     // simulated devices: timing only
  std::string trace_path;   // write a Chrome trace of the last run here
};

struct KernelRow {
  KernelInfo info;
  double seconds = 0;  // median over repeats
  std::map<std::string, double> counters;
  std::optional<KernelCheck> check;
};

struct RunResult {
  std::string device;
  DeviceInfo info;
  std::vector<KernelRow> kernels;
  double device_seconds = 0;  // median over repeats of the sum over kernels
  double host_seconds = 0;    // median over repeats of run + synchronize, host clock
  int repeats = 0;
  CacheStats cache;
  bool ok = true;
};

// Compiles and runs `graph` on opt.device with random inputs (seeded), times it, and
// checks it when asked. Throws anychip::Error.
RunResult execute(const ir::Graph& graph, const RunOptions& opt);

nlohmann::json kernel_json(const KernelRow& k);
void print_table(const std::string& title, const RunResult& r);
// Several devices side by side: one row per kernel, time and bound per device.
void print_comparison(const std::vector<RunResult>& runs);

// One-op graphs for `bench` and `emit`, from shape flags.
struct OpFlags {
  std::string op = "gemm_fp8";
  std::int64_t m = 0, n = 0, k = 0;
  std::string scale_fmt = "ue8m0";
  std::string out = "bf16";
  std::int64_t batch = 1, heads = 1, kv_heads = 0, seq_q = 0, seq_kv = 0, head_dim = 0, head_dim_v = 0;
  bool causal = false;
  std::string dtype = "bf16";
};
ir::Graph op_graph(const OpFlags& f);
nlohmann::json op_shape_json(const OpFlags& f);

DType parse_dtype_flag(const std::string& s, const char* flag);
std::string fixed(double v, int digits);

}  // namespace anychip::cli
