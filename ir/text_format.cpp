// The .acir text format.
//
//   graph @name {
//     %x: bf16[64, 512] = input
//     %wq: f8e4m3[512, 512] scaled<128x128, ue8m0> = input
//     %h: bf16[64, 512] = rmsnorm(%x, %w) {eps = 1e-06}
//     return %y
//   }
//
// '#' starts a comment that runs to the end of the line. The result type of an op may be
// left out when parsing (it is inferred); when given it must equal the inferred type.
// print() always writes it, and every attribute, in op-table order.
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include "ir/attr_text.hpp"
#include "ir/type_rules.hpp"

namespace anychip::ir {
namespace detail {

std::string_view attr_kind_name(AttrKind kind) {
  switch (kind) {
    case AttrKind::Int: return "an integer";
    case AttrKind::Float: return "a number";
    case AttrKind::Bool: return "true or false";
    case AttrKind::Dtype: return "a dtype";
    case AttrKind::Block: return "a block shape like 1x128";
    case AttrKind::Shape: return "a shape like [1, 64]";
  }
  return "?";
}

}  // namespace detail

namespace {

// A cursor over the text that knows its line and column.
class Cursor {
 public:
  Cursor(std::string_view text, std::string_view file) : text_(text), file_(file) {}

  [[noreturn]] void fail(const std::string& message) const { fail_at(pos_, message); }
  [[noreturn]] void fail_at(std::size_t pos, const std::string& message,
                            ErrorCode code = ErrorCode::ParseError) const {
    throw Error(code, location(pos) + ": " + message);
  }
  std::string location(std::size_t pos) const {
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i < pos && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return std::string(file_) + ":" + std::to_string(line) + ":" + std::to_string(col);
  }

  // Skips spaces, tabs and comments; stops at a newline unless `newlines`.
  void skip(bool newlines = true) {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }
  bool at_end() {
    skip();
    return pos_ >= text_.size();
  }
  char peek() {
    skip();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }
  bool accept(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c, std::string_view context) {
    if (!accept(c)) {
      char got = peek();
      fail(std::string("expected '") + c + "' " + std::string(context) + ", found " +
           (got ? std::string("'") + got + "'" : std::string("end of file")));
    }
  }
  // A word: letters, digits, '_' and '.'.
  std::string_view word() {
    skip();
    std::size_t start = pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_' ||
            text_[pos_] == '.'))
      ++pos_;
    return text_.substr(start, pos_ - start);
  }
  std::string_view expect_word(std::string_view what) {
    std::size_t at = (skip(), pos_);
    std::string_view w = word();
    if (w.empty()) fail_at(at, "expected " + std::string(what));
    return w;
  }
  // A number token: sign, digits, '.', exponent, letters (inf, nan).
  std::string_view number_text() {
    skip();
    std::size_t start = pos_;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      bool exp_sign = (c == '-' || c == '+') && pos_ > start &&
                      (text_[pos_ - 1] == 'e' || text_[pos_ - 1] == 'E');
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || exp_sign ||
          ((c == '-' || c == '+') && pos_ == start))
        ++pos_;
      else
        break;
    }
    return text_.substr(start, pos_ - start);
  }
  std::int64_t integer(std::string_view what) {
    std::size_t at = (skip(), pos_);
    std::size_t start = pos_;
    if (pos_ < text_.size() && text_[pos_] == '-') ++pos_;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(text_.data() + start, text_.data() + pos_, v);
    if (ec != std::errc() || p != text_.data() + pos_ || pos_ == start)
      fail_at(at, "expected " + std::string(what));
    return v;
  }
  std::size_t pos() {
    skip();
    return pos_;
  }

 private:
  std::string_view text_;
  std::string_view file_;
  std::size_t pos_ = 0;
};

DType parse_dtype(Cursor& in) {
  std::size_t at = in.pos();
  std::string_view w = in.word();
  auto d = dtype_from_name(w);
  if (!d) in.fail_at(at, "unknown dtype '" + std::string(w) + "' (f32, bf16, f16, f8e4m3, f8e5m2, ue8m0, i32)");
  return *d;
}

BlockShape parse_block(Cursor& in) {
  BlockShape b;
  const std::size_t at = in.pos();
  b.rows = in.integer("a block shape like 1x128");
  std::string_view rest = in.word();  // "x128"
  std::int64_t cols = 0;
  if (rest.size() < 2 || rest[0] != 'x' ||
      std::from_chars(rest.data() + 1, rest.data() + rest.size(), cols).ptr != rest.data() + rest.size())
    in.fail_at(at, "expected a block shape like 1x128");
  b.cols = cols;
  return b;
}

Shape parse_shape(Cursor& in) {
  Shape s;
  in.expect('[', "to open a shape");
  if (!in.accept(']')) {
    do s.push_back(in.integer("a dimension")); while (in.accept(','));
    in.expect(']', "to close the shape");
  }
  return s;
}

TensorType parse_type(Cursor& in) {
  TensorType t;
  t.dtype = parse_dtype(in);
  t.shape = parse_shape(in);
  std::size_t at = in.pos();
  if (in.peek() == 's') {
    if (in.word() != "scaled") in.fail_at(at, "expected 'scaled<...>' or '='");
    in.expect('<', "after 'scaled'");
    ScaleLayout layout;
    layout.block = parse_block(in);
    in.expect(',', "between the scale block and the scale dtype");
    layout.dtype = parse_dtype(in);
    in.expect('>', "to close scaled<...>");
    t.scale = layout;
  }
  return t;
}

AttrValue parse_attr(Cursor& in, AttrKind kind) {
  std::size_t at = in.pos();
  switch (kind) {
    case AttrKind::Int: return in.integer("an integer");
    case AttrKind::Float: {
      std::string_view t = in.number_text();
      double v = 0;
      auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
      if (t.empty() || ec != std::errc() || p != t.data() + t.size())
        in.fail_at(at, "expected a number, found '" + std::string(t) + "'");
      return v;
    }
    case AttrKind::Bool: {
      std::string_view w = in.word();
      if (w == "true") return true;
      if (w == "false") return false;
      in.fail_at(at, "expected true or false, found '" + std::string(w) + "'");
    }
    case AttrKind::Dtype: return parse_dtype(in);
    case AttrKind::Block: return parse_block(in);
    case AttrKind::Shape: return parse_shape(in);
  }
  in.fail_at(at, "bad attribute kind");
}

std::string format_double(double v) {
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, p);
}

ValueId parse_operand(Cursor& in, const Graph& g) {
  in.expect('%', "before an operand");
  std::size_t at = in.pos() - 1;
  std::string_view name = in.word();
  auto v = g.find(name);
  if (!v) in.fail_at(at, "%" + std::string(name) + " is not defined (values are defined before use)");
  return *v;
}

void parse_statement(Cursor& in, Graph& g) {
  std::size_t line_start = in.pos();
  in.expect('%', "to start a statement (%name: type = ...) or 'return'");
  std::string name(in.expect_word("a value name after '%'"));
  std::optional<TensorType> declared;
  if (in.accept(':')) declared = parse_type(in);
  in.expect('=', "after the value name");
  std::size_t op_at = in.pos();
  std::string_view opname = in.expect_word("an op name or 'input'");
  if (opname == "input") {
    if (!declared) in.fail_at(op_at, "input %" + name + " needs a type: %" + name + ": TYPE = input");
    try {
      g.input(name, *declared);
    } catch (const Error& e) {
      in.fail_at(line_start, e.what(), e.code());
    }
    return;
  }
  auto op = op_from_name(opname);
  if (!op) {
    std::string ops;
    for (const OpInfo& o : all_ops()) ops += (ops.empty() ? "" : ", ") + std::string(o.name);
    in.fail_at(op_at, "unknown op '" + std::string(opname) + "' (ops: " + ops + ")");
  }
  const OpInfo& info = op_info(*op);
  std::vector<ValueId> operands;
  in.expect('(', "after the op name");
  if (!in.accept(')')) {
    do operands.push_back(parse_operand(in, g)); while (in.accept(','));
    in.expect(')', "to close the operand list");
  }
  NamedAttrs attrs;
  if (in.accept('{')) {
    if (!in.accept('}')) {
      do {
        std::size_t attr_at = in.pos();
        std::string attr_name(in.expect_word("an attribute name"));
        const AttrSpec* spec = nullptr;
        for (const AttrSpec& a : info.attrs)
          if (a.name == attr_name) spec = &a;
        if (!spec) {
          std::string known;
          for (const AttrSpec& a : info.attrs) known += (known.empty() ? "" : ", ") + std::string(a.name);
          in.fail_at(attr_at, std::string(info.name) + " has no attribute '" + attr_name +
                                  "' (attributes: " + (known.empty() ? "none" : known) + ")");
        }
        for (auto& [n, v] : attrs)
          if (n == attr_name) in.fail_at(attr_at, "attribute '" + attr_name + "' is given twice");
        in.expect('=', "after the attribute name");
        attrs.emplace_back(attr_name, parse_attr(in, spec->kind));
      } while (in.accept(','));
      in.expect('}', "to close the attributes");
    }
  }
  try {
    ValueId v = g.add(*op, std::move(operands), std::move(attrs), name);
    if (declared && *declared != g.value(v).type)
      throw Error(ErrorCode::InvalidGraph, g.label(g.nodes().back()) + ": declared type " +
                                               declared->str() + " differs from the inferred " +
                                               g.value(v).type.str());
  } catch (const Error& e) {
    in.fail_at(line_start, e.what(), e.code());
  }
}

}  // namespace

namespace detail {

std::optional<AttrValue> parse_attr_value(AttrKind kind, std::string_view text) {
  try {
    Cursor in(text, "<attribute>");
    AttrValue v = parse_attr(in, kind);
    if (!in.at_end()) return std::nullopt;
    return v;
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace detail

std::string attr_text(const AttrValue& value) {
  struct Visitor {
    std::string operator()(std::int64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const { return format_double(v); }
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(DType v) const { return std::string(dtype_name(v)); }
    std::string operator()(BlockShape b) const {
      return std::to_string(b.rows) + "x" + std::to_string(b.cols);
    }
    std::string operator()(const Shape& s) const { return shape_str(s); }
  };
  return std::visit(Visitor{}, value);
}

std::string print(const Graph& g) {
  std::ostringstream out;
  out << "graph @" << g.name() << " {\n";
  for (ValueId v : g.inputs()) out << "  %" << g.value(v).name << ": " << g.value(v).type.str() << " = input\n";
  for (const Node& n : g.nodes()) {
    const OpInfo& info = op_info(n.op);
    const Value& result = g.value(n.output);
    out << "  %" << result.name << ": " << result.type.str() << " = " << info.name << "(";
    for (std::size_t i = 0; i < n.inputs.size(); ++i)
      out << (i ? ", " : "") << "%" << g.value(n.inputs[i]).name;
    out << ")";
    if (!n.attrs.empty()) {
      out << " {";
      for (std::size_t i = 0; i < n.attrs.size(); ++i)
        out << (i ? ", " : "") << info.attrs[i].name << " = " << attr_text(n.attrs[i]);
      out << "}";
    }
    out << "\n";
  }
  out << "  return";
  for (std::size_t i = 0; i < g.outputs().size(); ++i)
    out << (i ? ", %" : " %") << g.value(g.outputs()[i]).name;
  out << "\n}\n";
  return out.str();
}

Graph parse(std::string_view text, std::string_view filename) {
  Cursor in(text, filename);
  std::size_t at = in.pos();
  if (in.word() != "graph") in.fail_at(at, "expected 'graph @name {'");
  in.expect('@', "before the graph name");
  Graph g(std::string(in.expect_word("a graph name after '@'")));
  in.expect('{', "to open the graph body");
  for (;;) {
    std::size_t stmt = in.pos();
    if (in.peek() == '\0') in.fail("expected 'return' and '}' before the end of the file");
    if (in.peek() == 'r') {
      if (in.word() != "return") in.fail_at(stmt, "expected a statement or 'return'");
      do {
        ValueId v = parse_operand(in, g);
        for (ValueId o : g.outputs())
          if (o == v) in.fail_at(stmt, "%" + g.value(v).name + " is returned twice");
        g.output(v);
      } while (in.accept(','));
      in.expect('}', "to close the graph after 'return'");
      break;
    }
    parse_statement(in, g);
  }
  if (!in.at_end()) in.fail("unexpected text after the graph's closing '}'");
  return g;
}

Graph parse_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Error(ErrorCode::IoError, path + ": cannot open for reading");
  std::ostringstream text;
  text << file.rdbuf();
  return parse(text.str(), path);
}

}  // namespace anychip::ir
