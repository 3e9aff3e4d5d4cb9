// Kernel roofline benchmark: times the CUDA backend's ops on the real DeepSeek-V3 /
// Kimi-K2 shapes (and the FP8 models' per-GPU shapes: roofline_fp8.cpp, roofline_moe_fp8.cpp)
// and prints each next to its ceiling, measured in the same run (roofline.h):
//   - memory-bound ops (decode GEMM, FP8 decode GEMM, MLA decode, MoE decode): bytes that must be read
//     (each weight / cache byte once) over the measured device-to-device copy bandwidth
//     (bytes read + bytes written by a 1 GiB cudaMemcpy);
//   - compute-bound ops: BF16 prefill GEMM over the measured cuBLAS BF16 GEMM rate, FP8 prefill
//     GEMM over the measured mma.sync e4m3 peak (bench_kernels.cu).
// Ops go through the Backend interface, so the numbers include the dispatch the server
// uses. Inputs are random (Backend::fill_random), never zeros; weights rotate among
// copies that together exceed 4x the L2 cache, so nothing is timed out of L2.
//
// usage: kernel_roofline [--quick] [gemm] [fp8] [mla] [moe] [moe_fp8]   (sections; default all)
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "bench_kernels.h"
#include "copy_bandwidth.h"
#include "core/error.h"
#include "rackserve/kernels/gemm_params.h"
#include "roofline.h"

namespace rackserve {
namespace {

using bench::Ceilings;
using bench::check_cuda;
using bench::rotation_copies;
using bench::seconds_per_call;
using bench::seconds_per_call_in_graph;

// cuBLAS BF16 GEMM (f32 accumulation) at 8192^3: the compute ceiling for prefill GEMMs.
double cublas_bf16_flops() {
  const int n = 8192;
  auto backend = make_cuda_backend(CudaBackendOptions{});
  Tensor a = backend->allocate_persistent(DType::BF16, {n, n}), b = backend->allocate_persistent(DType::BF16, {n, n});
  Tensor c = backend->allocate_persistent(DType::BF16, {n, n});
  backend->fill_random(a, 1, 1.0f);
  backend->fill_random(b, 2, 1.0f);
  check_cuda(cudaDeviceSynchronize(), "fill");  // cuBLAS runs on the default stream, not the backend's
  cublasHandle_t handle;
  RS_CHECK(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS, "cublasCreate failed");
  const float alpha = 1.0f, beta = 0.0f;
  double seconds = seconds_per_call(
      [&](int) {
        RS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, b.data, CUDA_R_16BF, n, a.data,
                              CUDA_R_16BF, n, &beta, c.data, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS,
                 "cublasGemmEx failed");
      },
      10);
  cublasDestroy(handle);
  return 2.0 * n * double(n) * n / seconds;
}

struct GemmShape {
  const char* name;
  int64_t n, k;
};

// Random BF16 weights [n, k], as many copies as rotation_copies asks for.
std::vector<Tensor> rotating_bf16_weights(Backend& backend, int64_t n, int64_t k) {
  std::vector<Tensor> weights(rotation_copies(n * k * 2));
  for (size_t i = 0; i < weights.size(); ++i) {
    weights[i] = backend.allocate_persistent(DType::BF16, {n, k});
    backend.fill_random(weights[i], 100 + i, 0.05f);
  }
  return weights;
}

// The decode GEMM kernels called directly at m = 1, 8, 32, 64: the tensor-core small-M kernel
// with each split-K forced (its planned row_warps) and as planned, beside the CUDA-core small-M
// kernel (its own split plan) and the tiled kernel: the data behind plan_linear_bf16_small_m
// and the m <= 64 dispatch in cuda_ops.cpp. Forced splits are cut evenly over 64-wide K
// blocks (fewer when k has fewer blocks).
void bench_small_m_splits(const Ceilings& ceilings, const std::vector<GemmShape>& shapes) {
  const std::vector<int> forced = {1, 2, 4, 8, 16};
  std::printf("\n## decode BF16 linear kernels, split-K forced (fraction of copy bw; * = the planned split)\n\n");
  std::printf("| shape | m | CUDA-core | tiled | mma split 1 | 2 | 4 | 8 | 16 | mma planned (row_warps x splits) |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  for (const GemmShape& shape : shapes) {
    auto backend = make_cuda_backend(CudaBackendOptions{});
    const int64_t weight_bytes = shape.n * shape.k * 2;
    const std::vector<Tensor> weights = rotating_bf16_weights(*backend, shape.n, shape.k);
    Tensor workspace = backend->allocate_persistent(DType::F32, {16 * 64 * shape.n});
    for (int64_t m : {1, 8, 32, 64}) {
      Tensor x = backend->allocate_persistent(DType::BF16, {m, shape.k});
      Tensor y = backend->allocate_persistent(DType::BF16, {m, shape.n});
      backend->fill_random(x, 7, 1.0f);
      check_cuda(cudaDeviceSynchronize(), "fill");  // the launches below use the default stream
      const double bytes = weight_bytes + 2.0 * m * (shape.k + shape.n);
      auto fraction = [&](const std::function<int(const kernels::LinearBf16Params&)>& launch) {
        const double seconds = seconds_per_call(
            [&](int i) {
              kernels::LinearBf16Params params{x.data, weights[i % weights.size()].data, y.data,
                                               kernels::ElementType::BF16, m, shape.n, shape.k, workspace.as<float>()};
              RS_CHECK(launch(params) == 0, "{} m={}: launch failed", shape.name, m);
            },
            20);
        return bytes / seconds / ceilings.bandwidth;
      };
      const kernels::LinearBf16SmallMConfig planned = kernels::plan_linear_bf16_small_m(m, shape.n, shape.k);
      const double cuda_core = fraction(
          [](const kernels::LinearBf16Params& p) { return kernels::launch_linear_bf16_small_m(p, nullptr); });
      const double tiled =
          fraction([](const kernels::LinearBf16Params& p) { return kernels::launch_linear_bf16_tiled(p, nullptr); });
      std::printf("| %s | %lld | %.2f | %.2f |", shape.name, static_cast<long long>(m), cuda_core, tiled);
      for (int splits : forced) {
        const kernels::LinearBf16SmallMConfig config = kernels::linear_bf16_small_m_config(m, shape.k, splits);
        const bool is_planned = config.splits == planned.splits && config.row_warps == planned.row_warps;
        std::printf(" %.2f%s |", fraction([&](const kernels::LinearBf16Params& p) {
                      return kernels::launch_linear_bf16_small_m_mma(p, config, nullptr);
                    }),
                    is_planned ? "*" : "");
      }
      std::printf(" %.2f (%d x %d) |\n", fraction([&](const kernels::LinearBf16Params& p) {
                    return kernels::launch_linear_bf16_small_m_mma(p, planned, nullptr);
                  }),
                  planned.row_warps, planned.splits);
    }
  }
}

void bench_gemm(const Ceilings& ceilings, bool quick) {
  using Shape = GemmShape;
  // DeepSeek-V3 projections at TP 1 and their TP 8 slices (column-parallel n / 8, row-parallel k / 8).
  const std::vector<Shape> shapes = {
      {"q_a 7168->1536", 1536, 7168},          {"q_b 1536->24576", 24576, 1536},
      {"kv_a 7168->576", 576, 7168},           {"o 16384->7168", 7168, 16384},
      {"o/8 2048->7168", 7168, 2048},          {"dense gate_up/8 7168->4608", 4608, 7168},
      {"dense down/8 2304->7168", 7168, 2304}, {"shared gate_up 7168->4096", 4096, 7168},
      {"lm_head/8 7168->16160", 16160, 7168},  {"lm_head 7168->129280", 129280, 7168},
  };
  const std::vector<int64_t> decode_m = quick ? std::vector<int64_t>{1, 32} : std::vector<int64_t>{1, 8, 32, 64};
  const std::vector<int64_t> prefill_m = quick ? std::vector<int64_t>{2048} : std::vector<int64_t>{512, 2048};
  std::printf("\n## BF16 linear (y = x W^T)\n\n");
  std::printf("time = eager calls (host launches included); graph = the same calls replayed as a CUDA graph, as a "
              "decode step runs them; read us = a kernel that only reads the same bytes, timed the same way "
              "(bench_kernels.h: what one kernel streaming them can reach here), and graph / read its fraction.\n\n");
  std::printf("| shape | m | time us | weight GB/s | fraction of copy bw | graph us | graph fraction | read us | "
              "graph / read | TFLOP/s | fraction of cuBLAS |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Shape& shape : shapes) {
    auto backend = make_cuda_backend(CudaBackendOptions{});
    const int64_t weight_bytes = shape.n * shape.k * 2;
    const std::vector<Tensor> weights = rotating_bf16_weights(*backend, shape.n, shape.k);
    std::vector<int64_t> ms = decode_m;
    ms.insert(ms.end(), prefill_m.begin(), prefill_m.end());
    for (int64_t m : ms) {
      Tensor x = backend->allocate_persistent(DType::BF16, {m, shape.k});
      backend->fill_random(x, 7, 1.0f);
      auto call = [&](int i) {
        backend->begin_step();
        backend->linear(x, weights[i % weights.size()]);
      };
      const double seconds = seconds_per_call(call, 20);
      // Decode sizes only: a prefill call is long enough for the host to keep ahead.
      const bool decode = m <= 64;
      const double graph_seconds = decode ? seconds_per_call_in_graph(backend->native_stream(), call, 20) : 0.0;
      const double flops = 2.0 * m * shape.n * shape.k;
      const double bytes = weight_bytes + 2.0 * m * (shape.k + shape.n);
      const double read_seconds =
          decode ? bench::measure_stream_read_seconds(static_cast<int64_t>(bytes), static_cast<int>(weights.size()),
                                               backend->native_stream())
                 : 0.0;
      const std::string graph_columns =
          decode ? fmt::format("{:.1f} | {:.2f} | {:.1f} | {:.2f}", graph_seconds * 1e6,
                               bytes / graph_seconds / ceilings.bandwidth, read_seconds * 1e6,
                               read_seconds / graph_seconds)
                 : "- | - | - | -";
      std::printf("| %s | %lld | %.1f | %.0f | %.2f | %s | %.1f | %.2f |\n", shape.name, static_cast<long long>(m),
                  seconds * 1e6, bytes / seconds / 1e9, bytes / seconds / ceilings.bandwidth, graph_columns.c_str(),
                  flops / seconds / 1e12, flops / seconds / ceilings.flops);
    }
  }
  bench_small_m_splits(ceilings, shapes);
}

// Fills an FP8 latent cache [pages, page, lora + rope] through mla_write_cache from random
// kv rows (normalised latents, rotated rope keys, real per-entry scales), in chunks.
void write_random_fp8_cache(Backend& backend, const Tensor& cache, const Tensor& scales, int64_t lora, int64_t rope) {
  const int64_t slots = cache.dim(0) * cache.dim(1), width = lora + rope, chunk = std::min<int64_t>(slots, 65536);
  std::vector<float> inv_freq(rope / 2), ones(lora, 1.0f);
  for (int64_t i = 0; i < rope / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / rope);
  RopeTable table{backend.upload_persistent(Tensor{inv_freq.data(), DType::F32, {rope / 2}, Device{}}, DType::F32),
                  rope, 1.0f, true};
  Tensor weight = backend.upload_persistent(Tensor{ones.data(), DType::F32, {lora}, Device{}}, DType::BF16);
  Tensor kv = backend.allocate_persistent(DType::BF16, {chunk, width});
  for (int64_t begin = 0; begin < slots; begin += chunk) {
    const int64_t count = std::min(chunk, slots - begin);
    std::vector<int32_t> ids(count);
    for (int64_t i = 0; i < count; ++i) ids[i] = static_cast<int32_t>(begin + i);
    backend.begin_step();
    backend.fill_random(kv, 11 + begin, 1.0f);
    MlaCacheWrite write{kv.rows(0, count), weight, 1e-6f, &table, backend.upload_step_ints(ids),
                        backend.upload_step_ints(ids), cache, scales};
    backend.mla_write_cache(write);
  }
}

void bench_mla_decode(const Ceilings& ceilings, bool quick) {
  const int64_t nope = 128, rope = 64, v = 128, lora = 512, page = 64, width = lora + rope;
  std::printf("\n## MLA decode (absorbed, paged latent cache 512+64, one query token per sequence)\n\n");
  std::printf("bf16 cache: 1152 bytes per entry; fp8: 576 e4m3 bytes + a 4-byte scale, dequantized to bf16 tiles.\n\n");
  std::printf("| cache | heads | batch | context | time us | cache+W_UKV GB/s | fraction of copy bw |\n"
              "|---|---|---|---|---|---|---|\n");
  const std::vector<int64_t> head_counts = {128, 16};
  const std::vector<int64_t> batches = quick ? std::vector<int64_t>{1, 32} : std::vector<int64_t>{1, 8, 32, 128};
  const std::vector<int64_t> contexts =
      quick ? std::vector<int64_t>{4096} : std::vector<int64_t>{1024, 4096, 16384, 65536};
  for (bool fp8 : {false, true}) {
    for (int64_t heads : head_counts) {
      for (int64_t batch : batches) {
        for (int64_t context : contexts) {
          if (batch * context > (int64_t(1) << 21)) continue;  // > 2.4 GB of cache per layer: skipped
          auto backend = make_cuda_backend(CudaBackendOptions{});
          const int64_t blocks = (context + page - 1) / page, pages = batch * blocks;
          Tensor cache = backend->allocate_persistent(fp8 ? DType::F8_E4M3 : DType::BF16, {pages, page, width});
          Tensor scales = fp8 ? backend->allocate_persistent(DType::F32, {pages, page}) : Tensor{};
          Tensor kv_b = backend->allocate_persistent(DType::BF16, {heads * (nope + v), lora});
          Tensor q = backend->allocate_persistent(DType::BF16, {batch, heads, nope + rope});
          if (fp8)
            write_random_fp8_cache(*backend, cache, scales, lora, rope);
          else
            backend->fill_random(cache, 11, 1.0f);
          backend->fill_random(kv_b, 12, 0.05f);
          backend->fill_random(q, 13, 1.0f);
          std::vector<int32_t> query_start(batch + 1), lengths(batch, int32_t(context)), positions(batch),
              slots(batch), table(batch * blocks);
          for (int64_t s = 0; s < batch; ++s) {
            query_start[s + 1] = int32_t(s + 1);
            positions[s] = int32_t(context - 1);
            for (int64_t b = 0; b < blocks; ++b) table[s * blocks + b] = int32_t(b * batch + s);  // interleaved pages
            slots[s] = table[s * blocks + (context - 1) / page] * int32_t(page) + int32_t((context - 1) % page);
          }
          auto ints = [&](std::vector<int32_t>& values) {
            return backend->upload_persistent(Tensor{values.data(), DType::I32, {int64_t(values.size())}, Device{}},
                                              DType::I32);
          };
          AttentionBatch attention{ints(query_start), ints(lengths), ints(table), ints(slots), ints(positions),
                                   batch, batch, context, page};
          attention.block_table.shape = {batch, blocks};
          MlaAttention args{q, kv_b, cache, scales, &attention, heads, nope, rope, v, lora, 0.1f, Tensor{}};
          double seconds = seconds_per_call(
              [&](int) {
                backend->begin_step();
                backend->mla_attention(args);
              },
              5, 3);
          const double entry_bytes = fp8 ? width + 4.0 : width * 2.0;
          const double bytes = double(batch) * context * entry_bytes + double(heads) * (nope + v) * lora * 2;
          std::printf("| %s | %lld | %lld | %lld | %.1f | %.0f | %.2f |\n", fp8 ? "fp8" : "bf16",
                      static_cast<long long>(heads), static_cast<long long>(batch), static_cast<long long>(context),
                      seconds * 1e6, bytes / seconds / 1e9, bytes / seconds / ceilings.bandwidth);
        }
      }
    }
  }
}

void bench_moe_decode(const Ceilings& ceilings, bool quick) {
  struct Model {
    const char* name;
    int64_t experts, top_k, groups, top_k_groups, hidden, inter;
  };
  const std::vector<Model> models = {{"DeepSeek-V3 TP1", 256, 8, 8, 4, 7168, 2048},
                                     {"Kimi-K2 TP1", 384, 8, 1, 1, 7168, 2048}};
  const std::vector<int64_t> token_counts = quick ? std::vector<int64_t>{1, 32} : std::vector<int64_t>{1, 8, 32, 64};
  std::printf("\n## MoE experts, decode (routed experts only; bytes = experts actually touched)\n\n");
  std::printf("| model | tokens | experts touched | time us | GB/s | fraction of copy bw |\n|---|---|---|---|---|---|\n");
  for (const Model& model : models) {
    auto backend = make_cuda_backend(CudaBackendOptions{});
    ExpertWeights experts{backend->allocate_persistent(DType::BF16, {model.experts, 2 * model.inter, model.hidden}),
                          backend->allocate_persistent(DType::BF16, {model.experts, model.hidden, model.inter})};
    backend->fill_random(experts.gate_up, 21, 0.02f);
    backend->fill_random(experts.down, 22, 0.02f);
    Tensor bias = backend->allocate_persistent(DType::F32, {model.experts});
    backend->fill_random(bias, 23, 0.1f);
    MoeRouterParams router{model.top_k, model.groups, model.top_k_groups, true, true, true, 2.5f};
    for (int64_t tokens : token_counts) {
      Tensor x = backend->allocate_persistent(DType::BF16, {tokens, model.hidden});
      backend->fill_random(x, 24, 1.0f);
      // Four routings (different random router logits) rotate, so consecutive calls touch different experts.
      const int kRoutings = 4;
      std::vector<Tensor> logits(kRoutings);
      std::vector<MoeRouting> routings;
      double touched_bytes = 0.0;
      int64_t touched_total = 0;
      for (int r = 0; r < kRoutings; ++r) {
        logits[r] = backend->allocate_persistent(DType::F32, {tokens, model.experts});
        backend->fill_random(logits[r], 30 + r, 3.0f);
        backend->begin_step();
        MoeRouting step = backend->moe_route(logits[r], bias, router);
        auto ids = backend->download_f32(step.expert_ids);
        // Copy the routing out of the step arena into persistent tensors.
        MoeRouting kept{backend->allocate_persistent(DType::I32, {tokens, model.top_k}),
                        backend->allocate_persistent(DType::F32, {tokens, model.top_k})};
        std::vector<int32_t> id_values(ids.begin(), ids.end());
        std::vector<float> weight_values(tokens * model.top_k, 1.0f / model.top_k);
        kept.expert_ids = backend->upload_persistent(
            Tensor{id_values.data(), DType::I32, {tokens, model.top_k}, Device{}}, DType::I32);
        kept.weights = backend->upload_persistent(
            Tensor{weight_values.data(), DType::F32, {tokens, model.top_k}, Device{}}, DType::F32);
        routings.push_back(kept);
        std::set<int32_t> distinct(id_values.begin(), id_values.end());
        touched_total += static_cast<int64_t>(distinct.size());
        touched_bytes += double(distinct.size()) * 3.0 * model.hidden * model.inter * 2;
      }
      double seconds = seconds_per_call(
          [&](int i) {
            backend->begin_step();
            backend->moe_experts(x, routings[i % kRoutings], experts);
          },
          8);
      const double bytes = touched_bytes / kRoutings;
      std::printf("| %s | %lld | %.1f | %.1f | %.0f | %.2f |\n", model.name, static_cast<long long>(tokens),
                  double(touched_total) / kRoutings, seconds * 1e6, bytes / seconds / 1e9,
                  bytes / seconds / ceilings.bandwidth);
    }
  }
}

int run(bool quick, const std::set<std::string>& sections) {
  auto wanted = [&](const char* name) { return sections.empty() || sections.count(name) != 0; };
  cudaDeviceProp properties{};
  check_cuda(cudaGetDeviceProperties(&properties, 0), "cudaGetDeviceProperties");
  char date[32];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  const Ceilings ceilings{bench::measure_copy_bandwidth(), cublas_bf16_flops(),
                         bench::measure_mma_sync_flops(bench::MmaKind::E4m3),
                         bench::measure_mma_sync_flops(bench::MmaKind::Bf16)};
  std::printf("# kernel roofline: %s (sm_%d%d, %d SMs, L2 %lld MB), %s\n\n", properties.name, properties.major,
              properties.minor, properties.multiProcessorCount, static_cast<long long>(bench::l2_bytes() >> 20), date);
  std::printf("measured ceilings: copy bandwidth %.0f GB/s (read + write), cuBLAS BF16 GEMM %.0f TFLOP/s, "
              "mma.sync peak (registers only) e4m3 m16n8k32 %.0f TFLOP/s, bf16 m16n8k16 %.0f TFLOP/s\n",
              ceilings.bandwidth / 1e9, ceilings.flops / 1e12, ceilings.mma_e4m3 / 1e12, ceilings.mma_bf16 / 1e12);
  if (wanted("gemm")) bench_gemm(ceilings, quick);
  if (wanted("fp8")) bench::bench_fp8_linear(ceilings, quick);
  if (wanted("mla")) bench_mla_decode(ceilings, quick);
  if (wanted("moe")) bench_moe_decode(ceilings, quick);
  if (wanted("moe_fp8")) bench::bench_moe_fp8(ceilings, quick);
  return 0;
}

}  // namespace
}  // namespace rackserve

int main(int argc, char** argv) {
  bool quick = false;
  std::set<std::string> sections;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0)
      quick = true;
    else
      sections.insert(argv[i]);
  }
  try {
    return rackserve::run(quick, sections);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "kernel_roofline: %s\n", error.what());
    return 1;
  }
}
