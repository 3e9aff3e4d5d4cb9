// The FP8 expert GEMM (moe_fp8_gemm.cuh) in the Block scale layout (DeepSeek `fp8`: a scale per
// [block_out, 128] weight tile and per row per 128 columns), one instantiation per
// block_m x block_n x warps; its own file so the two layouts compile in parallel.
#include "moe/moe_fp8_gemm.cuh"

namespace rackserve::kernels {

MoeFp8GemmKernel moe_fp8_gemm_block_kernel(const MoeFp8Config& config) { return moe_fp8_gemm_for<true>(config); }

}  // namespace rackserve::kernels
