// rackserve detokenize: the text of a list of token ids, decoded as the model's
// tokenizer decodes them. Prints {"text": "..."}.
#include <charconv>
#include <string_view>
#include <vector>

#include <cxxopts.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "text/tokenizer.h"

namespace rackserve::cli {
namespace {

// "1,2,3" -> {1, 2, 3}; "" -> {}. Throws naming the offending entry.
std::vector<text::TokenId> parse_ids(std::string_view list) {
  std::vector<text::TokenId> ids;
  if (list.empty()) return ids;
  size_t begin = 0;
  while (begin <= list.size()) {
    size_t end = list.find(',', begin);
    if (end == std::string_view::npos) end = list.size();
    const std::string_view entry = list.substr(begin, end - begin);
    text::TokenId id = 0;
    const auto [ptr, error] = std::from_chars(entry.data(), entry.data() + entry.size(), id);
    RS_CHECK(!entry.empty() && error == std::errc() && ptr == entry.data() + entry.size(),
             "--ids: \"{}\" is not a token id", entry);
    ids.push_back(id);
    begin = end + 1;
  }
  return ids;
}

}  // namespace

int run_detokenize(const Arguments& args) {
  cxxopts::Options options("rackserve detokenize", "Print {\"text\": \"...\"}: the text of a list of token ids.");
  options.add_options()
      ("model", "model directory (tokenizer.json, or tiktoken.model + tokenizer_config.json)", cxxopts::value<std::string>())
      ("ids", "comma-separated token ids, e.g. 1,2,3", cxxopts::value<std::string>())
      ("skip-special-tokens", "leave special tokens out of the text")
      ("h,help", "print this help");
  cxxopts::ParseResult result;
  if (!parse_or_help(options, args, result)) return 0;
  RS_CHECK(result.count("model"), "--model DIR is required");
  RS_CHECK(result.count("ids"), "--ids 1,2,3 is required");
  const text::Tokenizer tokenizer = text::Tokenizer::from_directory(result["model"].as<std::string>());
  const std::vector<text::TokenId> ids = parse_ids(result["ids"].as<std::string>());
  nlohmann::json output;
  output["text"] = tokenizer.decode(ids, result.count("skip-special-tokens") > 0);
  fmt::print("{}\n", output.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return 0;
}

}  // namespace rackserve::cli
