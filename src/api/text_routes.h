// POST /tokenize and POST /detokenize (vLLM's shapes):
//   /tokenize   {"prompt": str, "add_special_tokens": bool=true}
//            or {"messages": [...], "add_generation_prompt": bool=true, "chat_template_kwargs": {}}
//            -> {"count", "max_model_len", "tokens": [...]}
//   /detokenize {"tokens": [...]} -> {"prompt": str}
#pragma once

#include <httplib.h>

#include "api/api_context.h"

namespace rackserve::api {

void add_text_routes(httplib::Server& server, const ApiContext& context);

}  // namespace rackserve::api
