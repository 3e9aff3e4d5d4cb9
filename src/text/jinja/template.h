// Template: the public face of the Jinja engine. Parse once (syntax errors surface here,
// with line and column), render many times from any thread with a JSON context. Rendering
// follows the Hugging Face chat-template environment by default (see options.h).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/jinja/ast.h"
#include "text/jinja/error.h"
#include "text/jinja/options.h"
#include "text/jinja/value.h"

namespace rackserve::jinja {

class Template {
 public:
  // Throws jinja::Error (Syntax, or Limit for hostile nesting) with line and column set.
  explicit Template(std::string_view source, TemplateOptions options = {});

  // Renders with the top-level variables of `context` (a JSON object; key order kept).
  // Throws jinja::Error with line and column of the failing node.
  std::string render(const nlohmann::ordered_json& context) const;
  // Same, with variables already converted to Values.
  std::string render(const std::vector<std::pair<std::string, Value>>& variables) const;

  const TemplateOptions& options() const { return options_; }

 private:
  [[noreturn]] void rethrow_located(Error& error) const;

  TemplateOptions options_;
  std::string source_;  // newline-normalized, the text offsets refer to
  Body body_;
};

}  // namespace rackserve::jinja
