// ChatPromptRenderer backed by the model's Jinja chat template (text::ChatTemplate).
// Assistant tool calls' arguments are first given the form the template's family reads
// (text::tool_arguments_form): clients send JSON text (OpenAI) or a mapping (Hugging Face),
// and GLM / MiniMax-M2 templates fail on text, DeepSeek's on a mapping.
// Template failures caused by the conversation (raise_exception, a missing field the
// template reads) become 400s; the template's text says what is wrong.
#pragma once

#include <memory>

#include "api/served_model.h"
#include "text/chat_template.h"

namespace rackserve::api {

std::shared_ptr<const ChatPromptRenderer> make_template_renderer(std::shared_ptr<const text::ChatTemplate> chat_template);

}  // namespace rackserve::api
