// rackserve tokenize: the token ids of a text as the model's tokenizer gives them, for
// users debugging prompts. Prints {"ids": [...]}.
//
// The text comes from prompt_from_options(); a --chat option (messages rendered through
// the model's chat template) plugs in there and adds "prompt" to the output.
#include <fstream>
#include <sstream>

#include <cxxopts.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
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

// The text to encode: exactly one of --text and --file.
std::string prompt_from_options(const cxxopts::ParseResult& result) {
  const bool has_text = result.count("text") > 0;
  const bool has_file = result.count("file") > 0;
  RS_CHECK(has_text != has_file, "give exactly one of --text TEXT and --file FILE");
  return has_text ? result["text"].as<std::string>() : read_text_file(result["file"].as<std::string>());
}

}  // namespace

int run_tokenize(const Arguments& args) {
  cxxopts::Options options("rackserve tokenize", "Print {\"ids\": [...]}: the token ids of a text.");
  options.add_options()
      ("model", "model directory (tokenizer.json, or tiktoken.model + tokenizer_config.json)", cxxopts::value<std::string>())
      ("text", "the text to encode", cxxopts::value<std::string>())
      ("file", "encode the contents of this file (bytes as they are, no newline stripping)", cxxopts::value<std::string>())
      ("no-special-tokens", "leave out the BOS/EOS the tokenizer's post-processor adds")
      ("split-special-tokens", "treat special-token strings in the text as plain text")
      ("h,help", "print this help");
  cxxopts::ParseResult result;
  if (!parse_or_help(options, args, result)) return 0;
  RS_CHECK(result.count("model"), "--model DIR is required");
  const text::Tokenizer tokenizer = text::Tokenizer::from_directory(result["model"].as<std::string>());
  const std::string prompt = prompt_from_options(result);
  text::EncodeOptions encode_options;
  encode_options.add_special_tokens = result.count("no-special-tokens") == 0;
  encode_options.split_special_tokens = result.count("split-special-tokens") > 0;
  nlohmann::json output;
  output["ids"] = tokenizer.encode(prompt, encode_options);
  fmt::print("{}\n", output.dump());
  return 0;
}

}  // namespace rackserve::cli
