// One full decode step of a model's layers (DeepSeek-V3 family with MLA, GLM-4.x / MiniMax-M2
// with GQA) on the CUDA backend, against its bandwidth floor. The model is built from a real
// config.json with dummy weights (--load-format dummy) and as many layers as fit
// (--num-layers overrides); B sequences each hold C tokens of random cache entries in the
// paged KV cache (not prefilled through the model), and each step decodes one token per
// sequence through the model's forward.
//
// Floor = bytes that must be read / copy bandwidth measured in the same run, where the
// bytes are: every weight outside the routed experts once (attention, norms, dense MLPs,
// shared experts, routers, lm_head; of the embedding only the step's rows), the routed
// experts the step's routing actually chose (read back from the routing of the timed
// inputs: every timed step repeats the same tokens at the same positions), and the KV
// cache of every sequence and layer (C + 1 entries of kv_lora + rope values for MLA, of
// 2 x KV heads x head_dim for GQA, BF16).
// The kernel-by-kernel table comes from the CUDA backend's op profiler (cudaEvent pairs).
// Steps are timed twice in the same run: eager (every op launched) and replaying the
// captured CUDA graph of the step (the server's default for decode batches).
// A config with an FP8 quantization_config (DeepSeek-V3's fp8 blocks) gets FP8 dummy linears
// and runs W8A8: its weight bytes count 1 per value plus the f32 scales (kv_b_proj stays
// BF16, see plan_dummy_weights); --dequantize-fp8 runs the same model with dense BF16 linears.
//
// usage: decode_step CONFIG_DIR [--num-layers N] [--batch 1,32] [--context 1024]
//                    [--steps 20] [--page-size 64] [--seed 1] [--dequantize-fp8]
//                    [--overlap-launches]   (CudaBackendOptions::overlap_launches)
//                    [--no-fuse-qkv-a] [--no-fuse-shared-expert] [--no-fuse-kv]   (LoadOptions::fusions: time the unfused layers)
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <set>
#include <string>
#include <vector>

#include "backend/cuda/profiling_cuda_backend.h"
#include "copy_bandwidth.h"
#include "core/error.h"
#include "models/dummy_weight_plan.h"
#include "models/model.h"
#include "rackserve/random_hash.h"

namespace rackserve {
namespace {

void check_cuda(cudaError_t status, const char* what) {
  RS_CHECK(status == cudaSuccess, "{}: {}", what, cudaGetErrorString(status));
}

struct Arguments {
  std::string config_dir;
  int64_t num_layers = 0;  // 0: as many as fit
  std::vector<int64_t> batches{1, 32};
  int64_t context = 1024;
  int steps = 20;
  int64_t page_size = 64;
  uint64_t seed = 1;
  Fp8Weights fp8_weights = Fp8Weights::Native;
  bool overlap_launches = true;  // CudaBackendOptions::overlap_launches; --no-overlap-launches
  WeightFusions fusions;          // --no-fuse-qkv-a / --no-fuse-shared-expert / --no-fuse-kv: the unfused layers
};

// The CUDA backend with the op profiler, and on request the number of distinct experts
// each moe_route call chose (one entry per MoE layer of the step; costs a download each).
// Step graphs only when allowed and neither counting nor profiling reads back per op.
class DecodeBenchBackend final : public ProfilingCudaBackend {
 public:
  using ProfilingCudaBackend::ProfilingCudaBackend;

  bool supports_step_graphs() const override {
    return allow_graphs && !count_routing && ProfilingCudaBackend::supports_step_graphs();
  }
  bool allow_graphs = false;

  MoeRouting moe_route(const Tensor& router_logits, const Tensor& score_correction_bias,
                       const MoeRouterParams& params) override {
    MoeRouting routing = ProfilingCudaBackend::moe_route(router_logits, score_correction_bias, params);
    if (count_routing) {
      // Routed experts only: a stacked shared expert (id >= the router's experts) is counted
      // with the layer's every-step bytes.
      std::vector<float> ids = download_f32(routing.expert_ids);  // small integers: exact
      std::set<float> routed;
      for (float id : ids)
        if (id < static_cast<float>(router_logits.dim(1))) routed.insert(id);
      experts_touched.push_back(static_cast<int64_t>(routed.size()));
    }
    return routing;
  }

  bool count_routing = false;
  std::vector<int64_t> experts_touched;
};

constexpr double kGiB = double(1 << 30);
// Left free beside weights and KV: step activations, logits, kernel workspaces.
constexpr double kReserveBytes = 4 * kGiB;
// Of the device's total memory, as the server's default gpu_memory_utilization.
constexpr double kMemoryUtilization = 0.9;

int64_t pages_per_sequence(const Arguments& args) { return (args.context + 1 + args.page_size - 1) / args.page_size; }

// KV bytes one layer holds for the largest batch (BF16 cache entries).
double kv_bytes_per_layer(const ModelConfig& config, const Arguments& args) {
  const int64_t batch = *std::max_element(args.batches.begin(), args.batches.end());
  return double(batch) * pages_per_sequence(args) * args.page_size * config.kv_cache_values() * 2;
}

int64_t choose_layers(const ModelConfig& config, const Arguments& args) {
  size_t free_bytes = 0, total_bytes = 0;
  check_cuda(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  const double budget = std::min<double>(free_bytes, kMemoryUtilization * total_bytes) - kReserveBytes;
  const DummyWeightPlan plan = plan_dummy_weights(config, args.fp8_weights, QuantConfig::load(args.config_dir));
  const double kv = kv_bytes_per_layer(config, args);
  int64_t layers = 0;
  while (layers < config.num_layers && plan.total_of_first(layers + 1) + kv * (layers + 1) <= budget) ++layers;
  std::printf("memory: %.1f GiB free of %.1f GiB; budget %.1f GiB (%.0f%% of total, %.0f GiB reserve) -> %lld layers\n",
              free_bytes / kGiB, total_bytes / kGiB, budget / kGiB, kMemoryUtilization * 100, kReserveBytes / kGiB,
              static_cast<long long>(layers));
  RS_CHECK(layers > 0, "not even one layer fits");
  return layers;
}

ForwardBatch decode_batch(const ModelConfig& config, const Arguments& args, int64_t batch) {
  ForwardBatch step;
  const int64_t pages = pages_per_sequence(args);
  for (int64_t s = 0; s < batch; ++s) {
    SequenceChunk sequence;
    sequence.token_ids = {static_cast<int32_t>(mix_hash(args.seed, s) % static_cast<uint64_t>(config.vocab_size))};
    sequence.start_position = static_cast<int32_t>(args.context);
    for (int64_t p = 0; p < pages; ++p) sequence.pages.push_back(static_cast<int32_t>(s * pages + p));
    step.sequences.push_back(std::move(sequence));
  }
  return step;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

void run_batch(CausalLM& model, DecodeBenchBackend& backend, PagedKvCache& cache, const DummyWeightPlan& plan,
               const Arguments& args, int64_t batch, double bandwidth) {
  const ModelConfig& config = model.config();
  const ForwardBatch step = decode_batch(config, args, batch);
  auto run_step = [&] {
    model.forward(step, cache);
    check_cuda(cudaDeviceSynchronize(), "decode step");
  };

  // The routing of these inputs (every later step repeats it).
  backend.experts_touched.clear();
  backend.count_routing = true;
  run_step();
  backend.count_routing = false;
  const std::vector<int64_t> touched = backend.experts_touched;

  auto time_steps = [&](bool graphs) {
    backend.allow_graphs = graphs;
    for (int i = 0; i < 3; ++i) run_step();  // warm-up; captures the graph when allowed
    std::vector<double> seconds;
    for (int i = 0; i < args.steps; ++i) {
      auto start = std::chrono::steady_clock::now();
      run_step();
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    backend.allow_graphs = false;
    return seconds;
  };
  const std::vector<double> eager_seconds = time_steps(false);
  const std::vector<double> seconds = time_steps(true);
  const double eager_step_seconds = median(eager_seconds);
  // Bytes that must be read.
  const int64_t layers = config.num_layers;
  double weight_bytes = double(batch) * config.hidden_size * 2 + double(plan.head);
  double dense_layer_bytes = 0, moe_layer_bytes = 0;
  int64_t dense_layers = 0, moe_layers = 0;
  size_t moe_index = 0;
  for (int64_t l = 0; l < layers; ++l) {
    const LayerWeightBytes& layer = plan.layers[l];
    double bytes = double(layer.read_every_step);
    if (layer.num_routed_experts > 0) {
      RS_CHECK(moe_index < touched.size(), "fewer moe_route calls ({}) than MoE layers", touched.size());
      bytes += double(touched[moe_index++]) * double(layer.bytes_per_expert());
      moe_layer_bytes += bytes;
      ++moe_layers;
    } else {
      dense_layer_bytes += bytes;
      ++dense_layers;
    }
    weight_bytes += bytes;
  }
  // KV bytes a query reads per layer (bf16): its whole context, or under DeepSeek sparse attention
  // the index_topk chosen latents plus every cached indexer key (the indexer scores them all).
  const int64_t keys = args.context + 1;
  const double kv_values_per_query =
      config.indexer && keys > config.indexer->top_k
          ? double(config.indexer->top_k) * config.kv_cache_values() + double(keys) * config.indexer->head_dim
          : double(keys) * (config.kv_cache_values() + (config.indexer ? config.indexer->head_dim : 0));
  const double kv_bytes_layer = double(batch) * kv_values_per_query * 2;
  const double kv_bytes = kv_bytes_layer * layers;
  const double floor_seconds = (weight_bytes + kv_bytes) / bandwidth;
  double touched_mean = 0;
  for (int64_t t : touched) touched_mean += double(t) / std::max<size_t>(1, touched.size());

  std::printf("\n## batch %lld, context %lld, %lld layers (%lld dense, %lld MoE)\n\n", static_cast<long long>(batch),
              static_cast<long long>(args.context), static_cast<long long>(layers),
              static_cast<long long>(dense_layers), static_cast<long long>(moe_layers));
  std::printf("| mode | step ms (median of %d) | min ms | per layer ms | weights read GB | KV read MB | experts "
              "touched / MoE layer | floor ms | fraction of floor |\n|---|---|---|---|---|---|---|---|---|\n",
              args.steps);
  auto print_row = [&](const char* mode, const std::vector<double>& times) {
    const double median_seconds = median(times);
    std::printf("| %s | %.3f | %.3f | %.3f | %.3f | %.1f | %.1f | %.3f | %.2f |\n", mode, median_seconds * 1e3,
                *std::min_element(times.begin(), times.end()) * 1e3, median_seconds * 1e3 / layers,
                weight_bytes / 1e9, kv_bytes / 1e6, touched_mean, floor_seconds * 1e3, floor_seconds / median_seconds);
  };
  print_row("CUDA graph", seconds);
  print_row("eager", eager_seconds);
  const int64_t kernels = backend.last_step_graph_kernels();
  std::printf("\nkernels per step (the captured graph): %lld, %.1f per layer; %lld kernel edges made programmatic\n",
              static_cast<long long>(kernels), double(kernels) / static_cast<double>(layers),
              static_cast<long long>(backend.last_step_graph_overlapped_edges()));
  std::printf("\nfloor per layer: dense %.1f us (%.3f GB + %.2f MB KV), MoE %.1f us (%.3f GB + %.2f MB KV); "
              "outside layers (lm_head, embedding rows) %.1f us\n",
              dense_layers ? (dense_layer_bytes / dense_layers + kv_bytes_layer) / bandwidth * 1e6 : 0.0,
              dense_layers ? dense_layer_bytes / dense_layers / 1e9 : 0.0, kv_bytes_layer / 1e6,
              moe_layers ? (moe_layer_bytes / moe_layers + kv_bytes_layer) / bandwidth * 1e6 : 0.0,
              moe_layers ? moe_layer_bytes / moe_layers / 1e9 : 0.0, kv_bytes_layer / 1e6,
              (double(plan.head) + double(batch) * config.hidden_size * 2) / bandwidth * 1e6);

  // Kernel-by-kernel: GPU time per op label, over a few profiled steps.
  const int profiled_steps = 5;
  OpProfiler& profiler = backend.profiler();
  profiler.reset();
  profiler.set_enabled(true);
  for (int i = 0; i < profiled_steps; ++i) run_step();
  profiler.set_enabled(false);
  const std::vector<OpTiming> timings = profiler.collect();
  double gpu_ms = 0;
  for (const OpTiming& t : timings) gpu_ms += t.milliseconds / profiled_steps;
  std::printf("\nops (eager, GPU time per step from cudaEvent pairs; %.3f ms in ops vs %.3f ms eager wall: the rest "
              "is host time between launches)\n\n| op | calls / step | us / step | us / call | share |\n|---|---|---|---|---|\n",
              gpu_ms, eager_step_seconds * 1e3);
  for (const OpTiming& t : timings)
    std::printf("| %s | %.0f | %.1f | %.1f | %.1f%% |\n", t.label.c_str(), double(t.calls) / profiled_steps,
                t.milliseconds * 1e3 / profiled_steps, t.milliseconds * 1e3 / t.calls,
                100.0 * t.milliseconds / profiled_steps / gpu_ms);
}

int run(const Arguments& args) {
  cudaDeviceProp properties{};
  check_cuda(cudaGetDeviceProperties(&properties, 0), "cudaGetDeviceProperties");
  char date[32];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  const double bandwidth = bench::measure_copy_bandwidth();
  std::printf("# decode step: %s (sm_%d%d, %d SMs), %s\n\nconfig: %s\ncopy bandwidth: %.0f GB/s (read + write, 1 GiB "
              "D2D)\n",
              properties.name, properties.major, properties.minor, properties.multiProcessorCount, date,
              args.config_dir.c_str(), bandwidth / 1e9);

  const ModelConfig full = ModelConfig::load(args.config_dir);
  LoadOptions load;
  load.format = LoadFormat::Dummy;
  load.num_layers = args.num_layers ? args.num_layers : choose_layers(full, args);
  load.dummy_seed = args.seed;
  load.fp8_weights = args.fp8_weights;
  load.fusions = args.fusions;
  std::printf("fused weights: q_a + kv_a %s, shared expert with the routed ones %s, GQA k + v %s\n",
              args.fusions.qkv_a ? "on" : "off", args.fusions.shared_expert ? "on" : "off",
              args.fusions.kv ? "on" : "off");
  // What the dummy weights hold: the formats of the config's manifest as dummy_quant_config keeps them.
  const QuantConfig stated = QuantConfig::load(args.config_dir);
  const WeightManifest manifest = dummy_weight_manifest(full, dummy_quant_config(full, Fp8Weights::Native, stated));
  auto holds = [&](auto&& predicate) {
    return std::any_of(manifest.entries().begin(), manifest.entries().end(), predicate);
  };
  const bool fp8_config = holds([](const ManifestEntry& e) {
    return e.format == WeightFormat::Fp8Block || e.format == WeightFormat::Fp8Channel;
  });
  const bool int4_config = holds([](const ManifestEntry& e) { return e.format == WeightFormat::Int4Group; });
  const char* format = int4_config ? (args.fp8_weights == Fp8Weights::Dequantize
                                          ? "BF16, the INT4 experts dequantized"
                                          : "INT4 routed experts (W4A16: 4-bit codes + bf16 group scales), the rest BF16")
                       : !fp8_config ? "BF16"
                       : args.fp8_weights == Fp8Weights::Dequantize
                           ? "BF16, the FP8 linears dequantized: W8A16"
                           : "FP8 W8A8: e4m3 linears + f32 scales, the rest BF16";
  const DummyWeightPlan plan = plan_dummy_weights(with_layers_cut(full, load.num_layers), args.fp8_weights, stated);
  std::printf("weights: %lld of %lld layers, %.2f GB (%s dummy weights)\n", static_cast<long long>(load.num_layers),
              static_cast<long long>(full.num_layers), plan.total() / 1e9, format);

  CudaBackendOptions options;
  options.profile_ops = true;
  options.overlap_launches = args.overlap_launches;
  std::printf("decode GEMM launches: %s\n", args.overlap_launches
                                                ? "programmatic dependent launch (overlapping the previous kernel)"
                                                : "plain stream order");
  DecodeBenchBackend backend(options);
  backend.profiler().set_enabled(false);
  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<CausalLM> model = load_model(args.config_dir, backend, load);
  check_cuda(cudaDeviceSynchronize(), "load");
  std::printf("load: %.2f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());

  const int64_t max_batch = *std::max_element(args.batches.begin(), args.batches.end());
  PagedKvCache cache = model->allocate_kv_cache(max_batch * pages_per_sequence(args), args.page_size);
  backend.fill_random(cache.storage(), args.seed + 1, 1.0f);  // random entries; each step rewrites position C

  for (int64_t batch : args.batches) run_batch(*model, backend, cache, plan, args, batch, bandwidth);
  return 0;
}

std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> values;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = std::min(text.find(',', begin), text.size());
    values.push_back(std::stoll(text.substr(begin, end - begin)));
    RS_CHECK(values.back() > 0, "--batch values must be positive");
    begin = end + 1;
  }
  return values;
}

Arguments parse(int argc, char** argv) {
  Arguments args;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> std::string {
      RS_CHECK(i + 1 < argc, "{} needs a value", flag);
      return argv[++i];
    };
    if (flag == "--num-layers")
      args.num_layers = std::stoll(value());
    else if (flag == "--batch")
      args.batches = parse_list(value());
    else if (flag == "--context")
      args.context = std::stoll(value());
    else if (flag == "--steps")
      args.steps = std::stoi(value());
    else if (flag == "--page-size")
      args.page_size = std::stoll(value());
    else if (flag == "--seed")
      args.seed = std::stoull(value());
    else if (flag == "--dequantize-fp8")
      args.fp8_weights = Fp8Weights::Dequantize;
    else if (flag == "--no-overlap-launches")
      args.overlap_launches = false;
    else if (flag == "--no-fuse-qkv-a")
      args.fusions.qkv_a = false;
    else if (flag == "--no-fuse-shared-expert")
      args.fusions.shared_expert = false;
    else if (flag == "--no-fuse-kv")
      args.fusions.kv = false;
    else if (args.config_dir.empty() && !flag.starts_with("--"))
      args.config_dir = flag;
    else
      RS_FAIL("unknown argument \"{}\"", flag);
  }
  RS_CHECK(!args.config_dir.empty(),
           "usage: decode_step CONFIG_DIR [--num-layers N] [--batch 1,32] [--context 1024] [--steps 20] "
           "[--page-size 64] [--seed 1] [--dequantize-fp8] [--no-overlap-launches] [--no-fuse-qkv-a] "
           "[--no-fuse-shared-expert] [--no-fuse-kv]");
  RS_CHECK(args.num_layers >= 0 && args.context >= 0 && args.steps > 0 && args.page_size > 0, "bad argument value");
  return args;
}

}  // namespace
}  // namespace rackserve

int main(int argc, char** argv) {
  try {
    return rackserve::run(rackserve::parse(argc, argv));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "decode_step: %s\n", error.what());
    return 1;
  }
}
