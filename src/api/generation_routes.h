// POST /v1/chat/completions and POST /v1/completions: parse and validate the body, build
// the prompt (chat template, tokenizer), check it against the context, and hand it to
// respond_with_generation().
#pragma once

#include <httplib.h>

#include <memory>
#include <string>

#include "api/api_context.h"
#include "api/assistant_output.h"
#include "api/sampling_request.h"
#include "engine/choice_grammar.h"
#include "engine/json_schema.h"
#include "engine/request.h"

namespace rackserve::api {

void add_generation_routes(httplib::Server& server, const ApiContext& context);

// What an answer decoded under a grammar is read back as.
struct ConstrainedAnswer {
  std::shared_ptr<const JsonSchema> schema;  // null (and no choices): any JSON object (json_object)
  std::shared_ptr<const TextChoices> choices;  // instead of a schema: one of these texts
  enum class Kind {
    Content,      // a document in the content (response formats)
    NamedCall,    // the arguments of a call of `function`
    CallList,     // a list of calls (tool_call_list.h)
  } kind = Kind::Content;
  std::string function;  // NamedCall's
  std::string field;     // the request field that asked for it, for errors
};

// Decodes `request`'s answer under the served tokenizer's JSON mask and `answer.schema`, and
// sets `output` to read it back as `answer.kind` says: no tool-call markup to split off (the
// grammar leaves the model no way to write it). A model whose prompt opened <think> thinks
// first, unconstrained, where "</think>" is one token: the document starts after it and the
// reasoning split stays on; elsewhere the document starts at the first generated token. 422
// naming answer.field when the tokenizer's tokens have no fixed bytes.
void constrain_answer(const ApiContext& context, const ConstrainedAnswer& answer, Request& request,
                      AssistantOutputOptions& output);

// Limits for request field validation, from the config and the model.
FieldLimits field_limits(const ApiContext& context);

}  // namespace rackserve::api
