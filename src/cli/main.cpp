// rackserve entry point: dispatches to a subcommand and turns every error into one line
// on stderr and a non-zero exit code.
#include <cstdio>
#include <exception>
#include <string_view>

#include <fmt/core.h>

#include "cli/commands.h"

namespace {

struct Subcommand {
  std::string_view name;
  std::string_view summary;
  int (*run)(const rackserve::cli::Arguments&);
};

constexpr Subcommand kSubcommands[] = {
    {"generate", "greedy continuation of token ids through the KV cache", rackserve::cli::run_generate},
    {"logits", "float32 logits for every position of a token sequence", rackserve::cli::run_logits},
    {"inspect", "parameters, bytes per GPU and KV capacity of a model", rackserve::cli::run_inspect},
    {"doctor", "GPUs, PCIe links, peer access and bandwidth, NCCL, and what to set", rackserve::cli::run_doctor},
    {"tune-moe", "fastest fused FP8 MoE launch config per batch size on this GPU, written as a JSON file",
     rackserve::cli::run_tune_moe},
#if RACKSERVE_HAVE_API
    {"serve", "OpenAI-compatible HTTP server for one model", rackserve::cli::run_serve},
#endif
#if RACKSERVE_HAVE_TEXT
    {"tokenize", "token ids of a text as the model's tokenizer encodes it", rackserve::cli::run_tokenize},
    {"detokenize", "text of a list of token ids", rackserve::cli::run_detokenize},
#endif
};

void print_usage(std::FILE* stream) {
  fmt::print(stream, "usage: rackserve <command> [options]   (rackserve <command> --help for its options)\n\ncommands:\n");
  for (const auto& command : kSubcommands) fmt::print(stream, "  {:<10} {}\n", command.name, command.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  std::string_view name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(stdout);
    return 0;
  }
  for (const auto& command : kSubcommands) {
    if (command.name != name) continue;
    rackserve::cli::Arguments args(argv + 2, argv + argc);
    try {
      return command.run(args);
    } catch (const std::exception& error) {
      fmt::print(stderr, "rackserve {}: error: {}\n", name, error.what());
      return 1;
    }
  }
  fmt::print(stderr, "rackserve: unknown command \"{}\"; run rackserve --help\n", name);
  return 2;
}
