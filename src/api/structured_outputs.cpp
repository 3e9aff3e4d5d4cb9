#include "api/structured_outputs.h"

#include <fmt/format.h>

#include "api/api_error.h"
#include "api/ordered_json_parser.h"
#include "engine/json_schema_compile.h"

namespace rackserve::api {
namespace {

using Json = nlohmann::ordered_json;

constexpr size_t kMaxChoices = 4096;
constexpr int kMaxSchemaDepth = 256;  // a schema given as text, as request bodies

// A schema given as an object or as its JSON text (vLLM takes both).
StructuredOutput schema_from(const Json& value, const std::string& field) {
  Json schema = value;
  if (value.is_string()) {
    auto parsed = parse_ordered_json(value.get<std::string>(), kMaxSchemaDepth);
    if (!parsed) throw bad_request(field, "'{}' is not JSON (or nests deeper than {})", field, kMaxSchemaDepth);
    schema = std::move(*parsed);
  }
  if (!schema.is_object()) throw bad_request(field, "'{}' must be a JSON schema object, got {}", field, json_type_name(schema));
  StructuredOutput out{.kind = StructuredOutput::Kind::JsonSchema, .field = field};
  try {
    out.schema = compile_json_schema(schema);
  } catch (const JsonSchemaError& error) {
    throw bad_request(field, "'{}': {}", field, error.what());
  }
  return out;
}

StructuredOutput choices_from(const Json& value, const std::string& field) {
  if (!value.is_array() || value.empty() || value.size() > kMaxChoices)
    throw bad_request(field, "'{}' must be an array of 1 to {} strings", field, kMaxChoices);
  std::vector<std::string> texts;
  for (const Json& text : value) {
    if (!text.is_string()) throw bad_request(field, "'{}' must be an array of strings, got a {}", field, json_type_name(text));
    texts.push_back(text.get<std::string>());
  }
  return {.kind = StructuredOutput::Kind::Choice, .choices = std::make_shared<const TextChoices>(std::move(texts)),
          .field = field};
}

// Keeps the one kind a request may ask for.
void set_once(StructuredOutput& out, StructuredOutput next) {
  if (out.kind != StructuredOutput::Kind::None)
    throw bad_request(next.field, "'{}' and '{}' exclude each other", out.field, next.field);
  out = std::move(next);
}

}  // namespace

StructuredOutput read_structured_outputs(const JsonFields& fields) {
  StructuredOutput out;
  for (const char* unsupported_field : {"guided_regex", "guided_grammar"})
    if (fields.has(unsupported_field))
      throw unsupported(unsupported_field, fmt::format("'{}' (regular expressions and grammars)", unsupported_field));
  if (const Json* json = fields.find("guided_json")) set_once(out, schema_from(*json, "guided_json"));
  if (const Json* choice = fields.find("guided_choice")) set_once(out, choices_from(*choice, "guided_choice"));
  auto object = fields.object("structured_outputs");
  if (!object) return out;
  const JsonFields params(*object, "structured_outputs.");
  for (const char* unsupported_field : {"regex", "grammar", "structural_tag"})
    if (params.has(unsupported_field))
      throw unsupported(params.name(unsupported_field),
                        fmt::format("'{}' (regular expressions, grammars and structural tags)", params.name(unsupported_field)));
  if (const Json* json = params.find("json")) set_once(out, schema_from(*json, params.name("json")));
  if (const Json* choice = params.find("choice")) set_once(out, choices_from(*choice, params.name("choice")));
  if (params.boolean("json_object").value_or(false))
    set_once(out, {.kind = StructuredOutput::Kind::JsonObject, .field = params.name("json_object")});
  return out;
}

}  // namespace rackserve::api
