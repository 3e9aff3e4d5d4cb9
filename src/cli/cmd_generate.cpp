// rackserve generate: greedy continuation of a token sequence, decoding through the KV cache.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/model_options.h"
#include "core/error.h"
#include "engine/sequence_runner.h"

namespace rackserve::cli {

int run_generate(const Arguments& args) {
  cxxopts::Options options("rackserve generate", "Print {\"tokens\": [...]} holding only the generated tokens.");
  add_model_options(options);
  options.add_options()("max-tokens", "number of tokens to generate", cxxopts::value<int64_t>()->default_value("16"))(
      "prefill-chunk", "prefill at most this many tokens per step (0: all at once)",
      cxxopts::value<int64_t>()->default_value("0"));
  cxxopts::ParseResult result;
  if (!parse_or_help(options, args, result)) return 0;
  RS_CHECK(result.count("tokens"), "--tokens is required");
  std::vector<int32_t> tokens = parse_token_list(result["tokens"].as<std::string>());
  int64_t max_tokens = result["max-tokens"].as<int64_t>();
  int64_t chunk = result["prefill-chunk"].as<int64_t>();
  RS_CHECK(max_tokens >= 0, "--max-tokens must be >= 0, got {}", max_tokens);
  RS_CHECK(chunk >= 0, "--prefill-chunk must be >= 0, got {}", chunk);
  const std::optional<KvCacheDtype> kv_dtype = kv_cache_dtype_from(result);
  LoadedModel loaded = load_model_from_options(result);
  const int64_t limit = loaded.model->config().max_position_embeddings;
  RS_CHECK(static_cast<int64_t>(tokens.size()) + max_tokens <= limit,
           "{} prompt tokens + {} new tokens exceed the model's {} positions", tokens.size(), max_tokens, limit);
  SequenceRunner runner(*loaded.model, static_cast<int64_t>(tokens.size()) + max_tokens, 64, kv_dtype);
  nlohmann::json output;
  output["tokens"] = runner.generate_greedy(tokens, max_tokens, chunk);
  fmt::print("{}\n", output.dump());
  return 0;
}

}  // namespace rackserve::cli
