#include "api/text_routes.h"

#include <fmt/format.h>

#include "api/api_error.h"
#include "api/chat_request.h"
#include "api/generation_routes.h"
#include "api/json_fields.h"
#include "api/sse.h"
#include "core/error.h"

namespace rackserve::api {
namespace {

constexpr size_t kMaxDetokenizeTokens = 1 << 20;

void handle_tokenize(const ApiContext& context, const httplib::Request& http_request, httplib::Response& response) {
  nlohmann::ordered_json body = parse_json_body(http_request);
  JsonFields fields(body);
  check_model_name(context, fields.string("model"));
  std::string text;
  bool add_special_tokens = true;
  if (fields.has("messages")) {
    ChatRequest chat = parse_chat_request(body, field_limits(context));
    if (!context.model.chat) throw unsupported("messages", "Chat (the model ships no chat template)");
    text = context.model.chat->render({chat.messages, chat.tools, chat.chat_template_kwargs, chat.add_generation_prompt,
                                       chat.continue_final_message});
    add_special_tokens = fields.boolean("add_special_tokens").value_or(false);
  } else {
    auto prompt = fields.string("prompt");
    if (!prompt) throw bad_request("prompt", "'prompt' (a string) or 'messages' is required");
    text = std::move(*prompt);
    add_special_tokens = fields.boolean("add_special_tokens").value_or(true);
  }
  std::vector<text::TokenId> ids;
  try {
    ids = context.model.tokenizer->encode(text, {.add_special_tokens = add_special_tokens});
  } catch (const Error& error) {
    throw ApiError(400, fmt::format("The text cannot be tokenized: {}", error.what()), "prompt");
  }
  nlohmann::json result = {{"count", ids.size()}, {"max_model_len", context.model.max_model_len}, {"tokens", ids}};
  response.set_content(to_json_text(result), "application/json");
}

void handle_detokenize(const ApiContext& context, const httplib::Request& http_request, httplib::Response& response) {
  nlohmann::ordered_json body = parse_json_body(http_request);
  JsonFields fields(body);
  check_model_name(context, fields.string("model"));
  if (!fields.has("tokens")) throw bad_request("tokens", "'tokens' is required");
  const int64_t vocab = static_cast<int64_t>(context.model.tokenizer->vocab_size());
  std::vector<text::TokenId> ids;
  for (int64_t id : fields.integers("tokens", 0, vocab - 1, kMaxDetokenizeTokens)) ids.push_back(static_cast<text::TokenId>(id));
  std::string text;
  try {
    text = context.model.tokenizer->decode(ids, fields.boolean("skip_special_tokens").value_or(false));
  } catch (const Error& error) {
    throw ApiError(400, fmt::format("The tokens cannot be decoded: {}", error.what()), "tokens");
  }
  response.set_content(to_json_text({{"prompt", text}}), "application/json");
}

}  // namespace

void add_text_routes(httplib::Server& server, const ApiContext& context) {
  server.Post("/tokenize", [&context](const httplib::Request& request, httplib::Response& response) {
    run_handler(context, request, response, Auth::Required, [&] { handle_tokenize(context, request, response); });
  });
  server.Post("/detokenize", [&context](const httplib::Request& request, httplib::Response& response) {
    run_handler(context, request, response, Auth::Required, [&] { handle_detokenize(context, request, response); });
  });
}

}  // namespace rackserve::api
