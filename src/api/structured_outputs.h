// vLLM's structured-output request fields, on /v1/chat/completions and /v1/completions:
//   "structured_outputs": {"json": <schema, or its JSON text>}   the answer is a document
//                          {"choice": ["a", "b", ...]}             exactly one of the texts
//                          {"json_object": true}                   a JSON object
// and the fields vLLM had before them (removed in its 0.12, still sent by older clients):
// "guided_json", "guided_choice". "regex", "grammar", "structural_tag" (and "guided_regex",
// "guided_grammar") answer 422. Schemas take json_schema_compile.h's subset (else 400);
// "whitespace_pattern" and "disable_*" options are accepted and ignored (vLLM's backend
// tuning); two kinds in one request are a 400.
#pragma once

#include <memory>
#include <string>

#include "api/json_fields.h"
#include "engine/choice_grammar.h"
#include "engine/json_schema.h"

namespace rackserve::api {

struct StructuredOutput {
  enum class Kind { None, JsonObject, JsonSchema, Choice } kind = Kind::None;
  std::shared_ptr<const JsonSchema> schema;    // JsonSchema
  std::shared_ptr<const TextChoices> choices;  // Choice
  std::string field;                           // the request field it came from (for errors)
};

StructuredOutput read_structured_outputs(const JsonFields& fields);

}  // namespace rackserve::api
