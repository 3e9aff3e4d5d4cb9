// POST /v1/chat/completions and POST /v1/completions: parse and validate the body, build
// the prompt (chat template, tokenizer), check it against the context, and hand it to
// respond_with_generation().
#pragma once

#include <httplib.h>

#include "api/api_context.h"
#include "api/sampling_request.h"

namespace rackserve::api {

void add_generation_routes(httplib::Server& server, const ApiContext& context);

// Limits for request field validation, from the config and the model.
FieldLimits field_limits(const ApiContext& context);

}  // namespace rackserve::api
