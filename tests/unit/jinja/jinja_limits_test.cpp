// Hostile templates and error locations: deep nesting, runaway recursion, huge loops and
// exploding strings must end in a jinja::Error (never a crash or a hang), and every error
// names the line and the column (in code points) of the offending token.
#include <gtest/gtest.h>

#include "text/jinja/template.h"

namespace rackserve::jinja {
namespace {

std::string repeat(const std::string& text, int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out += text;
  return out;
}

// Parses and renders; returns the error (fails the test when none is raised).
Error render_error(const std::string& source, TemplateOptions options = {}) {
  try {
    Template(source, options).render(nlohmann::ordered_json::object());
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error for: " << source.substr(0, 200);
  return Error(ErrorKind::Runtime, "none");
}

TEST(JinjaLimits, DeepExpressionNestingIsAnError) {
  for (const std::string open : {"(", "[", "{'k':", "-", "not "}) {
    const std::string close = open == "(" ? ")" : open == "[" ? "]" : open == "{'k':" ? "}" : "";
    const Error e = render_error("{{ " + repeat(open, 100000) + "1" + repeat(close, 100000) + " }}");
    EXPECT_GT(e.line(), 0) << open;
  }
}

TEST(JinjaLimits, DeepBlockNestingIsAnError) {
  const Error e = render_error(repeat("{% if true %}", 50000) + "x" + repeat("{% endif %}", 50000));
  EXPECT_EQ(e.kind(), ErrorKind::Syntax);
  const Error f = render_error(repeat("{% for x in [1] %}", 20000) + repeat("{% endfor %}", 20000));
  EXPECT_EQ(f.kind(), ErrorKind::Syntax);
}

TEST(JinjaLimits, LongFlatChainsParse) {
  // Left-associative chains far longer than real templates still fail cleanly, not by stack.
  const Error e = render_error("{{ " + repeat("1 + ", 200000) + "1 }}");
  EXPECT_GT(e.line(), 0);
  const Error f = render_error("{{ x" + repeat("|trim", 200000) + " }}");
  EXPECT_GT(f.line(), 0);
}

TEST(JinjaLimits, RunawayRecursionIsALimit) {
  const Error e = render_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_EQ(e.kind(), ErrorKind::Limit);
  const Error g = render_error("{% macro f() %}{% call f() %}x{% endcall %}{{ caller() }}{% endmacro %}{% call f() %}{% endcall %}");
  EXPECT_EQ(g.kind(), ErrorKind::Limit);
}

TEST(JinjaLimits, HugeLoopsAreALimit) {
  TemplateOptions options;
  options.max_steps = 1'000'000;
  const Error e = render_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", options);
  EXPECT_EQ(e.kind(), ErrorKind::Limit);
}

TEST(JinjaLimits, ExplodingStringsAreALimit) {
  TemplateOptions options;
  options.max_output_bytes = 1 << 20;
  EXPECT_EQ(render_error("{{ 'x' * 100000000 }}", options).kind(), ErrorKind::Limit);
  EXPECT_EQ(render_error("{% set ns = namespace(s='xy') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
                         "{% endfor %}",
                         options)
                .kind(),
            ErrorKind::Limit);
  EXPECT_EQ(render_error("{% for i in range(100000) %}{{ 'abcdefghijklmnopqrstuvwxyz' }}{% endfor %}", options).kind(),
            ErrorKind::Limit);
  EXPECT_EQ(render_error("{{ [1, 2] * 100000000 }}", options).kind(), ErrorKind::Limit);
  EXPECT_EQ(render_error("{{ 'a'|center(100000000) }}", options).kind(), ErrorKind::Limit);
  // Fuzz finding: a 200k-item list of dicts was printed in full before the output check.
  const std::string many = "{% set xs = [{'name': 'tool', 'parameters': {'type': 'object'}}] * 200000 %}";
  EXPECT_EQ(render_error(many + "{{ xs }}", options).kind(), ErrorKind::Limit);
  EXPECT_EQ(render_error(many + "{{ xs|tojson }}", options).kind(), ErrorKind::Limit);
  EXPECT_EQ(render_error(many + "{{ 'x' ~ xs }}", options).kind(), ErrorKind::Limit);
}

TEST(JinjaLimits, SelfReferencingNamespaceIsALimit) {
  // Fuzz finding: printing a namespace that holds itself recursed until the stack overflowed.
  // (jinja2 prints "<Namespace {'me': <Namespace {...}>}>"; we stop with a Limit error.)
  EXPECT_EQ(render_error("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}").kind(), ErrorKind::Limit);
  EXPECT_EQ(render_error("{% set ns = namespace() %}{% set ns.l = [ns] %}{{ ns.l }}").kind(), ErrorKind::Limit);
  // The cycle itself is legal; comparing or serializing it must still end.
  EXPECT_THROW(Template("{% set ns = namespace() %}{% set ns.me = ns %}{{ [ns] == [ns] }}{{ ns|tojson }}")
                   .render(nlohmann::ordered_json::object()),
               Error);
}

TEST(JinjaLimits, DeepJsonContextIsAnError) {
  nlohmann::ordered_json deep = 1;
  for (int i = 0; i < 5000; ++i) deep = nlohmann::ordered_json::array({deep});
  EXPECT_THROW(Template("{{ x|tojson }}").render(nlohmann::ordered_json{{"x", deep}}), Error);
}

TEST(JinjaErrors, SyntaxErrorsCarryLineAndColumn) {
  // "{{ 1 + }}": the parser fails at '}}', the 8th character.
  Error e = render_error("{{ 1 + }}");
  EXPECT_EQ(e.kind(), ErrorKind::Syntax);
  EXPECT_EQ(e.line(), 1);
  EXPECT_EQ(e.column(), 8);
  // The unknown tag name starts at column 7 of line 2.
  e = render_error("ab\ncd {% frobnicate %}");
  EXPECT_EQ(e.line(), 2);
  EXPECT_EQ(e.column(), 7);
  // Columns count code points: 'é' is one column although it is two bytes.
  e = render_error("\xC3\xA9 {{ 1 + }}");
  EXPECT_EQ(e.column(), 10);
  // CRLF line ends count as one line break.
  e = render_error("a\r\nb\r\n{{ ) }}");
  EXPECT_EQ(e.line(), 3);
  EXPECT_EQ(e.column(), 4);
  EXPECT_NE(std::string(e.what()).find("line 3, column 4"), std::string::npos) << e.what();
}

TEST(JinjaErrors, RuntimeErrorsCarryLineAndColumn) {
  // raise_exception( starts at column 4 of line 3; the error points into that call.
  Error e = render_error("x\ny\n{{ raise_exception('boom') }}");
  EXPECT_EQ(e.kind(), ErrorKind::Template);
  EXPECT_EQ(e.message(), "boom");
  EXPECT_EQ(e.line(), 3);
  EXPECT_GE(e.column(), 4);
  e = render_error("{% for m in [1] %}\n  {{ m + 'a' }}\n{% endfor %}");
  EXPECT_EQ(e.kind(), ErrorKind::Type);
  EXPECT_EQ(e.line(), 2);
  EXPECT_GE(e.column(), 6);
}

TEST(JinjaErrors, InvalidUtf8NeverCrashes) {
  const std::string bad = "\xFF\xFE{{ '\xC3' ~ x }}\xE2\x82";
  EXPECT_NO_THROW(Template(bad).render(nlohmann::ordered_json{{"x", "y"}}));
}

}  // namespace
}  // namespace rackserve::jinja
