// Options shared by the subcommands that run a model (--model, --device, --threads,
// --tokens) and the helpers that turn them into a backend and a loaded model.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <cxxopts.hpp>

#include "backend/backend.h"
#include "cli/commands.h"
#include "models/model.h"

namespace rackserve::cli {

// Adds --model, --device, --threads, --tokens and --kv-cache-dtype to `options`, and the load
// options below.
void add_model_options(cxxopts::Options& options);
// --kv-cache-dtype of add_model_options: nullopt for auto; throws on an unknown name.
std::optional<KvCacheDtype> kv_cache_dtype_from(const cxxopts::ParseResult& result);

// Adds --load-format and --num-layers (every subcommand that loads a model takes them).
void add_load_options(cxxopts::Options& options);
// LoadOptions from the flags add_load_options added; throws on a bad format or count.
LoadOptions load_options_from(const cxxopts::ParseResult& result);

// Parses `args` (the words after the subcommand); prints help and returns nullopt-like
// false when --help was given. Throws rackserve::Error on unknown or malformed options.
bool parse_or_help(cxxopts::Options& options, const Arguments& args, cxxopts::ParseResult& result);

// "1,2,3" -> {1, 2, 3}; throws with the offending entry on anything else.
std::vector<int32_t> parse_token_list(const std::string& text);

struct LoadedModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<CausalLM> model;
};

// Backend from --device/--threads, model from --model, --load-format and --num-layers.
LoadedModel load_model_from_options(const cxxopts::ParseResult& result);

}  // namespace rackserve::cli
