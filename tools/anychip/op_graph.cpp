// One-op graphs built from the shape flags of `bench` and `emit`.
#include "tools/anychip/cli.hpp"

namespace anychip::cli {
namespace {

void require(bool ok, const std::string& op, const char* flags) {
  if (!ok) throw Error(ErrorCode::InvalidArgument, op + " needs " + flags);
}

TensorType plain(DType d, Shape s) { return {d, std::move(s), std::nullopt}; }

}  // namespace

ir::Graph op_graph(const OpFlags& f) {
  ir::Graph g("bench_" + f.op);
  const DType scale = f.scale_fmt == "ue8m0" ? DType::ue8m0 : DType::f32;
  const DType dtype = parse_dtype_flag(f.dtype, "--dtype");
  auto op = ir::op_from_name(f.op);
  if (!op) throw Error(ErrorCode::InvalidArgument, "--op: unknown op '" + f.op + "'");
  switch (*op) {
    case ir::OpKind::gemm_fp8: {
      require(f.m > 0 && f.n > 0 && f.k > 0, f.op, "--m, --n and --k");
      auto a = g.input("a", {DType::f8e4m3, {f.m, f.k}, ScaleLayout{kActivationBlock, scale}});
      auto b = g.input("b", {DType::f8e4m3, {f.n, f.k}, ScaleLayout{kWeightBlock, scale}});
      g.output(g.gemm_fp8(a, b, parse_dtype_flag(f.out, "--out"), "d"));
      break;
    }
    case ir::OpKind::gemm: {
      require(f.m > 0 && f.n > 0 && f.k > 0, f.op, "--m, --n and --k");
      auto a = g.input("a", plain(dtype, {f.m, f.k}));
      auto b = g.input("b", plain(dtype, {f.n, f.k}));
      g.output(g.gemm(a, b, parse_dtype_flag(f.out, "--out"), "d"));
      break;
    }
    case ir::OpKind::attention: {
      require(f.heads > 0 && f.seq_q > 0 && f.seq_kv > 0 && f.head_dim > 0, f.op,
              "--heads, --seq-q, --seq-kv and --head-dim");
      const std::int64_t hkv = f.kv_heads > 0 ? f.kv_heads : f.heads;
      const std::int64_t dv = f.head_dim_v > 0 ? f.head_dim_v : f.head_dim;
      auto q = g.input("q", plain(dtype, {f.batch, f.seq_q, f.heads, f.head_dim}));
      auto k = g.input("k", plain(dtype, {f.batch, f.seq_kv, hkv, f.head_dim}));
      auto v = g.input("v", plain(dtype, {f.batch, f.seq_kv, hkv, dv}));
      g.output(g.attention(q, k, v, f.causal, std::nullopt, "o"));
      break;
    }
    case ir::OpKind::rmsnorm:
      require(f.m > 0 && f.n > 0, f.op, "--m (rows) and --n (dim)");
      g.output(g.rmsnorm(g.input("x", plain(dtype, {f.m, f.n})), g.input("w", plain(DType::f32, {f.n})), 1e-6, "y"));
      break;
    case ir::OpKind::silu_mul:
      require(f.m > 0 && f.n > 0, f.op, "--m (rows) and --n (output dim)");
      g.output(g.silu_mul(g.input("x", plain(dtype, {f.m, 2 * f.n})), "y"));
      break;
    case ir::OpKind::add:
      require(f.m > 0 && f.n > 0, f.op, "--m and --n");
      g.output(g.add(g.input("a", plain(dtype, {f.m, f.n})), g.input("b", plain(dtype, {f.m, f.n})), "y"));
      break;
    case ir::OpKind::quantize_fp8:
      require(f.m > 0 && f.n > 0, f.op, "--m and --n");
      g.output(g.quantize_fp8(g.input("x", plain(dtype, {f.m, f.n})), kActivationBlock, scale, DType::f8e4m3, "q"));
      break;
    case ir::OpKind::dequantize:
      require(f.m > 0 && f.n > 0, f.op, "--m and --n");
      g.output(g.dequantize(g.input("x", {DType::f8e4m3, {f.m, f.n}, ScaleLayout{kActivationBlock, scale}}),
                            parse_dtype_flag(f.out, "--out"), "y"));
      break;
    case ir::OpKind::reshape:
      throw Error(ErrorCode::InvalidArgument, "--op reshape is a view: it has no kernel");
    case ir::OpKind::rope:
    case ir::OpKind::slice:
    case ir::OpKind::concat:
    case ir::OpKind::moe_topk:
    case ir::OpKind::moe_weights:
    case ir::OpKind::moe_plan:
    case ir::OpKind::moe_gather:
    case ir::OpKind::gemm_fp8_grouped:
    case ir::OpKind::moe_combine:
      // Their index operands (positions, experts, plans) must hold valid values, which
      // random inputs from shape flags do not: they come from a graph.
      throw Error(ErrorCode::InvalidArgument, "--op " + f.op +
                                                  " takes index operands that shape flags cannot describe; "
                                                  "write the graph in a .acir file (emit --graph FILE)");
  }
  return g;
}

nlohmann::json op_shape_json(const OpFlags& f) {
  if (f.op == "attention")
    return {{"batch", f.batch}, {"heads", f.heads}, {"kv_heads", f.kv_heads > 0 ? f.kv_heads : f.heads},
            {"seq_q", f.seq_q}, {"seq_kv", f.seq_kv}, {"head_dim", f.head_dim},
            {"head_dim_v", f.head_dim_v > 0 ? f.head_dim_v : f.head_dim}, {"causal", f.causal}, {"dtype", f.dtype}};
  nlohmann::json j = {{"m", f.m}, {"n", f.n}};
  if (f.op == "gemm_fp8" || f.op == "gemm") j["k"] = f.k;
  if (f.op == "gemm_fp8") j["scale_fmt"] = f.scale_fmt == "ue8m0" ? "ue8m0" : "fp32";
  if (f.op == "gemm_fp8" || f.op == "gemm" || f.op == "dequantize")
    j["out"] = std::string(dtype_name(parse_dtype_flag(f.out, "--out")));
  return j;
}

}  // namespace anychip::cli
