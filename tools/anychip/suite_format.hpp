// The files of a regression suite (docs/suites.md): the suite (cases x devices) and its
// cycle baseline (device x case -> cycles). Both are validated like a chip description:
// an unknown key, a missing key, a value of the wrong type or an unknown op is a
// SuiteError naming the file and the key path, e.g.
//   suites/x.json: key cases[3].attrs.causal: expected a boolean, got "yes" (case "mha")
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "anychip/ir.hpp"

namespace anychip::cli::suite {

// A suite or baseline file that cannot be used, or a file that cannot be read or written:
// no verdict can be given (exit code 2).
class SuiteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Case {
  std::string id;    // unique in its suite; seeds the random inputs
  std::string path;  // "cases[3]", where it sits in the suite file
  std::string op;
  ir::Graph graph;  // one op over graph inputs named after its operands, verified
  std::optional<double> max_rel_err;  // replaces the library's per-op tolerance when set
  double cycle_rel_tol = 0;           // allowed relative change of cycles vs the baseline
  std::vector<std::string> devices;   // the suite's devices unless the case names its own
};

struct Suite {
  std::string file;  // as given on the command line
  std::string name;
  std::vector<std::string> devices;
  double cycle_rel_tol = 0;
  std::vector<Case> cases;
  // Every device string the suite uses, in order of first use, with the key path of that use.
  std::vector<std::pair<std::string, std::string>> device_uses;
};

// One case on one device: the unit of sharding, reporting and baselines. `index` is the
// position in the suite's full list (cases in file order, each case's devices in order).
struct Pair {
  std::size_t index = 0;
  const Case* c = nullptr;
  std::string device;
};

Suite load_suite(const std::string& path);
std::vector<Pair> all_pairs(const Suite& suite);

struct Baseline {
  std::string suite;                                                     // the suite's name
  std::map<std::string, std::map<std::string, std::uint64_t>> cycles;  // device -> case -> cycles

  std::optional<std::uint64_t> find(const std::string& device, const std::string& case_id) const;
};

// Reads a baseline and checks it against the suite: its "suite" must be the suite's
// name, and every entry must be a (device, case) pair the suite runs. With drop_stale,
// such entries are dropped and described in *dropped instead (for --update-baseline).
Baseline load_baseline(const std::string& path, const Suite& suite, bool drop_stale = false,
                       std::vector<std::string>* dropped = nullptr);
std::string baseline_json(const Baseline& baseline);

// ----- shared by the suite files and the results files -----

std::string read_text_file(const std::string& path);
// Writes a temporary file in the same directory, then renames it over `path`, so that a
// reader sees the old file or the new one, never a part. Throws SuiteError.
void write_file_atomically(const std::string& path, const std::string& text);

// JSON text parsed strictly: a duplicate key in an object is an error naming its path.
nlohmann::json parse_json_strictly(const std::string& text, const std::string& file);

// Reads JSON values and reports what is wrong as "FILE: key PATH: message".
class JsonReader {
 public:
  explicit JsonReader(std::string file) : file_(std::move(file)) {}

  // Text appended to every message, e.g. " (case \"mha\")"; "" for none.
  void set_context(std::string context) { context_ = std::move(context); }

  [[noreturn]] void fail(const std::string& path, const std::string& message) const;

  // `j` must be an object holding every required key and no key outside required+optional.
  void expect_object(const nlohmann::json& j, const std::string& path,
                     std::initializer_list<std::string_view> required,
                     std::initializer_list<std::string_view> optional = {}) const;
  const nlohmann::json& array(const nlohmann::json& j, const std::string& path) const;
  std::string string(const nlohmann::json& j, const std::string& path) const;
  bool boolean(const nlohmann::json& j, const std::string& path) const;
  double number(const nlohmann::json& j, const std::string& path) const;  // finite
  std::int64_t integer(const nlohmann::json& j, const std::string& path) const;
  std::uint64_t unsigned_integer(const nlohmann::json& j, const std::string& path) const;  // >= 0

  // "a.b", or a["sim:x"] when the key is not a plain word; "b" at the top level.
  static std::string key_path(const std::string& path, std::string_view key);
  static std::string index_path(const std::string& path, std::size_t i);

 private:
  [[noreturn]] void wrong_type(const nlohmann::json& j, const std::string& path,
                               const char* expected) const;
  std::string file_;
  std::string context_;
};

}  // namespace anychip::cli::suite
