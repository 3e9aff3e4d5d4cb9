#include "api/generation_routes.h"

#include <algorithm>

#include "api/api_error.h"
#include "api/chat_formatter.h"
#include "api/chat_request.h"
#include "api/completion_formatter.h"
#include "api/completion_request.h"
#include "api/generation_request.h"
#include "api/generation_response.h"

namespace rackserve::api {
namespace {

// The served tokenizer's token mask for a constrained answer `field` asked for; 422 when its
// tokens have no fixed bytes (no mask was built).
std::shared_ptr<const JsonTokenMask> token_mask_for(const ApiContext& context, const std::string& field) {
  if (!context.model.json_mask)
    throw unsupported(field, fmt::format("'{}' (constrained decoding) with this model's tokenizer (its tokens have no "
                                         "fixed bytes)",
                                         field));
  return context.model.json_mask;
}

void handle_chat(const ApiContext& context, const httplib::Request& http_request, httplib::Response& response) {
  ChatRequest chat = parse_chat_request(parse_json_body(http_request), field_limits(context));
  check_model_name(context, chat.model);
  if (!context.model.chat) throw unsupported("messages", "Chat (the model ships no chat template; pass --chat-template)");
  std::string prompt = context.model.chat->render({chat.messages, chat.tools, chat.chat_template_kwargs,
                                                   chat.add_generation_prompt, chat.continue_final_message});
  Request request;
  request.prompt = tokenize_prompt(context, prompt, /*add_special_tokens=*/false);  // the template writes BOS itself
  check_context(context, request.prompt.size(), chat.sampling);
  request.params = std::move(chat.sampling);
  ChatFormatOptions options{.n = request.params.n,
                            .include_usage = chat.stream.include_usage,
                            .return_token_ids = chat.stream.return_token_ids,
                            .output = assistant_output_options(context.model, prompt, chat.tools)};
  if (chat.tool_choice == ToolChoice::Function || chat.tool_choice == ToolChoice::Required) {
    const bool named = chat.tool_choice == ToolChoice::Function;
    constrain_answer(context,
                     {.schema = chat.json_schema,
                      .kind = named ? ConstrainedAnswer::Kind::NamedCall : ConstrainedAnswer::Kind::CallList,
                      .function = chat.tool_choice_function,
                      .field = "tool_choice"},
                     request, options.output);
  } else if (chat.response_format != ResponseFormat::Text) {
    constrain_answer(context, {.schema = chat.json_schema, .choices = chat.choices, .field = chat.format_field}, request,
                     options.output);
  }
  options.output.first_tool_call_only = !chat.parallel_tool_calls;
  keep_tool_call_markup(context.model, options.output, request.params);
  auto formatter = std::make_unique<ChatFormatter>(header_for(context, "chatcmpl-"), options, token_text_of(context));
  respond_with_generation(context, std::move(request), std::move(formatter), chat.stream.stream, endpoints_of(http_request),
                          response);
}

void handle_completion(const ApiContext& context, const httplib::Request& http_request, httplib::Response& response) {
  CompletionRequest completion = parse_completion_request(parse_json_body(http_request), field_limits(context));
  check_model_name(context, completion.model);
  Request request;
  request.prompt = completion.prompt_tokens ? std::move(*completion.prompt_tokens)
                                            : tokenize_prompt(context, *completion.prompt_text, /*add_special_tokens=*/true);
  check_context(context, request.prompt.size(), completion.sampling);
  request.params = std::move(completion.sampling);
  if (completion.structured.kind != StructuredOutput::Kind::None) {
    // The text the model continues the prompt with, under the grammar from its first token.
    request.json_mask = token_mask_for(context, completion.structured.field);
    request.json_schema = completion.structured.schema;
    request.choices = completion.structured.choices;
  }
  auto formatter = std::make_unique<CompletionFormatter>(header_for(context, "cmpl-"), completion.stream.include_usage,
                                                         completion.stream.return_token_ids, token_text_of(context));
  respond_with_generation(context, std::move(request), std::move(formatter), completion.stream.stream,
                          endpoints_of(http_request), response);
}

}  // namespace

void constrain_answer(const ApiContext& context, const ConstrainedAnswer& answer, Request& request,
                      AssistantOutputOptions& output) {
  request.json_mask = token_mask_for(context, answer.field);
  request.json_schema = answer.schema;
  request.choices = answer.choices;
  const std::optional<int32_t> reasoning_end = context.model.reasoning_end_token;
  const bool thinks_first = output.starts_in_reasoning && reasoning_end &&
                            !std::ranges::count(request.params.stop_token_ids, *reasoning_end);
  output = AssistantOutputOptions{};
  if (thinks_first) {
    request.constrain_after_token = reasoning_end;
    output.split_reasoning = true;
    output.starts_in_reasoning = true;
  }
  if (answer.kind == ConstrainedAnswer::Kind::NamedCall) output.forced_tool_call_name = answer.function;
  output.forced_tool_call_list = answer.kind == ConstrainedAnswer::Kind::CallList;
}

FieldLimits field_limits(const ApiContext& context) {
  return {.max_n = context.config.max_n,
          .max_logprobs = context.config.max_logprobs,
          .vocab_size = context.model.vocab_size,
          .max_model_len = context.model.max_model_len};
}

void add_generation_routes(httplib::Server& server, const ApiContext& context) {
  server.Post("/v1/chat/completions", [&context](const httplib::Request& request, httplib::Response& response) {
    run_handler(context, request, response, Auth::Required, [&] { handle_chat(context, request, response); });
  });
  server.Post("/v1/completions", [&context](const httplib::Request& request, httplib::Response& response) {
    run_handler(context, request, response, Auth::Required, [&] { handle_completion(context, request, response); });
  });
}

}  // namespace rackserve::api
