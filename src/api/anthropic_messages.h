// Anthropic's conversation ("system" plus "messages" whose content is a string or an array
// of content blocks) translated into the OpenAI-shaped chat messages our chat templates
// render, so both APIs put the same prompt in front of the model:
//   system (string or text blocks)      -> {"role": "system", "content": text}
//   user text blocks                    -> {"role": "user", "content": text}
//   user tool_result blocks             -> {"role": "tool", "tool_call_id", "name"?, "content": text},
//                                          in order, before the text of the same turn
//   assistant text / tool_use / thinking -> {"role": "assistant", "content": text or null,
//                                           "tool_calls": [{id, type: function, function: {name,
//                                           arguments: JSON text}}]?, "reasoning_content"?}
//                                          (arguments: the input written compactly, keys in
//                                          the client's order)
// Text blocks of one turn are joined with "\n" (as OpenAI content parts are, see
// chat_request.h). redacted_thinking is dropped (it is another server's ciphertext).
// cache_control, citations and signatures are accepted and ignored.
#pragma once

#include <nlohmann/json.hpp>

namespace rackserve::api {

// `system` may be nullptr (absent); `messages` is the request's "messages" value, any JSON.
// Throws a 400 ApiError naming the field at fault ("messages[2].content[0].tool_use_id"),
// and 422 for blocks this server cannot show a text model (image, document, server-tool
// results), which the Anthropic routes answer as 400.
nlohmann::ordered_json chat_messages_from_anthropic(const nlohmann::ordered_json* system,
                                                    const nlohmann::ordered_json* messages);

}  // namespace rackserve::api
