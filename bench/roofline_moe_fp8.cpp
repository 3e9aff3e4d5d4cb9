// kernel_roofline section `moe_fp8`: the fused FP8 routed experts (Backend::moe_experts with
// FP8 experts: align -> quantize x -> gate_up GEMM -> SiLU x up + quantize -> down GEMM -> slot
// sum, kernels/moe/moe_experts_fp8.cu) at decode sizes, on the per-GPU expert shapes of the
// FP8 checkpoints at TP 4 and 8, with the config the backend selects and, up to 64 tokens,
// with the small-M path forced (MoeFp8Config::small_m). Each is timed three ways:
//   eager   Backend::moe_experts as the server calls it (host launch cost included);
//   graph   the same launches captured into a CUDA graph (GPU time and inter-kernel gaps);
//   GEMMs   only the two GEMM kernels of that graph, chained (the memory-bound part).
// Routing is uniform random, top_k distinct experts per token, a different routing every call
// (16 rotate, one graph each), so small batches read their experts from memory, not L2.
// Bytes = e4m3 weights + f32 scales of the experts the routing touches + bf16 x + f32 output.
#include <cuda_runtime.h>

#include <cstdio>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "rackserve/kernels/moe_fp8_params.h"
#include "bench_kernels.h"
#include "roofline.h"

namespace rackserve::bench {
namespace {

struct MoeFp8Model {
  const char* name;
  Fp8Scaling scaling;
  int64_t experts, top_k, hidden, inter;  // inter before TP
};

constexpr int kRoutings = 16;

// A routing kept in persistent tensors: top_k distinct uniform random experts per token.
struct RandomRouting {
  MoeRouting routing;
  int64_t distinct_experts = 0;
};

RandomRouting random_routing(Backend& backend, int64_t tokens, int64_t top_k, int64_t experts, std::mt19937& rng) {
  std::vector<int32_t> ids;
  std::set<int32_t> distinct;
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(experts - 1));
  for (int64_t t = 0; t < tokens; ++t) {
    std::set<int32_t> chosen;
    while (static_cast<int64_t>(chosen.size()) < top_k) chosen.insert(pick(rng));
    ids.insert(ids.end(), chosen.begin(), chosen.end());
    distinct.insert(chosen.begin(), chosen.end());
  }
  std::vector<float> weights(ids.size(), 1.0f / static_cast<float>(top_k));
  RandomRouting out;
  out.routing.expert_ids =
      backend.upload_persistent(Tensor{ids.data(), DType::I32, {tokens, top_k}, Device{}}, DType::I32);
  out.routing.weights =
      backend.upload_persistent(Tensor{weights.data(), DType::F32, {tokens, top_k}, Device{}}, DType::F32);
  out.distinct_experts = static_cast<int64_t>(distinct.size());
  return out;
}

// Whether a kernel is one of the expert GEMMs: the tiled moe_fp8_gemm_kernel or the small-M
// kernel with the experts' policy (their gate_up and down instantiations may differ).
bool is_expert_gemm(const void* func) {
  const char* name = nullptr;
  if (cudaFuncGetName(&name, func) != cudaSuccess || !name) {
    cudaGetLastError();
    return false;
  }
  const std::string text(name);
  return text.find("moe_fp8_gemm_kernel") != std::string::npos || text.find("MoeFp8SmallMPolicy") != std::string::npos;
}

// A new graph of the two expert GEMM kernels of `captured` (is_expert_gemm), chained in the
// order cudaGraphGetNodes lists them. nullptr when the captured graph does not hold exactly two.
cudaGraph_t gemm_kernels_only(cudaGraph_t captured) {
  size_t count = 0;
  check_cuda(cudaGraphGetNodes(captured, nullptr, &count), "cudaGraphGetNodes");
  std::vector<cudaGraphNode_t> nodes(count);
  check_cuda(cudaGraphGetNodes(captured, nodes.data(), &count), "cudaGraphGetNodes");
  std::vector<cudaKernelNodeParams> kernels;
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type;
    check_cuda(cudaGraphNodeGetType(node, &type), "cudaGraphNodeGetType");
    if (type != cudaGraphNodeTypeKernel) continue;
    cudaKernelNodeParams params{};
    if (cudaGraphKernelNodeGetParams(node, &params) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    if (is_expert_gemm(params.func)) kernels.push_back(params);
  }
  if (kernels.size() != 2) return nullptr;
  cudaGraph_t graph = nullptr;
  check_cuda(cudaGraphCreate(&graph, 0), "cudaGraphCreate");
  cudaGraphNode_t previous = nullptr;
  for (const cudaKernelNodeParams& params : kernels) {
    cudaGraphNode_t node = nullptr;
    check_cuda(cudaGraphAddKernelNode(&node, graph, previous ? &previous : nullptr, previous ? 1 : 0, &params),
               "cudaGraphAddKernelNode");
    previous = node;
  }
  return graph;
}

cudaGraphExec_t instantiate(cudaGraph_t graph) {
  cudaGraphExec_t exec = nullptr;
  check_cuda(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
  return exec;
}

// Median seconds per launch of the graphs in turn (graph i % size on call i).
double seconds_per_graph(const std::vector<cudaGraphExec_t>& graphs, cudaStream_t stream) {
  size_t call = 0;
  return seconds_per_call(
      [&](int) { check_cuda(cudaGraphLaunch(graphs[call++ % graphs.size()], stream), "cudaGraphLaunch"); }, 16);
}

std::string config_string(const kernels::MoeFp8Config& c, int64_t tokens) {
  if (kernels::moe_fp8_small_m_applies(c, tokens)) return "small-M";
  return fmt::format("{}x{}x{} s{} w{}", c.block_m, c.block_n, c.block_k, c.stages, c.warps);
}

}  // namespace

void bench_moe_fp8(const Ceilings& ceilings, bool quick) {
  const std::vector<MoeFp8Model> models = {{"DeepSeek-V3", Fp8Scaling::Block, 256, 8, 7168, 2048},
                                           {"GLM-4.7", Fp8Scaling::Channel, 160, 8, 5120, 1536},
                                           {"MiniMax-M2", Fp8Scaling::Block, 256, 8, 3072, 1536}};
  const std::vector<int64_t> token_counts = quick ? std::vector<int64_t>{1, 32} : std::vector<int64_t>{1, 8, 32, 64};
  std::vector<std::string> skipped;
  std::printf("\n## FP8 MoE experts, decode (routed experts only; bytes = experts actually touched)\n\n");
  std::printf("eager = Backend::moe_experts; graph = its launches replayed as a CUDA graph; GEMMs = the graph's two "
              "GEMM kernels alone. Fractions: the same bytes over each time. config = what the backend runs for the "
              "step (the device's tuned file, else the kernels' default), then small-M = the small-M path forced "
              "(MoeFp8Config::small_m) where the selection is not already it. read us = a kernel that only reads the "
              "same bytes from DRAM, in a graph (bench_kernels.h), and graph / read the full graph's fraction of "
              "it.\n\n");
  std::printf("| model | TP | scales | tokens | config | experts touched | MB | eager us | graph us | GEMMs us | "
              "eager | graph | GEMMs | read us | graph / read |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const MoeFp8Model& model : models) {
    for (int64_t tp : {4, 8}) {
      const int64_t inter = model.inter / tp;
      const bool block = model.scaling == Fp8Scaling::Block;
      if (block && inter % 128 != 0) {
        skipped.push_back(fmt::format("{} TP {}: per-GPU intermediate {} is not a multiple of the 128-wide scale "
                                      "blocks, which the Block kernels need; not run.",
                                      model.name, tp, inter));
        continue;
      }
      auto backend = make_cuda_backend(CudaBackendOptions{});
      auto stream = static_cast<cudaStream_t>(backend->native_stream());
      ExpertWeights experts;
      experts.gate_up_fp8 = random_fp8_weight(*backend, {model.experts, 2 * inter, model.hidden}, model.scaling, 41);
      experts.down_fp8 = random_fp8_weight(*backend, {model.experts, model.hidden, inter}, model.scaling, 43);
      const double expert_bytes =
          double(experts.gate_up_fp8->values.bytes() + experts.gate_up_fp8->scales.bytes() +
                 experts.down_fp8->values.bytes() + experts.down_fp8->scales.bytes()) /
          model.experts;
      std::mt19937 rng(static_cast<uint32_t>(model.experts * 131 + tp));
      for (int64_t tokens : token_counts) {
        Tensor x = backend->allocate_persistent(DType::BF16, {tokens, model.hidden});
        backend->fill_random(x, 24, 1.0f);
        std::vector<RandomRouting> routings;
        double touched = 0.0;
        for (int r = 0; r < kRoutings; ++r) {
          routings.push_back(random_routing(*backend, tokens, model.top_k, model.experts, rng));
          touched += double(routings.back().distinct_experts) / kRoutings;
        }
        // The backend's selection, then (decode sizes) the small-M path forced.
        CudaBackend& cuda = dynamic_cast<CudaBackend&>(*backend);
        std::vector<std::optional<kernels::MoeFp8Config>> runs = {std::nullopt};
        kernels::MoeFp8Config small_m;
        small_m.small_m = true;
        if (kernels::moe_fp8_small_m_applies(small_m, tokens) &&
            !kernels::moe_fp8_small_m_applies(cuda.moe_fp8_config(experts, tokens, model.top_k), tokens))
          runs.push_back(small_m);
        for (const std::optional<kernels::MoeFp8Config>& forced : runs) {
          auto run_moe = [&](const MoeRouting& routing) {
            if (forced)
              cuda.moe_experts_fp8(x, routing, experts, *forced);
            else
              backend->moe_experts(x, routing, experts);
          };
          size_t call = 0;
          const double eager = seconds_per_call(
              [&](int) {
                backend->begin_step();
                run_moe(routings[call++ % kRoutings].routing);
              },
              16);
          // One graph per routing, each with its own step buffers (the arena is not rewound
          // between captures): a GEMMs-only graph reads the pair lists and quantized activations
          // its full graph left there, so it streams its own routing's experts.
          std::vector<cudaGraphExec_t> full, gemms;
          backend->begin_step();
          for (const RandomRouting& routing : routings) {
            cudaGraph_t captured = nullptr;
            check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed), "cudaStreamBeginCapture");
            run_moe(routing.routing);
            check_cuda(cudaStreamEndCapture(stream, &captured), "cudaStreamEndCapture");
            full.push_back(instantiate(captured));
            if (cudaGraph_t only = gemm_kernels_only(captured)) {
              gemms.push_back(instantiate(only));
              cudaGraphDestroy(only);
            }
            cudaGraphDestroy(captured);
          }
          const double graph = seconds_per_graph(full, stream);  // runs every full graph: the GEMMs' inputs
          const double gemm = gemms.size() == full.size() ? seconds_per_graph(gemms, stream) : 0.0;
          for (cudaGraphExec_t exec : full) cudaGraphExecDestroy(exec);
          for (cudaGraphExec_t exec : gemms) cudaGraphExecDestroy(exec);

          const double bytes = touched * expert_bytes + double(tokens) * model.hidden * (2 + 4);
          const double read = measure_stream_read_seconds(static_cast<int64_t>(bytes),
                                                          rotation_copies(static_cast<int64_t>(bytes)), stream);
          auto fraction = [&](double seconds) { return bytes / seconds / ceilings.bandwidth; };
          const std::string gemm_columns[2] = {gemm > 0 ? fmt::format("{:.1f}", gemm * 1e6) : "-",
                                               gemm > 0 ? fmt::format("{:.2f}", fraction(gemm)) : "-"};
          const kernels::MoeFp8Config config = forced ? *forced : cuda.moe_fp8_config(experts, tokens, model.top_k);
          std::printf("| %s | %lld | %s | %lld | %s | %.1f | %.1f | %.1f | %.1f | %s | %.2f | %.2f | %s | %.1f | "
                      "%.2f |\n",
                      model.name, static_cast<long long>(tp), block ? "128x128" : "channel",
                      static_cast<long long>(tokens), config_string(config, tokens).c_str(), touched, bytes / 1e6,
                      eager * 1e6, graph * 1e6, gemm_columns[0].c_str(), fraction(eager), fraction(graph),
                      gemm_columns[1].c_str(), read * 1e6, read / graph);
        }
      }
    }
  }
  for (const std::string& note : skipped) std::printf("\n%s\n", note.c_str());
}

}  // namespace rackserve::bench
