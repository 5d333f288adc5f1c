// Chip descriptions: validation of the JSON (every message names the file and the key),
// the shipped presets, and the derived figures.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "anychip/error.hpp"
#include "simulator/chip.hpp"

namespace anychip::sim {
namespace {

using Json = nlohmann::json;

// The tiny preset as JSON, to mutate.
Json tiny_json() { return Json::parse(std::string(preset_json("tiny"))); }

std::string error_of(const Json& j, bool require_sources = false) {
  try {
    parse_chip(j.dump(), "test.json", require_sources);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ChipPresets, ShipTheFourNamedChips) {
  const std::vector<std::string> names = preset_names();
  for (const char* want : {"h800", "npu-fp32scale", "npu-ue8m0", "tiny"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
}

TEST(ChipPresets, EveryPresetParsesWithASourceForEveryValue) {
  for (const std::string& name : preset_names()) {
    SCOPED_TRACE(name);
    const ChipDesc chip = parse_chip(preset_json(name), name + ".json", /*require_sources=*/true);
    EXPECT_EQ(chip.name, name);
    EXPECT_FALSE(chip.description.empty());
    for (const auto& [key, text] : chip.sources) EXPECT_FALSE(text.empty()) << key;
  }
}

TEST(ChipPresets, H800MatchesItsDatasheet) {
  const ChipDesc h800 = load_chip("h800");
  EXPECT_EQ(h800.cores, 132);
  EXPECT_NEAR(h800.peak_flops(DType::f8e4m3) / 1e12, 1979, 2);
  EXPECT_NEAR(h800.peak_flops(DType::bf16) / 1e12, 989, 1);
  EXPECT_DOUBLE_EQ(h800.hbm_bytes_per_s, 3.35e12);
  EXPECT_EQ(h800.l2_bytes, 50ll << 20);
  EXPECT_EQ(h800.core.scratchpad_bytes, 228 * 1024);
  EXPECT_FALSE(h800.core.matrix.native_ue8m0_scales);
}

TEST(ChipPresets, NpuPairDiffersOnlyInNativeScales) {
  ChipDesc native = load_chip("npu-ue8m0"), fp32 = load_chip("npu-fp32scale");
  EXPECT_TRUE(native.core.matrix.native_ue8m0_scales);
  EXPECT_FALSE(fp32.core.matrix.native_ue8m0_scales);
  EXPECT_NEAR(native.peak_flops(DType::f8e4m3) / 1e15, 1.0, 0.06);
  EXPECT_DOUBLE_EQ(native.hbm_bytes_per_s, 1.6e12);
  fp32.core.matrix.native_ue8m0_scales = true;
  fp32.name = native.name;
  fp32.description = native.description;
  fp32.sources = native.sources;
  EXPECT_EQ(chip_to_json(fp32), chip_to_json(native));
}

TEST(ChipJson, RoundTripsThroughChipToJson) {
  for (const std::string& name : preset_names()) {
    const ChipDesc chip = load_chip(name);
    const ChipDesc again = parse_chip(chip_to_json(chip), "again.json", true);
    EXPECT_EQ(chip_to_json(again), chip_to_json(chip)) << name;
  }
}

TEST(ChipJson, RejectsAnUnknownKeyNamingItsPath) {
  Json j = tiny_json();
  j["core"]["matrix"]["latency_cycles"] = 3;
  EXPECT_EQ(error_of(j), "test.json: key core.matrix.latency_cycles: unknown key");
  Json top = tiny_json();
  top["clock_mhz"] = 1000;
  EXPECT_EQ(error_of(top), "test.json: key clock_mhz: unknown key");
}

TEST(ChipJson, RejectsAMissingKeyNamingItsPath) {
  Json j = tiny_json();
  j["core"]["dma"].erase("bytes_per_cycle");
  EXPECT_EQ(error_of(j), "test.json: key core.dma.bytes_per_cycle: missing");
  Json n = tiny_json();
  n.erase("name");
  EXPECT_EQ(error_of(n), "test.json: key name: missing");
}

TEST(ChipJson, RejectsAWrongTypeNamingTheKeyAndTheValue) {
  Json j = tiny_json();
  j["core"]["matrix"]["fp8_flops_per_cycle"] = "1e3";
  EXPECT_EQ(error_of(j), "test.json: key core.matrix.fp8_flops_per_cycle: expected a number, got \"1e3\"");
  Json i = tiny_json();
  i["cores"] = 2.5;
  EXPECT_EQ(error_of(i), "test.json: key cores: expected an integer, got 2.5");
  Json b = tiny_json();
  b["core"]["matrix"]["native_ue8m0_scales"] = 1;
  EXPECT_EQ(error_of(b), "test.json: key core.matrix.native_ue8m0_scales: expected true or false, got 1");
  Json o = tiny_json();
  o["core"]["vector"] = 16;
  EXPECT_EQ(error_of(o), "test.json: key core.vector: expected an object, got 16");
}

TEST(ChipJson, RejectsValuesOutOfBounds) {
  Json j = tiny_json();
  j["cores"] = 0;
  EXPECT_EQ(error_of(j), "test.json: key cores: must be at least 1, got 0");
  Json h = tiny_json();
  h["hbm_bytes_per_s"] = -1;
  EXPECT_EQ(error_of(h), "test.json: key hbm_bytes_per_s: must be positive, got -1");
}

TEST(ChipJson, AcceptsIntegersWrittenAsExactFloats) {
  Json j = tiny_json();
  j["hbm_bytes"] = 1.073741824e9;
  EXPECT_EQ(parse_chip(j.dump(), "test.json").hbm_bytes, 1073741824);
}

TEST(ChipJson, PresetsNeedASourceForEveryValue) {
  Json j = tiny_json();
  j["sources"].erase("core.vector.exp_cycles");
  EXPECT_NO_THROW(parse_chip(j.dump(), "test.json", false));
  const std::string message = error_of(j, true);
  EXPECT_NE(message.find("test.json: key core.vector.exp_cycles: has no source"), std::string::npos) << message;
}

TEST(ChipJson, RejectsASourceForAKeyThatDoesNotExist) {
  Json j = tiny_json();
  j["sources"]["core.matrix.bogus"] = "assumption: none";
  EXPECT_EQ(error_of(j), "test.json: key sources.core.matrix.bogus: names no number of the chip description");
  Json e = tiny_json();
  e["sources"]["clock_hz"] = "";
  EXPECT_NE(error_of(e).find("key sources.clock_hz: expected a non-empty string"), std::string::npos);
}

TEST(ChipJson, RejectsMalformedJsonNamingTheFile) {
  try {
    parse_chip("{\"name\": ", "broken.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ParseError);
    EXPECT_EQ(std::string(e.what()).rfind("broken.json: invalid JSON", 0), 0u) << e.what();
  }
}

TEST(LoadChip, ReadsAFileWhenNoPresetHasTheName) {
  Json j = tiny_json();
  j["name"] = "from-file";
  j["core"]["matrix"]["tile_m"] = 99;
  const std::string path = ::testing::TempDir() + "/anychip_chip_test.json";
  {
    std::ofstream out(path);
    out << j.dump(2);
  }
  const ChipDesc chip = load_chip(path);
  EXPECT_EQ(chip.name, "from-file");
  EXPECT_EQ(chip.core.matrix.tile_m, 99);
  j["core"]["matrix"]["tile_mm"] = 1;
  {
    std::ofstream out(path);
    out << j.dump(2);
  }
  try {
    load_chip(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path + ": key core.matrix.tile_mm: unknown key");
  }
  std::remove(path.c_str());
}

TEST(LoadChip, NamesThePresetsWhenNothingMatches) {
  try {
    load_chip("no-such-chip");
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("no-such-chip"), std::string::npos);
    EXPECT_NE(m.find("npu-ue8m0"), std::string::npos) << m;
  }
}

TEST(PeakFlops, RejectsANonMatrixDtype) { EXPECT_THROW(load_chip("tiny").peak_flops(DType::ue8m0), Error); }

}  // namespace
}  // namespace anychip::sim
