// kernel_roofline section `fp8`: W8A8 FP8 linear through Backend::linear_fp8 (per-token
// activation quantization, then the small-M or tiled e4m3 GEMM) on the per-GPU projections of
// the FP8 checkpoints at TP 4 and 8, each in the scale layout its checkpoint ships:
// DeepSeek-V3 and MiniMax-M2 128x128 blocks, GLM-4.7-FP8 per channel. (GLM and MiniMax use
// GQA attention, which rackserve does not run yet; their q / k / v / o shapes are timed anyway.)
//   decode,  m = 1, 8, 32:    bytes (e4m3 weight + f32 scales + bf16 x and y) over copy bandwidth;
//   prefill, m = 2048, 4096:  flops over the mma.sync e4m3 peak measured in the same run.
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "bench_kernels.h"
#include "roofline.h"

namespace rackserve::bench {

QuantizedWeight random_fp8_weight(Backend& backend, const Shape& shape, Fp8Scaling scaling, uint64_t seed) {
  const bool block = scaling == Fp8Scaling::Block;
  const size_t rank = shape.size();
  const int64_t out = shape[rank - 2], in = shape[rank - 1];
  Shape scale_shape(shape.begin(), shape.end() - 2);  // the experts axis, if any
  if (block) {
    scale_shape.push_back((out + 127) / 128);
    scale_shape.push_back(in / 128);
  } else {
    scale_shape.push_back(out);
  }
  QuantizedWeight weight;
  weight.scaling = scaling;
  weight.block_out = block ? 128 : 0;
  weight.block_in = block ? 128 : 0;
  weight.values = backend.allocate_persistent(DType::F8_E4M3, shape);
  weight.scales = backend.allocate_persistent(DType::F32, scale_shape);
  backend.fill_random(weight.values, seed, 448.0f);  // every finite e4m3 magnitude, never a NaN code
  backend.fill_random(weight.scales, seed + 1, 1.0f / 512);
  return weight;
}

namespace {

struct Fp8Projection {
  std::string name;  // "<model> <projection>[/tp] k->n"
  int64_t n, k;
  Fp8Scaling scaling;
};

// Per-GPU shapes at TP 4 and 8: column-parallel projections (q, k, v, dense gate_up) split n,
// row-parallel ones (o, dense down) split k; DeepSeek's q_a and kv_a are replicated.
std::vector<Fp8Projection> fp8_projections() {
  std::vector<Fp8Projection> list;
  auto add = [&](const char* model, const char* projection, int64_t tp, int64_t n, int64_t k, Fp8Scaling scaling) {
    const std::string split = tp > 1 ? fmt::format("/{}", tp) : "";
    list.push_back({fmt::format("{} {}{} {}->{}", model, projection, split, k, n), n, k, scaling});
  };
  const Fp8Scaling block = Fp8Scaling::Block, channel = Fp8Scaling::Channel;
  // DeepSeek-V3: hidden 7168, MLA (q_lora 1536, kv_lora 512 + rope 64, 128 heads of
  // 128 nope + 64 rope, v 128), dense MLP 18432.
  add("DeepSeek-V3", "q_a", 1, 1536, 7168, block);
  add("DeepSeek-V3", "kv_a", 1, 512 + 64, 7168, block);
  for (int64_t tp : {4, 8}) {
    add("DeepSeek-V3", "q_b", tp, 128 * 192 / tp, 1536, block);
    add("DeepSeek-V3", "o", tp, 7168, 128 * 128 / tp, block);
    add("DeepSeek-V3", "dense gate_up", tp, 2 * 18432 / tp, 7168, block);
    add("DeepSeek-V3", "dense down", tp, 7168, 18432 / tp, block);
  }
  // GLM-4.7-FP8: hidden 5120, 96 query heads and 8 KV heads of 128, dense MLP 12288.
  for (int64_t tp : {4, 8}) {
    add("GLM-4.7", "q", tp, 96 * 128 / tp, 5120, channel);
    add("GLM-4.7", "k|v", tp, 8 * 128 / tp, 5120, channel);
    add("GLM-4.7", "o", tp, 5120, 96 * 128 / tp, channel);
    add("GLM-4.7", "dense gate_up", tp, 2 * 12288 / tp, 5120, channel);
    add("GLM-4.7", "dense down", tp, 5120, 12288 / tp, channel);
  }
  // MiniMax-M2: hidden 3072, 48 query heads and 8 KV heads of 128, every MLP a MoE.
  for (int64_t tp : {4, 8}) {
    add("MiniMax-M2", "q", tp, 48 * 128 / tp, 3072, block);
    add("MiniMax-M2", "k|v", tp, 8 * 128 / tp, 3072, block);
    add("MiniMax-M2", "o", tp, 3072, 48 * 128 / tp, block);
  }
  return list;
}

const char* layout_name(Fp8Scaling scaling) { return scaling == Fp8Scaling::Block ? "128x128" : "channel"; }

}  // namespace

void bench_fp8_linear(const Ceilings& ceilings, bool quick) {
  const std::vector<Fp8Projection> projections = fp8_projections();
  const std::vector<int64_t> decode_m = quick ? std::vector<int64_t>{1, 32} : std::vector<int64_t>{1, 8, 32};
  const std::vector<int64_t> prefill_m = quick ? std::vector<int64_t>{4096} : std::vector<int64_t>{2048, 4096};
  std::printf("\n## FP8 W8A8 linear, decode (e4m3 weight + f32 scales, activations quantized per token)\n\n");
  std::printf("bytes = e4m3 weight + f32 scales + bf16 x and y; the time includes the quantize kernel (a model fuses "
              "it into the norm or SiLU before). time = eager calls (host launches included); graph = the same calls "
              "replayed as a CUDA graph, as a decode step runs them; read us = a kernel that only reads the same "
              "bytes, timed the same way (bench_kernels.h), and graph / read its fraction. GEMM columns: the GEMM "
              "alone on x already in e4m3 (what a decode step runs after a fused norm or SiLU; bytes with e4m3 x and "
              "its scales), as a graph, and over a read of its own bytes.\n\n");
  std::printf("| shape | scales | m | time us | GB/s | fraction of copy bw | graph us | graph fraction | read us | "
              "graph / read | GEMM graph us | GEMM fraction | GEMM / read |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  // Prefill rows are printed after the decode table; collected here so each weight is made once.
  std::vector<std::string> prefill_rows;
  for (const Fp8Projection& projection : projections) {
    auto backend = make_cuda_backend(CudaBackendOptions{});
    std::vector<QuantizedWeight> weights;
    weights.push_back(random_fp8_weight(*backend, {projection.n, projection.k}, projection.scaling, 1));
    const int64_t weight_bytes = int64_t(weights[0].values.bytes() + weights[0].scales.bytes());
    const int copies = rotation_copies(weight_bytes);
    for (int copy = 1; copy < copies; ++copy)
      weights.push_back(random_fp8_weight(*backend, {projection.n, projection.k}, projection.scaling, 1 + 2 * copy));
    // Eager seconds per call, and with `graph` also per call replayed in a CUDA graph.
    auto time_linear = [&](int64_t m, int iterations, int repeats, double* graph) {
      Tensor x = backend->allocate_persistent(DType::BF16, {m, projection.k});
      backend->fill_random(x, 7, 1.0f);
      auto call = [&](int i) {
        backend->begin_step();
        backend->linear_fp8(x, weights[i % weights.size()]);
      };
      // Eager first: it grows the step arena, so the capture allocates nothing.
      const double seconds = seconds_per_call(call, iterations, repeats);
      if (graph) *graph = seconds_per_call_in_graph(backend->native_stream(), call, iterations, repeats);
      return seconds;
    };
    // Graph seconds per GEMM on x already quantized (random e4m3 codes and scales, persistent).
    auto time_gemm_alone = [&](int64_t m) {
      const Fp8ActivationLayout layout = Fp8ActivationLayout::of(weights[0]);
      QuantizedActivation x{backend->allocate_persistent(DType::F8_E4M3, {m, projection.k}),
                            backend->allocate_persistent(DType::F32, layout.scales_shape(m, projection.k)), layout};
      backend->fill_random(x.values, 11, 448.0f);
      backend->fill_random(x.scales, 12, 1.0f / 512);
      auto call = [&](int i) {
        backend->begin_step();
        backend->linear_fp8(x, weights[i % weights.size()]);
      };
      seconds_per_call(call, 20, 1);  // grows the step arena before the capture
      return seconds_per_call_in_graph(backend->native_stream(), call, 20, 5);
    };
    for (int64_t m : decode_m) {
      double graph = 0.0;
      const double seconds = time_linear(m, 20, 5, &graph);
      const double bytes = weight_bytes + 2.0 * m * (projection.k + projection.n);
      const double read = measure_stream_read_seconds(static_cast<int64_t>(bytes), copies, backend->native_stream());
      const double gemm = time_gemm_alone(m);
      const Fp8ActivationLayout layout = Fp8ActivationLayout::of(weights[0]);
      const Shape x_scales = layout.scales_shape(m, projection.k);
      const double gemm_bytes = weight_bytes + double(m) * projection.k + 4.0 * shape_numel(x_scales) +
                                2.0 * m * projection.n;
      const double gemm_read =
          measure_stream_read_seconds(static_cast<int64_t>(gemm_bytes), copies, backend->native_stream());
      std::printf("| %s | %s | %lld | %.1f | %.0f | %.2f | %.1f | %.2f | %.1f | %.2f | %.1f | %.2f | %.2f |\n",
                  projection.name.c_str(), layout_name(projection.scaling), static_cast<long long>(m), seconds * 1e6,
                  bytes / seconds / 1e9, bytes / seconds / ceilings.bandwidth, graph * 1e6,
                  bytes / graph / ceilings.bandwidth, read * 1e6, read / graph, gemm * 1e6,
                  gemm_bytes / gemm / ceilings.bandwidth, gemm_read / gemm);
    }
    for (int64_t m : prefill_m) {
      const double seconds = time_linear(m, 5, 3, nullptr);
      const double flops = 2.0 * m * projection.n * projection.k;
      prefill_rows.push_back(fmt::format("| {} | {} | {} | {:.1f} | {:.1f} | {:.2f} | {:.2f} |", projection.name,
                                         layout_name(projection.scaling), m, seconds * 1e6, flops / seconds / 1e12,
                                         flops / seconds / ceilings.mma_e4m3, flops / seconds / ceilings.mma_bf16));
    }
  }
  std::printf("\n## FP8 W8A8 linear, prefill (fraction of the mma.sync peaks measured above)\n\n");
  std::printf("The time includes the activation quantize kernel. For cuBLAS FP8 at these shapes run "
              "bench/cublas_fp8.py.\n\n");
  std::printf("| shape | scales | m | time us | TFLOP/s | fraction of mma.sync e4m3 | fraction of mma.sync bf16 |\n"
              "|---|---|---|---|---|---|---|\n");
  for (const std::string& row : prefill_rows) std::printf("%s\n", row.c_str());
}

}  // namespace rackserve::bench
