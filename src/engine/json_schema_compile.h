// compile_json_schema: from the JSON Schema of a response_format {"type": "json_schema"}
// request to the node table JsonSchemaGrammar walks (json_schema.h). Runs once per request at
// the API boundary; linear in the size of the schema.
#pragma once

#include <memory>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "engine/json_schema.h"

namespace rackserve {

// What the compiler refuses: the message names the keyword and where it is (a JSON pointer
// into the schema). The API answers it with 400.
class JsonSchemaError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The supported subset (OpenAI's structured-outputs subset):
//   - type: object (properties, required, additionalProperties false, true or absent: only the
//     declared properties are generated), array (items, minItems, maxItems), string, number,
//     integer, boolean, null, or a list of these;
//   - enum and const of JSON scalars (filtered by type and the keywords below when given);
//   - string minLength / maxLength (code points); integer minimum / maximum /
//     exclusiveMinimum / exclusiveMaximum (Draft 2020-12 numbers; on "number" they throw:
//     a prefix of a decimal cannot be bounded as cheaply);
//   - anyOf, when no two alternatives can start with the same byte (say, an object or null),
//     except objects: several objects are told apart by their first property, which each
//     must declare first and require, under the same key, with 'const' or 'enum' values no
//     two of them share (a discriminated union, as {"type": {"const": "cat"}, ...});
//   - $ref to "#/$defs/NAME" or "#/definitions/NAME" of the top-level schema, recursion
//     allowed (bounded by JsonSchemaGrammar::kMaxDepth when generating);
//   - ignored: description, title, default, examples, $comment, $schema, $id, and the string
//     assertions format and pattern (not enforced: the grammar cannot check them byte by byte
//     cheaply, and a generated string may then fail them).
// Anything else (oneOf, allOf, not, if/then/else, patternProperties, prefixItems, multipleOf,
// ...) throws JsonSchemaError. The top-level schema must be an object, as OpenAI
// requires of response formats, or an array where the server writes the schema itself
// (tool_choice "required": a list of calls). Property declaration order is the order of
// `schema`'s keys, so it must be an ordered_json parsed from the request text.
enum class TopLevel { Object, Array };
struct JsonSchemaOptions {
  TopLevel top_level = TopLevel::Object;
  int max_whitespace_run = JsonSchema::kDefaultMaxWhitespaceRun;  // in [0, 255]
};
std::shared_ptr<const JsonSchema> compile_json_schema(const nlohmann::ordered_json& schema,
                                                      const JsonSchemaOptions& options = {});

}  // namespace rackserve
