// Launcher and instantiations of the large-M (prefill) tiled BF16 GEMM (body in
// linear_bf16_tiled.cuh). One configuration for now: 128x128x32 tiles, 4 stages, 8 warps
// of 64x32 each: 64 KB of shared memory, inside the SM120 budget with room to spare.
#include "common/device_utils.cuh"
#include "gemm/linear_bf16_tiled.cuh"

namespace rackserve::kernels {

namespace {

using PrefillConfig = TiledGemmConfig</*BlockM=*/128, /*BlockN=*/128, /*BlockK=*/32, /*Stages=*/4,
                                      /*WarpsM=*/2, /*WarpsN=*/4>;

template <typename Config, typename Output>
int launch_tiled(const LinearBf16Params& p, cudaStream_t stream) {
  auto kernel = linear_bf16_tiled_kernel<Config, Output>;
  if (int status = opt_in_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), Config::kSharedBytes,
                                                "linear_bf16_tiled"))
    return status;
  const int64_t m_tiles = (p.m + Config::kBlockM - 1) / Config::kBlockM;
  const int64_t n_tiles = (p.n + Config::kBlockN - 1) / Config::kBlockN;
  if (m_tiles > INT32_MAX || n_tiles > 65535) return cudaErrorInvalidValue;
  dim3 grid(static_cast<unsigned>(m_tiles), static_cast<unsigned>(n_tiles));
  kernel<<<grid, Config::kThreads, Config::kSharedBytes, stream>>>(p);
  return launch_status();
}

}  // namespace

int launch_linear_bf16_tiled(const LinearBf16Params& p, Stream stream) {
  if (p.m < 0 || p.n <= 0 || p.k <= 0 || p.k % 8 != 0 || !p.weight || (p.m > 0 && (!p.x || !p.y)) ||
      !aligned16(p.x) || !aligned16(p.weight) || (p.y_type != ElementType::F32 && p.y_type != ElementType::BF16) ||
      p.segment_rows != 0)
    return cudaErrorInvalidValue;
  if (p.m == 0) return cudaSuccess;
  auto s = static_cast<cudaStream_t>(stream);
  return p.y_type == ElementType::F32 ? launch_tiled<PrefillConfig, float>(p, s)
                                      : launch_tiled<PrefillConfig, __nv_bfloat16>(p, s);
}

}  // namespace rackserve::kernels
