// The FP8 expert GEMM (moe_fp8_gemm.cuh) in the Channel scale layout (compressed-tensors: a
// scale per weight row and per activation row), one instantiation per block_m x block_n x
// warps; its own file so the two layouts compile in parallel.
#include "moe/moe_fp8_gemm.cuh"

namespace rackserve::kernels {

MoeFp8GemmKernel moe_fp8_gemm_channel_kernel(const MoeFp8Config& config) { return moe_fp8_gemm_for<false>(config); }

}  // namespace rackserve::kernels
