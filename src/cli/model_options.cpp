#include "cli/model_options.h"

#include <charconv>
#include <fmt/core.h>

#include "core/error.h"
#include "models/tensor_parallel_model.h"

namespace rackserve::cli {

void add_model_options(cxxopts::Options& options) {
  options.add_options()("model", "model directory (config.json + *.safetensors; only config.json for --load-format dummy)",
                        cxxopts::value<std::string>())(
      "tokens", "comma-separated token ids, e.g. 1,2,3", cxxopts::value<std::string>())(
      "device", "cpu, cuda or auto", cxxopts::value<std::string>()->default_value("auto"))(
      "threads", "CPU threads per rank (0: all cores / --tp)", cxxopts::value<unsigned>()->default_value("0"))(
      "kv-cache-dtype", "auto (the backend's native cache: bf16 on CUDA, f32 on the CPU), bf16 or fp8 (e4m3 with a "
                        "scale per token)",
      cxxopts::value<std::string>()->default_value("auto"))("h,help", "show this help");
  add_tensor_parallel_options(options);
  add_load_options(options);
}

int64_t custom_all_reduce_max_bytes(int64_t kib) {
  RS_CHECK(kib >= 0 && kib <= 8192, "--custom-all-reduce-max-kib must be 0 (off) to 8192, got {}", kib);
  return kib << 10;
}

void add_tensor_parallel_options(cxxopts::Options& options) {
  options.add_options()("tp", "tensor-parallel size: ranks splitting the model (CUDA: one GPU each, devices 0..N-1; "
                              "cpu: N CPU backends in this process)",
                        cxxopts::value<int>()->default_value("1"))(
      "tp-timeout", "seconds a tensor-parallel step may take on every rank before the group is aborted and the "
                    "process exits (0: no deadline)",
      cxxopts::value<int64_t>()->default_value("600"))(
      "custom-all-reduce-max-kib", kCustomAllReduceMaxKibHelp,
      cxxopts::value<int64_t>()->default_value(std::to_string(kCustomAllReduceCrossoverBytes >> 10)));
}

Placement placement_from(const cxxopts::ParseResult& result) {
  Placement placement;
  placement.device = result["device"].as<std::string>();
  placement.threads = result["threads"].as<unsigned>();
  placement.tp = result["tp"].as<int>();
  const int64_t timeout = result["tp-timeout"].as<int64_t>();
  RS_CHECK(placement.tp >= 1, "--tp must be >= 1, got {}", placement.tp);
  RS_CHECK(timeout >= 0, "--tp-timeout must be >= 0, got {}", timeout);
  placement.tp_step_timeout = std::chrono::seconds(timeout);
  placement.custom_all_reduce_max_bytes = custom_all_reduce_max_bytes(result["custom-all-reduce-max-kib"].as<int64_t>());
  return placement;
}

RankGroup make_ranks(const Placement& placement, const std::string& model_directory) {
  RS_CHECK(placement.device == "cpu" || placement.device == "auto" || placement.device == "cuda",
           "--device must be cpu, cuda or auto, got \"{}\"", placement.device);
  check_tensor_parallel_size(model_directory, placement.tp);
  RankGroupOptions options;
  options.world = placement.tp;
  options.cpu_threads = placement.threads;
  options.custom_all_reduce_max_bytes = placement.custom_all_reduce_max_bytes;
  const bool cuda = placement.device == "cuda" || (placement.device == "auto" && cuda_device_available());
  options.device = cuda ? DeviceKind::Cuda : DeviceKind::Host;
  return make_rank_group(options);
}

std::unique_ptr<CausalLM> load_model_on(const RankGroup& ranks, const Placement& placement,
                                        const std::string& model_directory, const LoadOptions& options) {
  if (ranks.backends.size() == 1) return load_model(model_directory, *ranks.backends.front(), options);
  TensorParallelOptions tp_options;
  tp_options.bind_thread = ranks.bind_thread;
  tp_options.watchdog.step_timeout = placement.tp_step_timeout;
  return std::make_unique<TensorParallelModel>(model_directory, ranks.backend_pointers(), ranks.communicator_pointers(),
                                               options, tp_options);
}

std::optional<KvCacheDtype> kv_cache_dtype_from(const cxxopts::ParseResult& result) {
  return parse_kv_cache_dtype_option(result["kv-cache-dtype"].as<std::string>());
}

void add_load_options(cxxopts::Options& options) {
  options.add_options()(
      "load-format",
      "auto or safetensors: the checkpoint's weights; dummy: random weights with the shapes of config.json, "
      "generated on the device: the linears its quantization_config stores in FP8 (block or channel) as e4m3 + "
      "scales in the checkpoint's layout (dense with --dequantize-fp8), the rest BF16 on CUDA, f32 on the CPU",
      cxxopts::value<std::string>()->default_value("auto"))(
      "num-layers", "build only the first N decoder layers (0: all); the first_k_dense_replace layers stay dense",
      cxxopts::value<int64_t>()->default_value("0"))(
      "dequantize-fp8", "expand an FP8 checkpoint's e4m3 weights to dense ones at load (values x scales; f32 on the "
                        "CPU, BF16 on CUDA) and run them W8A16 instead of W8A8")(
      "enforce-eager", "launch every op of every step; without it, CUDA decode steps of up to --cuda-graph-max-batch "
                       "sequences replay captured CUDA graphs")(
      "cuda-graph-max-batch", "largest decode batch that replays a CUDA graph",
      cxxopts::value<int64_t>()->default_value("128"))(
      "no-fuse-qkv-a", "load q_a_proj and kv_a_proj_with_mqa as two linears instead of one stacked weight")(
      "no-fuse-shared-expert", "run a lone shared expert as its own MLP instead of one more routed expert")(
      "no-fuse-kv", "load a GQA model's k_proj and v_proj as two linears instead of one stacked weight");
}

LoadOptions load_options_from(const cxxopts::ParseResult& result) {
  LoadOptions options;
  options.format = parse_load_format(result["load-format"].as<std::string>());
  options.num_layers = result["num-layers"].as<int64_t>();
  options.fp8_weights = result.count("dequantize-fp8") ? Fp8Weights::Dequantize : Fp8Weights::Native;
  options.fusions.qkv_a = result.count("no-fuse-qkv-a") == 0;
  options.fusions.shared_expert = result.count("no-fuse-shared-expert") == 0;
  options.fusions.kv = result.count("no-fuse-kv") == 0;
  RS_CHECK(options.num_layers >= 0, "--num-layers must be >= 0, got {}", options.num_layers);
  options.step_graphs.enabled = result.count("enforce-eager") == 0;
  options.step_graphs.max_batch = result["cuda-graph-max-batch"].as<int64_t>();
  RS_CHECK(options.step_graphs.max_batch > 0, "--cuda-graph-max-batch must be > 0, got {}",
           options.step_graphs.max_batch);
  return options;
}

bool parse_or_help(cxxopts::Options& options, const Arguments& args, cxxopts::ParseResult& result) {
  std::vector<const char*> argv{options.program().c_str()};
  for (const auto& arg : args) argv.push_back(arg.c_str());
  try {
    result = options.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const cxxopts::exceptions::exception& error) {
    RS_FAIL("{}", error.what());
  }
  if (result.count("help")) {
    fmt::print("{}", options.help());
    return false;
  }
  RS_CHECK(result.unmatched().empty(), "unexpected argument \"{}\"", result.unmatched().front());
  return true;
}

std::vector<int32_t> parse_token_list(const std::string& text) {
  std::vector<int32_t> tokens;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    std::string_view entry(text.data() + begin, end - begin);
    int32_t value = 0;
    auto [ptr, error] = std::from_chars(entry.data(), entry.data() + entry.size(), value);
    RS_CHECK(!entry.empty() && error == std::errc() && ptr == entry.data() + entry.size() && value >= 0,
             "--tokens: \"{}\" is not a non-negative token id", entry);
    tokens.push_back(value);
    begin = end + 1;
  }
  return tokens;
}

LoadedModel load_model_from_options(const cxxopts::ParseResult& result) {
  RS_CHECK(result.count("model"), "--model DIR is required");
  const std::string directory = result["model"].as<std::string>();
  const Placement placement = placement_from(result);
  const LoadOptions options = load_options_from(result);
  LoadedModel loaded;
  loaded.ranks = make_ranks(placement, directory);
  loaded.model = load_model_on(loaded.ranks, placement, directory, options);
  return loaded;
}

}  // namespace rackserve::cli
