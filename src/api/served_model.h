// ServedModel: what the HTTP layer knows about the one model it serves: its name, its
// context, its tokenizer and how to turn chat messages into a prompt. Built once at
// start-up (cmd_serve), then only read, from every HTTP thread at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/token_mask.h"
#include "text/parsers/tool_call_parser.h"
#include "text/tokenizer.h"

namespace rackserve::api {

// Renders a chat into the prompt text, the model's chat template in practice. Must be
// safe to call from several threads. Throws ApiError (400) for conversations the
// template rejects (raise_exception) and for render failures caused by the input.
class ChatPromptRenderer {
 public:
  virtual ~ChatPromptRenderer() = default;
  // Objects in the client's key order: the template renders them in that order.
  struct Chat {
    const nlohmann::ordered_json& messages;  // normalized (see chat_request.h)
    const nlohmann::ordered_json& tools;     // null or array
    const nlohmann::ordered_json& kwargs;    // chat_template_kwargs, an object
    bool add_generation_prompt = true;
    bool continue_final_message = false;
  };
  virtual std::string render(const Chat& chat) const = 0;
};

struct ServedModel {
  std::string name;             // the "model" clients send
  int32_t max_model_len = 0;    // prompt + completion tokens
  int32_t vocab_size = 0;       // the model's (ids the engine accepts)
  int64_t created = 0;          // unix time the server started, for /v1/models
  std::shared_ptr<const text::Tokenizer> tokenizer;
  std::shared_ptr<const ChatPromptRenderer> chat;  // null: the model has no chat template (chat answers 422)
  bool split_reasoning = false;  // <think> text goes to reasoning_content
  // How the model writes tool calls; unset: a request's tools are shown to the model but
  // its answer is returned as text.
  std::optional<text::ToolCallFormat> tool_call_format;
  // The tokenizer marks that format's markup special: answers parsed for tool calls are
  // detokenized with their special tokens (text::tool_call_markup_is_special).
  bool tool_call_markup_is_special = false;
  // What response_format {"type": "json_object"} constrains the output with
  // (json_object_mask.h); null: the tokenizer gives tokens no fixed bytes, and such
  // requests answer 422.
  std::shared_ptr<const JsonTokenMask> json_mask;
  // The "</think>" token (reasoning_end_token()), set with json_mask and split_reasoning: a
  // constrained request whose prompt opened <think> thinks freely and is constrained after
  // it. Unset: such requests are constrained from their first token (no thinking).
  std::optional<int32_t> reasoning_end_token;
};

}  // namespace rackserve::api
