// Template: lexer + parser at construction, a fresh Renderer per render; every error leaving
// this file has its byte offset resolved to line and column.
#include "text/jinja/template.h"

#include "text/jinja/evaluator.h"
#include "text/jinja/json_value.h"
#include "text/jinja/lexer.h"
#include "text/jinja/parser.h"

namespace rackserve::jinja {

Template::Template(std::string_view source, TemplateOptions options)
    : options_(std::move(options)), source_(normalize_newlines(source, options_.keep_trailing_newline)) {
  try {
    LexerOptions lexer;
    lexer.trim_blocks = options_.trim_blocks;
    lexer.lstrip_blocks = options_.lstrip_blocks;
    lexer.keep_trailing_newline = options_.keep_trailing_newline;
    body_ = parse(tokenize(source_, lexer));
  } catch (Error& error) {
    rethrow_located(error);
  }
}

void Template::rethrow_located(Error& error) const {
  const uint32_t offset = error.offset() == Error::kNoOffset ? 0 : error.offset();
  const auto [line, column] = SourceMap(source_).locate(offset);
  error.set_location(line, column);
  throw error;
}

std::string Template::render(const std::vector<std::pair<std::string, Value>>& variables) const {
  Scope globals(nullptr);
  for (const auto& [name, value] : variables) globals.set(name, value);
  try {
    Renderer renderer(options_, globals);
    return renderer.render(body_);
  } catch (Error& error) {
    rethrow_located(error);
  }
}

std::string Template::render(const nlohmann::ordered_json& context) const {
  std::vector<std::pair<std::string, Value>> variables;
  if (!context.is_null()) {
    if (!context.is_object()) throw Error(ErrorKind::Type, "template context must be a JSON object");
    try {
      for (const auto& [key, value] : context.items()) variables.emplace_back(key, from_json(value));
    } catch (Error& error) {
      error.set_location(0, 0);
      throw;
    }
  }
  return render(variables);
}

}  // namespace rackserve::jinja
