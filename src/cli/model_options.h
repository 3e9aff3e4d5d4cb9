// Options shared by the subcommands that run a model (--model, --device, --threads, --tp,
// --tokens) and the helpers that turn them into backends (one per tensor-parallel rank) and
// a loaded model.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <cxxopts.hpp>

#include "backend/backend.h"
#include "cli/commands.h"
#include "models/model.h"
#include "parallel/rank_group.h"

namespace rackserve::cli {

// Adds --model, --device, --threads, --tp, --tokens and --kv-cache-dtype to `options`, and the
// load options below.
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

// Where a model runs: --device (cpu, cuda, auto), --threads (CPU threads per rank), --tp.
struct Placement {
  std::string device = "auto";
  unsigned threads = 0;
  int tp = 1;
  std::chrono::seconds tp_step_timeout{600};  // --tp-timeout; 0: no deadline
  int64_t custom_all_reduce_max_bytes = kCustomAllReduceCrossoverBytes;  // --custom-all-reduce-max-kib
};
// --custom-all-reduce-max-kib (serve: custom_all_reduce_max_kib): its help, and the value in
// bytes; throws outside 0 .. 8192 (the kernel's buffers hold 8 MiB).
inline constexpr const char* kCustomAllReduceMaxKibHelp =
    "CUDA tensor parallelism: all-reduces up to this many KiB take rackserve's one-shot peer-memory kernel "
    "(where every GPU pair has peer access), larger ones NCCL; 0: NCCL for every size. Measure the crossover "
    "of your box with bench/all_reduce";
int64_t custom_all_reduce_max_bytes(int64_t kib);
// --tp, --tp-timeout and --custom-all-reduce-max-kib (add_model_options adds them; serve
// adds them itself).
void add_tensor_parallel_options(cxxopts::Options& options);
Placement placement_from(const cxxopts::ParseResult& result);

// The ranks' backends and communicators for `placement` (rank 0's backend is the one
// sampling runs on). Checks first, in one line each, that --tp divides the model in
// `model_directory` and that there are enough GPUs.
RankGroup make_ranks(const Placement& placement, const std::string& model_directory);
// The model on `ranks`: a plain model for one rank, a TensorParallelModel (worker thread per
// rank, watchdog with placement.tp_step_timeout) for more. `ranks` must outlive it.
std::unique_ptr<CausalLM> load_model_on(const RankGroup& ranks, const Placement& placement,
                                        const std::string& model_directory, const LoadOptions& options);

struct LoadedModel {
  RankGroup ranks;
  std::unique_ptr<CausalLM> model;
};

// Ranks from --device/--threads/--tp, model from --model, --load-format and --num-layers.
LoadedModel load_model_from_options(const cxxopts::ParseResult& result);

}  // namespace rackserve::cli
