// rackserve logits: float32 logits for every position of a token sequence, as JSON.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/model_options.h"
#include "core/error.h"
#include "engine/sequence_runner.h"

namespace rackserve::cli {

int run_logits(const Arguments& args) {
  cxxopts::Options options("rackserve logits", "Print {\"logits\": [[...], ...]}, one row per position.");
  add_model_options(options);
  cxxopts::ParseResult result;
  if (!parse_or_help(options, args, result)) return 0;
  RS_CHECK(result.count("tokens"), "--tokens is required");
  std::vector<int32_t> tokens = parse_token_list(result["tokens"].as<std::string>());
  const std::optional<KvCacheDtype> kv_dtype = kv_cache_dtype_from(result);
  LoadedModel loaded = load_model_from_options(result);
  SequenceRunner runner(*loaded.model, static_cast<int64_t>(tokens.size()), 64, kv_dtype);
  nlohmann::json output;
  output["logits"] = runner.append(tokens, /*all_logits=*/true);
  fmt::print("{}\n", output.dump());
  return 0;
}

}  // namespace rackserve::cli
