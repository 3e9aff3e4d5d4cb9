// ChatPromptRenderer backed by the model's Jinja chat template (text::ChatTemplate).
// Template failures caused by the conversation (raise_exception, a missing field the
// template reads) become 400s; the template's text says what is wrong.
#pragma once

#include <memory>

#include "api/served_model.h"
#include "text/chat_template.h"

namespace rackserve::api {

std::shared_ptr<const ChatPromptRenderer> make_template_renderer(std::shared_ptr<const text::ChatTemplate> chat_template);

}  // namespace rackserve::api
