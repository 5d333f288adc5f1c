// deepseek_layer: one DeepSeek-V3 MoE decoder layer (MLA attention, 256-expert MoE with a
// shared expert, FP8 everywhere DeepSeek uses it), from a safetensors checkpoint in
// DeepSeek's FP8 layout, through prefill and absorbed-MLA decode, on any anychip device.
// README.md beside this file says what it computes, how to run it and what the checks
// guarantee.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "anychip/anychip.hpp"
#include "anychip/progress.hpp"
#include "anychip/report.hpp"
#include "anychip/safetensors.hpp"
#include "checkpoint.hpp"
#include "layer_checks.hpp"
#include "layer_config.hpp"
#include "layer_graphs.hpp"

namespace {

namespace fs = std::filesystem;
using anychip::Device;
using anychip::DType;
using anychip::Error;
using anychip::ErrorCode;
using anychip::HostTensor;
using anychip::ir::Graph;
using deepseek_layer::CheckLine;
using deepseek_layer::LayerConfig;
using deepseek_layer::NamedTensors;

struct Options {
  std::string scale = "small";
  std::optional<std::int64_t> hidden, heads, q_lora, experts, moe_inter;
  std::int64_t tokens = 0;  // 0: the scale's default
  std::string checkpoint, write_checkpoint;
  std::uint64_t seed = 1;
  std::vector<std::string> devices;
  std::string compare;
  bool timing_only = false, check = false, no_cache = false;
  int warmup = 0;
  std::string report, emit_acir;
  std::int64_t prefill_align = 128, decode_align = 8;
  std::string command_line;
};

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string sci(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return "inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

std::int64_t default_tokens(const std::string& scale) {
  if (scale == "tiny") return 16;
  if (scale == "small") return 64;
  return 4096;  // DeepSeek's prefill chunk size class
}

// The graph's inputs in order, looked up by name in `named`; the types must match.
std::vector<HostTensor> bind_inputs(const Graph& g, const NamedTensors& named) {
  std::vector<HostTensor> in;
  for (anychip::ir::ValueId v : g.inputs()) {
    const anychip::ir::Value& value = g.value(v);
    auto it = named.find(value.name);
    if (it == named.end())
      throw Error(ErrorCode::Internal,
                  "graph @" + g.name() + ": no tensor for input %" + value.name);
    if (it->second.type != value.type)
      throw Error(ErrorCode::Internal, "graph @" + g.name() + ": input %" + value.name + " is " +
                                           it->second.type.str() + ", the graph takes " +
                                           value.type.str());
    in.push_back(it->second);
  }
  return in;
}

// The activations: x as a residual stream (unit-scale values), positions 0..T-1.
NamedTensors activations(const LayerConfig& c, std::int64_t tokens, std::uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ull);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> x(static_cast<std::size_t>(tokens * c.hidden));
  for (double& v : x) v = normal(rng);
  std::vector<double> pos(static_cast<std::size_t>(tokens));
  for (std::int64_t t = 0; t < tokens; ++t)
    pos[static_cast<std::size_t>(t)] = static_cast<double>(t);
  NamedTensors a;
  a["x"] = HostTensor::encode({DType::bf16, {tokens, c.hidden}, std::nullopt}, x);
  a["pos"] = HostTensor::encode({DType::i32, {tokens}, std::nullopt}, pos);
  return a;
}

// One graph's run on one device.
struct GraphRun {
  std::vector<HostTensor> outputs;  // empty when timing only
  std::vector<anychip::KernelCheck> checks;
  anychip::ReportRun report;
  double host_seconds = 0;
};

GraphRun run_graph(const Device& device, const Graph& g, const std::vector<HostTensor>* inputs,
                   const Options& o, anychip::Progress& progress, const std::string& phase) {
  progress.show("compiling " + phase);
  anychip::CompileOptions copts;
  copts.use_cache = !o.no_cache;
  anychip::Executable exe = anychip::compile(g, device, copts);
  anychip::Stream stream = device.create_stream();
  progress.show(inputs ? "uploading " + phase + " inputs" : "allocating " + phase + " inputs");
  std::vector<anychip::Tensor> in;
  for (std::size_t i = 0; i < g.inputs().size(); ++i)
    in.push_back(inputs ? device.upload((*inputs)[i], stream)
                        : device.allocate(g.value(g.inputs()[i]).type));
  std::vector<anychip::Tensor> out = exe.allocate_outputs();
  GraphRun r;
  for (int i = 0; i <= o.warmup; ++i) {
    progress.show((i < o.warmup ? "warm-up " : "running ") + phase);
    const auto t0 = std::chrono::steady_clock::now();
    exe.run(stream, in, out);
    stream.synchronize();
    r.host_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (o.check) {
    progress.show("checking " + std::to_string(exe.kernels().size()) + " " + phase + " kernels");
    r.checks = exe.check_last_run(stream);
  }
  r.report = anychip::capture_run(exe, stream, o.check ? &r.checks : nullptr);
  r.report.note =
      std::string(o.timing_only ? "timing only, " : "") + "host " + fixed(r.host_seconds, 3) + " s";
  if (inputs)
    for (const anychip::Tensor& t : out) r.outputs.push_back(t.download(stream));
  return r;
}

void print_kernels(const std::string& title, const GraphRun& r) {
  const auto& k = r.report.kernels;
  double total = 0;
  for (double s : r.report.seconds) total += s;
  const bool sim = !r.report.counters.empty() &&
                   std::any_of(r.report.counters.begin(), r.report.counters.end(),
                               [](const auto& c) { return c.count("cycles") > 0; });
  std::printf("\n%s: %zu kernels, device %s us, host %s s\n", title.c_str(), k.size(),
              fixed(total * 1e6, 1).c_str(), fixed(r.host_seconds, 3).c_str());
  std::printf("  %-34s %11s %6s", "kernel", "time (us)", "share");
  if (sim) std::printf(" %12s %8s", "cycles", "bound");
  if (!r.checks.empty()) std::printf(" %9s %9s  %s", "rel_err", "tolerance", "check");
  std::printf("\n");
  for (std::size_t i = 0; i < k.size(); ++i) {
    const double s = r.report.seconds[i];
    std::printf("  %-34s %11s %5s%%", k[i].label.c_str(), fixed(s * 1e6, 2).c_str(),
                fixed(total > 0 ? 100 * s / total : 0, 1).c_str());
    if (sim) {
      const auto& c = r.report.counters[i];
      auto cy = c.find("cycles");
      auto b = c.find("bound");
      std::printf(" %12s %8s", cy == c.end() ? "-" : fixed(cy->second, 0).c_str(),
                  b == c.end() ? "-" : (b->second >= 0.5 ? "compute" : "memory"));
    }
    if (!r.checks.empty())
      std::printf(" %9s %9s  %s", sci(r.checks[i].rel_err).c_str(),
                  sci(r.checks[i].tolerance).c_str(), r.checks[i].ok ? "ok" : "FAIL");
    std::printf("\n");
  }
}

// Device time by op (gemm_fp8, gemm_fp8_grouped, attention, ...) for each device: the
// kernel classes a port tunes.
void print_by_op(const std::string& title,
                 const std::vector<std::pair<std::string, const GraphRun*>>& runs) {
  std::vector<std::string> ops;
  std::vector<std::map<std::string, std::pair<double, double>>> per(
      runs.size());  // op -> (s, cycles)
  for (std::size_t d = 0; d < runs.size(); ++d) {
    const anychip::ReportRun& r = runs[d].second->report;
    for (std::size_t i = 0; i < r.kernels.size(); ++i) {
      const std::string& op = r.kernels[i].op;
      if (std::find(ops.begin(), ops.end(), op) == ops.end()) ops.push_back(op);
      per[d][op].first += r.seconds[i];
      if (i < r.counters.size())
        if (auto it = r.counters[i].find("cycles"); it != r.counters[i].end())
          per[d][op].second += it->second;
    }
  }
  std::printf("\n%s: device time by op, us (and simulated cycles)\n  %-18s", title.c_str(), "op");
  for (const auto& [id, run] : runs) std::printf(" %28s", id.c_str());
  std::printf("\n");
  std::vector<double> total(runs.size(), 0), total_cycles(runs.size(), 0);
  for (const std::string& op : ops) {
    std::printf("  %-18s", op.c_str());
    for (std::size_t d = 0; d < runs.size(); ++d) {
      auto [s, cy] = per[d][op];
      total[d] += s;
      total_cycles[d] += cy;
      std::string cell = fixed(s * 1e6, 1) + (cy > 0 ? " (" + fixed(cy, 0) + ")" : "");
      std::printf(" %28s", cell.c_str());
    }
    std::printf("\n");
  }
  std::printf("  %-18s", "total");
  for (std::size_t d = 0; d < runs.size(); ++d) {
    std::string cell = fixed(total[d] * 1e6, 1) +
                       (total_cycles[d] > 0 ? " (" + fixed(total_cycles[d], 0) + ")" : "");
    std::printf(" %28s", cell.c_str());
  }
  std::printf("\n");
}

bool print_check_lines(const std::string& device, const std::vector<CheckLine>& lines) {
  bool ok = true;
  for (const CheckLine& l : lines) {
    std::printf("  %-22s %-58s %9s %9s  %s\n", device.c_str(), l.what.c_str(),
                sci(l.rel_err).c_str(), sci(l.bound).c_str(), l.ok ? "ok" : "FAIL");
    if (!l.note.empty()) std::printf("  %-22s   %s\n", "", l.note.c_str());
    ok = ok && l.ok;
  }
  return ok;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!(f << text)) throw Error(ErrorCode::IoError, path.string() + ": cannot write");
}

std::string now_utc() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

int run(Options& o) {
  LayerConfig c = deepseek_layer::preset(o.scale);
  if (o.hidden) c.hidden = *o.hidden;
  if (o.heads) c.heads = *o.heads;
  if (o.q_lora) c.q_lora = *o.q_lora;
  if (o.experts) c.experts = *o.experts;
  if (o.moe_inter) c.moe_inter = *o.moe_inter;
  deepseek_layer::validate(c);
  const std::int64_t tokens = o.tokens > 0 ? o.tokens : default_tokens(c.scale);
  if (tokens < 2)
    throw Error(ErrorCode::InvalidArgument, "--tokens must be >= 2 (decode needs a cache)");
  if (!o.compare.empty()) {
    std::stringstream ss(o.compare);
    for (std::string d; std::getline(ss, d, ',');)
      if (!d.empty()) o.devices.push_back(d);
  }
  if (o.devices.empty()) o.devices.push_back("cpu");
  if (o.timing_only && o.check)
    throw Error(ErrorCode::InvalidArgument,
                "--check needs the data; it cannot be used with --timing-only");
  if (!o.checkpoint.empty() && !o.write_checkpoint.empty())
    throw Error(ErrorCode::InvalidArgument,
                "--checkpoint and --write-checkpoint exclude each other");

  // The decode step is the prefill's last token: decoding token T-1 against the cache of
  // the first T-1 tokens must give the prefill's row T-1.
  const std::int64_t cached = tokens - 1;
  const Graph prefill = deepseek_layer::prefill_graph(c, tokens, o.prefill_align);
  const Graph decode = deepseek_layer::decode_graph(c, cached, o.decode_align);
  std::printf("DeepSeek-V3 layer %lld (MoE), scale %s: %s\n", static_cast<long long>(c.layer),
              c.scale.c_str(), c.summary().c_str());
  std::printf(
      "prefill %lld tokens (causal); decode token %lld after %lld cached (absorbed MLA, Dk %lld, "
      "Dv %lld)\n",
      static_cast<long long>(tokens), static_cast<long long>(cached),
      static_cast<long long>(cached), static_cast<long long>(c.latent_dim()),
      static_cast<long long>(c.kv_lora));
  if (!o.emit_acir.empty()) {
    fs::create_directories(o.emit_acir);
    write_text(fs::path(o.emit_acir) / "prefill.acir", anychip::ir::print(prefill));
    write_text(fs::path(o.emit_acir) / "decode.acir", anychip::ir::print(decode));
    std::printf("graphs written: %s, %s\n", (fs::path(o.emit_acir) / "prefill.acir").c_str(),
                (fs::path(o.emit_acir) / "decode.acir").c_str());
  }

  // Weights: always through the checkpoint loader (a timing-only run needs none).
  NamedTensors named;
  if (!o.timing_only) {
    fs::path file = o.checkpoint;
    std::optional<fs::path> temp_dir;
    if (file.empty()) {
      fs::path dir = o.write_checkpoint;
      if (dir.empty()) {
        temp_dir = fs::temp_directory_path() / ("deepseek_layer." + std::to_string(::getpid()));
        dir = *temp_dir;
      }
      file = dir / ("model.layers." + std::to_string(c.layer) + "." + c.scale + ".safetensors");
      anychip::Progress progress("checkpoint");
      progress.show("writing random weights");
      deepseek_layer::write_random_checkpoint(c, file, o.seed);
      progress.clear();
      if (!temp_dir)
        std::printf("checkpoint written: %s (%s bytes)\n", file.c_str(),
                    std::to_string(fs::file_size(file)).c_str());
    }
    try {
      anychip::Progress progress("checkpoint");
      progress.show("loading, stacking experts, composing the absorbed weights");
      // A .safetensors file, an index, or a directory of either (a sharded checkpoint as
      // Hugging Face ships DeepSeek-V3).
      const auto f = anychip::SafetensorsCheckpoint::open(file);
      named = deepseek_layer::load_layer_weights(c, f);
    } catch (const Error& e) {
      std::fprintf(stderr, "deepseek_layer: cannot load the checkpoint: %s: %s\n",
                   std::string(anychip::error_code_name(e.code())).c_str(), e.what());
      if (temp_dir) fs::remove_all(*temp_dir);
      return 2;
    }
    if (temp_dir) fs::remove_all(*temp_dir);
    for (auto& [name, t] : activations(c, tokens, o.seed)) named[name] = t;
  }
  const std::vector<HostTensor> prefill_in =
      o.timing_only ? std::vector<HostTensor>{} : bind_inputs(prefill, named);

  struct DeviceResult {
    std::string id;
    GraphRun prefill, decode;
  };
  std::vector<DeviceResult> results;
  std::vector<std::string> failed;
  bool checks_ok = true;
  std::vector<std::pair<std::string, std::vector<CheckLine>>> layer_checks;
  for (const std::string& id : o.devices) {
    DeviceResult dr{id, {}, {}};
    std::string phase = "opening";
    try {
      anychip::DeviceOptions dopts;
      dopts.timing_only = o.timing_only;
      if (o.timing_only && id.rfind("sim:", 0) != 0)
        throw Error(ErrorCode::InvalidArgument,
                    "--timing-only models time on simulated devices (sim:*) only, not " + id);
      Device device = Device::open(id, dopts);
      anychip::Progress progress(id);
      phase = "prefill";
      dr.prefill =
          run_graph(device, prefill, o.timing_only ? nullptr : &prefill_in, o, progress, "prefill");
      phase = "decode";
      std::vector<HostTensor> decode_in;
      if (!o.timing_only) {
        NamedTensors dn = named;
        dn["x"] = deepseek_layer::take_row(named.at("x"), cached);
        dn["pos"] = deepseek_layer::take_row(named.at("pos"), cached);
        dn["kv_cache"] = deepseek_layer::take_rows(dr.prefill.outputs[1], cached);
        decode_in = bind_inputs(decode, dn);
      }
      dr.decode =
          run_graph(device, decode, o.timing_only ? nullptr : &decode_in, o, progress, "decode");
      if (o.check) {
        phase = "checks";
        progress.show("float64 evaluation of the prefill graph");
        std::vector<CheckLine> lines = deepseek_layer::check_against_reference(
            c, prefill, prefill_in, dr.prefill.outputs, "prefill");
        progress.show("float64 evaluation of the decode graph");
        for (CheckLine& l : deepseek_layer::check_against_reference(c, decode, decode_in,
                                                                    dr.decode.outputs, "decode"))
          lines.push_back(std::move(l));
        for (CheckLine& l : deepseek_layer::check_decode_vs_prefill(
                 decode, decode_in, dr.decode.outputs, dr.prefill.outputs, cached))
          lines.push_back(std::move(l));
        layer_checks.emplace_back(id, std::move(lines));
      }
      progress.clear();
    } catch (const Error& e) {
      if (e.code() == ErrorCode::InvalidArgument) throw;
      // A device that cannot be used here is skipped, as `anychip conformance` does; one
      // that lacks an op (Unsupported) or fails counts against the run.
      const bool unavailable = e.code() == ErrorCode::Unavailable;
      std::printf("\n%s: %s: %s: %s\n", id.c_str(), unavailable ? "skipped" : phase.c_str(),
                  std::string(anychip::error_code_name(e.code())).c_str(), e.what());
      if (!unavailable) failed.push_back(id);
      continue;
    }
    print_kernels("prefill on " + id, dr.prefill);
    print_kernels("decode on " + id, dr.decode);
    for (const auto& r : {&dr.prefill, &dr.decode})
      for (const anychip::KernelCheck& k : r->checks) checks_ok = checks_ok && k.ok;
    results.push_back(std::move(dr));
  }

  if (results.size() > 1) {
    std::vector<std::pair<std::string, const GraphRun*>> pre, dec;
    for (const DeviceResult& r : results) {
      pre.emplace_back(r.id, &r.prefill);
      dec.emplace_back(r.id, &r.decode);
    }
    print_by_op("prefill", pre);
    print_by_op("decode", dec);
  }
  if (o.check && !layer_checks.empty()) {
    std::printf("\nlayer checks (rel_err = ||a - b|| / ||b||; README.md derives each bound)\n");
    std::printf("  %-22s %-58s %9s %9s  %s\n", "device", "check", "rel_err", "bound", "");
    for (const auto& [id, lines] : layer_checks)
      checks_ok = print_check_lines(id, lines) && checks_ok;
  }
  if (o.check) {
    std::size_t kernels_checked = 0;
    for (const DeviceResult& r : results)
      kernels_checked += r.prefill.checks.size() + r.decode.checks.size();
    std::printf(
        "\ncheck: %s (%zu kernels on %zu devices against the float64 reference, and the layer "
        "checks above)\n",
        checks_ok ? "passed" : "FAILED", kernels_checked, results.size());
  }

  if (!o.report.empty()) {
    anychip::Report report;
    report.title = "DeepSeek-V3 layer " + std::to_string(c.layer) + " (MoE), scale " + c.scale;
    report.subtitle = o.command_line + " — " + now_utc() + " — " + c.summary();
    anychip::ReportSection& p =
        report.add_section("prefill, " + std::to_string(tokens) +
                           " tokens, causal (MLA, FP8 GEMMs, grouped MoE GEMMs)");
    for (const DeviceResult& r : results) p.runs.push_back(r.prefill.report);
    anychip::ReportSection& d =
        report.add_section("decode, 1 token after " + std::to_string(cached) +
                           " cached (absorbed MLA: Dk 576, Dv 512)");
    for (const DeviceResult& r : results) d.runs.push_back(r.decode.report);
    anychip::write_html_report(o.report, report);
    std::printf("report written: %s\n", o.report.c_str());
  }
  if (!failed.empty()) {
    std::string list;
    for (const std::string& f : failed) list += (list.empty() ? "" : ", ") + f;
    std::printf("not run on: %s (see above)\n", list.c_str());
    return 1;
  }
  return checks_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 0; i < argc; ++i)
    o.command_line += (i ? " " : "") + std::string(i ? argv[i] : "deepseek_layer");
  CLI::App app{
      "One DeepSeek-V3 MoE decoder layer (MLA + MoE, FP8) on anychip devices: prefill and absorbed "
      "decode"};
  app.add_option("--scale", o.scale, "tiny, small or full (DeepSeek-V3's sizes)")
      ->capture_default_str();
  app.add_option("--hidden", o.hidden, "override hidden_size (a multiple of 128)");
  app.add_option("--heads", o.heads, "override num_attention_heads");
  app.add_option("--q-lora", o.q_lora, "override q_lora_rank (a multiple of 128)");
  app.add_option("--experts", o.experts, "override n_routed_experts (a multiple of the 8 groups)");
  app.add_option("--moe-inter", o.moe_inter, "override moe_intermediate_size (a multiple of 128)");
  app.add_option("--tokens", o.tokens,
                 "prefill tokens T; decode runs token T-1 against T-1 cached (default: tiny 16, "
                 "small 64, full 4096)");
  app.add_option("--checkpoint", o.checkpoint,
                 "load this checkpoint (DeepSeek FP8 layout, Hugging Face names): a .safetensors "
                 "file, a model.safetensors.index.json with its shards, or a directory holding "
                 "either");
  app.add_option("--write-checkpoint", o.write_checkpoint,
                 "write a random checkpoint into this directory, then load it");
  app.add_option("--seed", o.seed, "seed of the random weights and activations")
      ->capture_default_str();
  app.add_option("--device", o.devices, "device to run on (repeatable; default cpu)");
  app.add_option("--compare", o.compare, "more devices, comma-separated (shown side by side)");
  app.add_flag("--timing-only", o.timing_only,
               "sim:* devices: model time without data (full scale)");
  app.add_flag(
      "--check", o.check,
      "check every kernel and the layer against the float64 reference, and decode against prefill");
  app.add_option("--report", o.report,
                 "write an HTML report (prefill and decode, devices side by side)");
  app.add_option("--emit-acir", o.emit_acir,
                 "write prefill.acir and decode.acir into this directory");
  app.add_option("--warmup", o.warmup, "runs before the measured one")->capture_default_str();
  app.add_option("--prefill-align", o.prefill_align, "grouped GEMM row alignment in prefill")
      ->capture_default_str();
  app.add_option("--decode-align", o.decode_align, "grouped GEMM row alignment in decode")
      ->capture_default_str();
  app.add_flag("--no-cache", o.no_cache, "do not use the on-disk kernel cache");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    return run(o);
  } catch (const Error& e) {
    std::fprintf(stderr, "deepseek_layer: %s: %s\n",
                 std::string(anychip::error_code_name(e.code())).c_str(), e.what());
    return e.code() == ErrorCode::InvalidArgument ? 2 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deepseek_layer: %s\n", e.what());
    return 1;
  }
}
