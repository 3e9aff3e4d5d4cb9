// `rackserve tune-moe`: finds the fastest fused FP8 MoE launch config per batch size for one
// model's per-GPU expert shape on this machine's GPU and writes
// <out>/<device>/moe,E=..,N=..,dtype=....json (backend/cuda/moe_fp8_config_file.h). With
// --untuned-defaults it writes, without a GPU, the heuristic SM120-safe file for a named device.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backend/cuda/moe_fp8_config_file.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#if RACKSERVE_HAVE_MOE_TUNER
#include "backend/cuda/moe_fp8_tuner.h"
#endif

namespace rackserve::cli {

namespace {

int64_t first_integer(const nlohmann::json& config, std::initializer_list<const char*> names, const std::string& source) {
  for (const char* name : names)
    if (config.contains(name) && config.at(name).is_number_integer()) return config.at(name).get<int64_t>();
  RS_FAIL("{}: no integer field {}", source, fmt::join(names, " or "));
}

// The routed experts' per-GPU shape of a model: experts are split on the intermediate dimension.
MoeFp8Shape moe_shape_from_model(const std::filesystem::path& model, int64_t tp, MoeFp8Dtype dtype) {
  const std::filesystem::path file = std::filesystem::is_directory(model) ? model / "config.json" : model;
  std::ifstream in(file, std::ios::binary);
  RS_CHECK(in, "cannot open {}", file.string());
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& error) {
    RS_FAIL("{}: not valid JSON: {}", file.string(), error.what());
  }
  if (config.contains("text_config")) config = config.at("text_config");  // Kimi K2.5
  const std::string source = file.string();
  MoeFp8Shape shape;
  shape.experts = first_integer(config, {"n_routed_experts", "num_local_experts"}, source);
  // MiniMax-M2 names its expert width intermediate_size; the others keep that for dense layers.
  const int64_t inter = first_integer(config, {"moe_intermediate_size", "intermediate_size"}, source);
  shape.hidden = first_integer(config, {"hidden_size"}, source);
  shape.top_k = first_integer(config, {"num_experts_per_tok"}, source);
  shape.dtype = dtype;
  RS_CHECK(tp >= 1 && inter % tp == 0, "--tp {} does not divide the expert width {}", tp, inter);
  shape.inter = inter / tp;
  const int64_t multiple = dtype == MoeFp8Dtype::Block ? 128 : 16;
  RS_CHECK(shape.inter % multiple == 0 && shape.hidden % multiple == 0,
           "{}: per-GPU expert width {} (= {} / TP {}) and hidden {} must be multiples of {} for {}", source,
           shape.inter, inter, tp, shape.hidden, multiple, moe_fp8_dtype_name(dtype));
  return shape;
}

std::vector<int64_t> batch_sizes_from(const cxxopts::ParseResult& result) {
  if (!result.count("batch-sizes")) return default_tuning_batch_sizes();
  std::vector<int64_t> sizes;
  for (const int32_t m : parse_token_list(result["batch-sizes"].as<std::string>())) {
    RS_CHECK(m >= 1, "--batch-sizes: {} is not a batch size (>= 1)", m);
    sizes.push_back(m);
  }
  return sizes;
}

}  // namespace

int run_tune_moe(const Arguments& args) {
  cxxopts::Options options(
      "rackserve tune-moe",
      "Times every fused FP8 MoE launch config at each batch size on random FP8 weights of the model's per-GPU "
      "expert shape and writes the fastest per batch size to OUT/<device>/moe,E=..,N=..,dtype=....json, the file "
      "the CUDA backend looks up at run time. Needs a CUDA GPU, except with --untuned-defaults.");
  // clang-format off
  options.add_options()
      ("model", "model directory or its config.json (the expert count, width, hidden size and top-k are read)", cxxopts::value<std::string>())
      ("tp", "tensor-parallel size: each GPU holds 1/TP of every expert's intermediate width", cxxopts::value<int64_t>()->default_value("1"))
      ("dtype", "weight format: fp8_block (DeepSeek fp8, 128x128 scales) or fp8_channel (per-channel scales)", cxxopts::value<std::string>())
      ("out", "directory of device directories to write into", cxxopts::value<std::string>()->default_value("configs/kernels"))
      ("batch-sizes", "comma-separated batch sizes M (default 1,2,4,8,16,24,32,48,64,96,128,256,512,1024,1536,2048,3072,4096)", cxxopts::value<std::string>())
      ("device", "CUDA device index to tune on", cxxopts::value<int>()->default_value("0"))
      ("repetitions", "timed launches per config and batch size (the median is kept)", cxxopts::value<int>()->default_value("7"))
      ("untuned-defaults", "write the heuristic SM120-safe defaults (tuned: false) for --device-name, without a GPU")
      ("device-name", "with --untuned-defaults: the device as CUDA names it, e.g. \"NVIDIA GeForce RTX 5090\"", cxxopts::value<std::string>())
      ("sm", "with --untuned-defaults: its compute capability as major*10+minor", cxxopts::value<int>()->default_value("120"))
      ("h,help", "show this help");
  // clang-format on
  cxxopts::ParseResult result;
  if (!parse_or_help(options, args, result)) return 0;
  RS_CHECK(result.count("model"), "--model DIR|config.json is required (see rackserve tune-moe --help)");
  RS_CHECK(result.count("dtype"), "--dtype fp8_block|fp8_channel is required");
  const int64_t tp = result["tp"].as<int64_t>();
  const MoeFp8Shape shape =
      moe_shape_from_model(result["model"].as<std::string>(), tp, parse_moe_fp8_dtype(result["dtype"].as<std::string>()));
  const std::vector<int64_t> batch_sizes = batch_sizes_from(result);
  const std::filesystem::path out = result["out"].as<std::string>();

  if (result.count("untuned-defaults")) {
    RS_CHECK(result.count("device-name"), "--untuned-defaults needs --device-name");
    const MoeFp8ConfigFile file = untuned_moe_fp8_defaults(
        shape, device_directory_name(result["device-name"].as<std::string>()), result["sm"].as<int>(), batch_sizes);
    const std::filesystem::path path = out / file.device / moe_fp8_config_file_name(shape);
    write_moe_fp8_config_file(path, file);
    fmt::print("wrote {} ({}, TP {}, not tuned)\n", path.string(), describe(shape), tp);
    return 0;
  }
#if RACKSERVE_HAVE_MOE_TUNER
  MoeFp8TuneOptions tune;
  tune.batch_sizes = batch_sizes;
  tune.device = result["device"].as<int>();
  tune.repetitions = result["repetitions"].as<int>();
  RS_CHECK(tune.repetitions >= 1, "--repetitions must be >= 1");
  const MoeFp8TuneResult tuned = tune_moe_fp8(shape, tune);
  const std::filesystem::path path = out / tuned.file.device / moe_fp8_config_file_name(shape);
  write_moe_fp8_config_file(path, tuned.file);
  fmt::print("{} on {} (TP {}):\n{:>6}  {:<56} {:>10} {:>12}\n", describe(shape), tuned.device.name, tp, "M", "best config",
             "us", "default us");
  for (const auto& row : tuned.rows)
    fmt::print("{:>6}  {:<56} {:>10.1f} {:>12}\n", row.tokens, describe(row.best), row.best_us,
               row.default_us > 0 ? fmt::format("{:.1f}", row.default_us) : "-");
  fmt::print("wrote {}\n", path.string());
  return 0;
#else
  fmt::print(stderr, "rackserve tune-moe: this rackserve was built without CUDA; tuning needs a CUDA GPU "
                     "(--untuned-defaults works without one)\n");
  return 1;
#endif
}

}  // namespace rackserve::cli
