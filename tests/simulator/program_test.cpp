// The tile ISA's helpers: pipes, the readable text of programs, and instruction costs.
#include <gtest/gtest.h>

#include "simulator/chip.hpp"
#include "simulator/engine.hpp"
#include "simulator/program.hpp"

namespace anychip::sim {
namespace {

Load load_a() { return Load{Region{Addr{Space::Hbm, 0x10000}, 128, 128, 7168}, Addr{Space::Spm, 0}}; }

Mma scaled_mma() {
  Mma m;
  m.a = {Space::Spm, 0};
  m.b = {Space::Spm, 0x4000};
  m.acc = {Space::Acc, 0};
  m.m = m.n = m.k = 128;
  m.scaled = true;
  m.scale_a = {{Space::Spm, 0x8000}, DType::ue8m0};
  m.scale_b = {{Space::Spm, 0x8080}, DType::ue8m0};
  return m;
}

TEST(Program, EachInstructionRunsOnItsPipe) {
  EXPECT_EQ(pipe_of(load_a()), Pipe::DmaIn);
  EXPECT_EQ(pipe_of(Store{}), Pipe::DmaOut);
  EXPECT_EQ(pipe_of(Mma{}), Pipe::Matrix);
  EXPECT_EQ(pipe_of(Vec{}), Pipe::Vector);
  EXPECT_EQ(pipe_of(Signal{Pipe::DmaOut, 1}), Pipe::DmaOut);
  EXPECT_EQ(pipe_of(Wait{Pipe::Vector, 2}), Pipe::Vector);
  EXPECT_EQ(pipe_name(Pipe::DmaIn), "dma_in");
  EXPECT_EQ(pipe_name(Pipe::DmaOut), "dma_out");
}

TEST(ProgramText, PrintsOneInstructionPerLineWithItsPipe) {
  Program p;
  p.instrs.push_back(load_a());
  p.instrs.push_back(Signal{Pipe::DmaIn, 0});
  p.instrs.push_back(Wait{Pipe::Matrix, 0});
  p.instrs.push_back(scaled_mma());
  p.instrs.push_back(Wait{Pipe::Vector, 1});
  Store st{Addr{Space::Acc, 0}, Region{Addr{Space::Hbm, 0x200000}, 128, 512, 28672}};
  p.instrs.push_back(st);
  EXPECT_EQ(to_text(p),
            "dma_in  load spm[0x0] <- hbm[0x10000 + r*7168] 128x128B\n"
            "dma_in  signal f0\n"
            "matrix  wait f0\n"
            "matrix  mma acc[0x0] += spm[0x0] x spm[0x4000]^T 128x128x128 e4m3 scaled(spm[0x8000] ue8m0, "
            "spm[0x8080] ue8m0)\n"
            "vector  wait f1\n"
            "dma_out store hbm[0x200000 + r*28672] <- acc[0x0] 128x512B\n");
}

TEST(ProgramText, NamesEveryVectorOp) {
  for (VecOp op : {VecOp::Convert, VecOp::Add, VecOp::ScaleAccumulate, VecOp::RowScale, VecOp::RowDivide,
                   VecOp::SiluMul, VecOp::RmsNorm, VecOp::Quantize, VecOp::Dequantize, VecOp::SoftmaxStep}) {
    Vec v;
    v.op = op;
    v.rows = 4;
    v.cols = 128;
    const std::string text = to_text(Instr{v});
    EXPECT_EQ(text.rfind("vector  ", 0), 0u) << text;
    EXPECT_EQ(text.find('?'), std::string::npos) << text;
    EXPECT_NE(text.find("4x128"), std::string::npos) << text;
  }
  Vec s;
  s.op = VecOp::SoftmaxStep;
  s.rows = 64;
  s.cols = 64;
  s.dtype_out = DType::bf16;
  s.softmax.causal = true;
  s.softmax.diag = 3;
  EXPECT_NE(to_text(Instr{s}).find("causal q0=0 k0=0 diag=3"), std::string::npos) << to_text(Instr{s});
}

TEST(InstructionCost, MmaPaysForItsPaddedTileAndItsIssue) {
  const ChipDesc tiny = load_chip("tiny");  // tiles 16x16x32, 1024 FP8 FLOP/clk, issue 4
  Mma m = scaled_mma();
  m.scaled = false;
  EXPECT_DOUBLE_EQ(instruction_cycles(tiny, m), 2.0 * 128 * 128 * 128 / 1024 + 4);
  m.m = 17;  // padded to 32 rows
  EXPECT_DOUBLE_EQ(instruction_cycles(tiny, m), 2.0 * 32 * 128 * 128 / 1024 + 4);
  m.a_dtype = m.b_dtype = DType::bf16;
  EXPECT_DOUBLE_EQ(instruction_cycles(tiny, m), 2.0 * 32 * 128 * 128 / 512 + 4);
  m.b_dtype = DType::f8e4m3;  // the slower operand decides
  EXPECT_DOUBLE_EQ(instruction_cycles(tiny, m), 2.0 * 32 * 128 * 128 / 512 + 4);
}

TEST(InstructionCost, VectorOpFollowsItsPrimitiveMix) {
  const ChipDesc tiny = load_chip("tiny");  // 16 lanes, exp and div 4 cycles, the rest 1, issue 2
  Vec v;
  v.op = VecOp::SoftmaxStep;
  v.rows = 8;
  v.cols = 32;
  v.dtype_out = DType::bf16;
  const VectorMix mix = vector_cost(v);
  EXPECT_EQ(mix.max, 1);
  EXPECT_EQ(mix.exp, 1);
  EXPECT_EQ(mix.convert, 1);
  // 256 elements = 16 vectors of 16 lanes, each max + fma + exp + add + convert = 1+1+4+1+1.
  EXPECT_DOUBLE_EQ(instruction_cycles(tiny, v), 16 * 8.0 + 2);
  v.op = VecOp::Convert;
  EXPECT_DOUBLE_EQ(instruction_cycles(tiny, v), 16 * 1.0 + 2);
}

TEST(InstructionCost, DmaIsIssuePlusBytesAtTheCoreRate) {
  const ChipDesc tiny = load_chip("tiny");  // 32 B/clk, issue 8
  EXPECT_DOUBLE_EQ(instruction_cycles(tiny, load_a()), 8 + 128.0 * 128 / 32);
  EXPECT_DOUBLE_EQ(instruction_cycles(tiny, Signal{Pipe::Matrix, 0}), 0);
}

}  // namespace
}  // namespace anychip::sim
