// rackserve tokenize: the token ids of a text as the model's tokenizer gives them, for
// users debugging prompts. Prints {"ids": [...]}; with --chat, the messages are first
// rendered through the model's chat template and the output is {"prompt": ..., "ids": ...}
// (encoded without the post-processor's BOS/EOS, as transformers' apply_chat_template and
// the server do: the template writes them).
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <cxxopts.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace rackserve::cli {
namespace {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RS_CHECK(in, "--file: cannot open {}", path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

nlohmann::ordered_json read_json_file(const std::string& option, const std::string& path) {
  try {
    return nlohmann::ordered_json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& error) {
    throw Error(fmt::format("--{}: {} is not valid JSON: {}", option, path, error.what()));
  }
}

// --chat FILE (a JSON array of messages, or an object with "messages") with --tools,
// --no-generation-prompt, --kwargs and --chat-template, as a ChatRequest.
text::ChatRequest chat_request_from_options(const cxxopts::ParseResult& result) {
  text::ChatRequest request;
  nlohmann::ordered_json chat = read_json_file("chat", result["chat"].as<std::string>());
  if (chat.is_object() && chat.contains("messages")) chat = chat["messages"];
  RS_CHECK(chat.is_array(), "--chat: expected a JSON array of messages or an object with \"messages\"");
  request.messages = std::move(chat);
  if (result.count("tools")) {
    request.tools = read_json_file("tools", result["tools"].as<std::string>());
    RS_CHECK(request.tools.is_array(), "--tools: expected a JSON array of tool definitions");
  }
  request.add_generation_prompt = result.count("no-generation-prompt") == 0;
  if (result.count("kwargs")) {
    try {
      request.kwargs = nlohmann::ordered_json::parse(result["kwargs"].as<std::string>());
    } catch (const nlohmann::json::exception& error) {
      throw Error(fmt::format("--kwargs is not valid JSON: {}", error.what()));
    }
    RS_CHECK(request.kwargs.is_object(), "--kwargs: expected a JSON object, e.g. '{{\"enable_thinking\": false}}'");
  }
  return request;
}

// The text to encode: exactly one of --text, --file and --chat.
std::string prompt_from_options(const cxxopts::ParseResult& result, const std::string& model_dir) {
  const int sources = static_cast<int>(result.count("text") + result.count("file") + result.count("chat"));
  RS_CHECK(sources == 1, "give exactly one of --text TEXT, --file FILE and --chat MESSAGES.json");
  if (result.count("text")) return result["text"].as<std::string>();
  if (result.count("file")) return read_text_file(result["file"].as<std::string>());
  std::optional<std::filesystem::path> override_file;
  if (result.count("chat-template")) override_file = result["chat-template"].as<std::string>();
  const text::ChatTemplate chat_template = text::ChatTemplate::from_model_dir(model_dir, override_file);
  return chat_template.render(chat_request_from_options(result));
}

}  // namespace

int run_tokenize(const Arguments& args) {
  cxxopts::Options options("rackserve tokenize",
                           "Print {\"ids\": [...]}: the token ids of a text; with --chat {\"prompt\": ..., \"ids\": [...]}.");
  options.add_options()
      ("model", "model directory (tokenizer.json, or tiktoken.model + tokenizer_config.json)", cxxopts::value<std::string>())
      ("text", "the text to encode", cxxopts::value<std::string>())
      ("file", "encode the contents of this file (bytes as they are, no newline stripping)", cxxopts::value<std::string>())
      ("no-special-tokens", "leave out the BOS/EOS the tokenizer's post-processor adds")
      ("split-special-tokens", "treat special-token strings in the text as plain text")
      ("chat", "render these messages (JSON array, or {\"messages\": [...]}) with the chat template, then encode",
       cxxopts::value<std::string>())
      ("tools", "with --chat: JSON file with the tool definitions passed to the template", cxxopts::value<std::string>())
      ("no-generation-prompt", "with --chat: leave out the assistant turn opener (add_generation_prompt=false)")
      ("kwargs", "with --chat: chat_template_kwargs as JSON, e.g. '{\"enable_thinking\": false}'",
       cxxopts::value<std::string>())
      ("chat-template", "with --chat: Jinja file replacing the model's chat template", cxxopts::value<std::string>())
      ("h,help", "print this help");
  cxxopts::ParseResult result;
  if (!parse_or_help(options, args, result)) return 0;
  RS_CHECK(result.count("model"), "--model DIR is required");
  const std::string model_dir = result["model"].as<std::string>();
  const bool chat = result.count("chat") > 0;
  RS_CHECK(chat || (!result.count("tools") && !result.count("no-generation-prompt") && !result.count("kwargs") &&
                    !result.count("chat-template")),
           "--tools, --no-generation-prompt, --kwargs and --chat-template need --chat");
  const text::Tokenizer tokenizer = text::Tokenizer::from_directory(model_dir);
  const std::string prompt = prompt_from_options(result, model_dir);
  text::EncodeOptions encode_options;
  encode_options.add_special_tokens = !chat && result.count("no-special-tokens") == 0;
  encode_options.split_special_tokens = result.count("split-special-tokens") > 0;
  nlohmann::ordered_json output;
  if (chat) output["prompt"] = prompt;
  output["ids"] = tokenizer.encode(prompt, encode_options);
  fmt::print("{}\n", output.dump());
  return 0;
}

}  // namespace rackserve::cli
