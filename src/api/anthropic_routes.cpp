#include "api/anthropic_routes.h"

#include "api/anthropic_formatter.h"
#include "api/anthropic_request.h"
#include "api/api_error.h"
#include "api/generation_request.h"
#include "api/generation_response.h"
#include "api/generation_routes.h"
#include "api/sse.h"

namespace rackserve::api {
namespace {

struct RenderedPrompt {
  std::string text;
  std::vector<int32_t> tokens;
};

RenderedPrompt render_prompt(const ApiContext& context, const AnthropicRequest& request) {
  if (!context.model.chat) throw unsupported("messages", "The Messages API (the model ships no chat template; pass --chat-template)");
  RenderedPrompt prompt;
  prompt.text = context.model.chat->render({request.messages, request.tools, request.chat_template_kwargs,
                                            !request.continue_final_message, request.continue_final_message});
  prompt.tokens = tokenize_prompt(context, prompt.text, /*add_special_tokens=*/false);  // the template writes BOS itself
  return prompt;
}

// Agents send a large max_tokens whatever the prompt. As Anthropic's API does for its
// current models, a max_tokens past the context is cut to the room left (the answer then
// stops with "model_context_window_exceeded") instead of failing the request. Returns
// whether it was cut.
bool fit_max_tokens(const ApiContext& context, size_t prompt_length, SamplingParams& params) {
  const int64_t room = static_cast<int64_t>(context.model.max_model_len) - static_cast<int64_t>(prompt_length);
  if (room <= 0 || !params.max_tokens || *params.max_tokens <= room) return false;
  params.max_tokens = static_cast<int32_t>(room);
  return true;
}

void handle_messages(const ApiContext& context, const httplib::Request& http_request, httplib::Response& response) {
  AnthropicRequest messages =
      parse_anthropic_request(parse_json_body(http_request), field_limits(context), AnthropicEndpoint::Messages);
  check_model_name(context, messages.model);
  RenderedPrompt prompt = render_prompt(context, messages);
  const bool shortened = fit_max_tokens(context, prompt.tokens.size(), messages.sampling);
  check_context(context, prompt.tokens.size(), messages.sampling);

  AnthropicFormatOptions options{.output = assistant_output_options(context.model, prompt.text, messages.tools),
                                 .prompt_tokens = static_cast<int32_t>(prompt.tokens.size()),
                                 .max_tokens_shortened = shortened};
  Request request;
  request.prompt = std::move(prompt.tokens);
  request.params = std::move(messages.sampling);
  if (messages.answer_schema)
    constrain_answer(context,
                     {.schema = messages.answer_schema,
                      .kind = messages.answer_is_call_list ? ConstrainedAnswer::Kind::CallList
                                                           : ConstrainedAnswer::Kind::Content,
                      .function = {},
                      .field = messages.answer_is_call_list ? "tool_choice" : "output_config.format"},
                     request, options.output);
  options.output.first_tool_call_only = messages.first_tool_call_only;
  keep_tool_call_markup(context.model, options.output, request.params);
  auto formatter = std::make_unique<AnthropicFormatter>(header_for(context, "msg_"), std::move(options));
  respond_with_generation(context, std::move(request), std::move(formatter), messages.stream,
                          endpoints_of(http_request), response);
}

void handle_count_tokens(const ApiContext& context, const httplib::Request& http_request, httplib::Response& response) {
  AnthropicRequest messages =
      parse_anthropic_request(parse_json_body(http_request), field_limits(context), AnthropicEndpoint::CountTokens);
  check_model_name(context, messages.model);
  const RenderedPrompt prompt = render_prompt(context, messages);
  response.set_content(to_json_text({{"input_tokens", prompt.tokens.size()}}), "application/json");
}

}  // namespace

void add_anthropic_routes(httplib::Server& server, const ApiContext& context) {
  server.Post("/v1/messages", [&context](const httplib::Request& request, httplib::Response& response) {
    run_handler(context, request, response, Auth::Required, [&] { handle_messages(context, request, response); },
                ErrorShape::Anthropic);
  });
  server.Post("/v1/messages/count_tokens", [&context](const httplib::Request& request, httplib::Response& response) {
    run_handler(context, request, response, Auth::Required, [&] { handle_count_tokens(context, request, response); },
                ErrorShape::Anthropic);
  });
}

}  // namespace rackserve::api
