// The FP8 routed experts' GEMMs at decode sizes (moe_fp8.cuh, "small-M path"): the dense
// small-M design (gemm/small_m_stream.cuh) run over every active expert at once. gridDim.z is
// the active slot; its CTAs stream that expert's [n, k] e4m3 weights once, 16 x row_warps rows
// per CTA, through the per-warp cp.async rings, and take the expert's pairs (sorted_pairs from
// active_offsets, active_counts of them) as the tokens, with the math of the dense FP8 kernel:
// zero-accumulator e4m3 MMAs added in f32, the Block layout's per-block scales (the weight
// scales of the expert's rows, the activation row's scale per 128 columns), the Channel
// layout's scales on the finished dot. Each split writes its partial to
// partials[split][pair][n] (the tiled GEMM's layout): the activation and the slot sum that
// follow add the splits in order.
#include "gemm/small_m_fp8.cuh"
#include "moe/moe_fp8.cuh"

namespace rackserve::kernels {

namespace {

// As the dense FP8 kernel: two CTAs per SM up to 2 token tiles (registers).
constexpr int kMoeTwoCtaTiles = 2;
// The split plan's SM count: SM120's 188 (RTX PRO 6000), fixed so that a problem splits, and
// sums, the same way on every device (the tiled path's rule too).
constexpr int kPlanSms = 188;
static_assert(small_m::Config<8, 1, kMoeTwoCtaTiles>::kSharedBytes == kMoeFp8SmallMSharedBytes,
              "moe_fp8_shared_bytes promises the largest small-M ring");

template <bool kBlockScaling>
struct MoeFp8SmallMPolicy {
  using Params = MoeFp8GemmArgs;
  using Element = uint8_t;
  static constexpr int kElementBytes = 1;
  static constexpr int kTwoCtaTiles = kMoeTwoCtaTiles;
  static constexpr const char* kName = "moe_fp8_gemm_small_m";

  static constexpr bool kStaticView = false;  // the active slots come from the align kernel
  static constexpr bool kTokensVaryPerCta = true;  // an expert's pairs: mostly 1-2 at decode
  static constexpr bool kFinishesSplits = false;  // the activation / slot-sum kernels add the splits
  struct View {
    const uint8_t* weight;  // the expert's [n, k]
    const uint8_t* x;       // the activations [rows, k]
    int64_t m;              // the expert's pairs
    int64_t expert;
    const int32_t* pairs;   // its pair ids, m of them
  };
  __device__ static bool make_view(const Params& p, View& view) {
    const int slot = static_cast<int>(blockIdx.z);
    const int expert = p.active_experts[slot];
    if (expert < 0) return false;  // past the last active expert
    view.expert = expert;
    view.m = p.active_counts[slot];
    view.pairs = p.sorted_pairs + p.active_offsets[slot];
    view.weight = p.weights + view.expert * p.n * p.k;
    view.x = p.activations;
    return view.m > 0;
  }
  __device__ static int64_t x_row(const Params& p, const View& view, int64_t u) {
    return view.pairs[u] / p.pairs_per_row;
  }

  // Block: the block's scales of this lane's weight rows (loaded before the ring wait), and what
  // the MMA step needs to read its tokens' activation scales (per tile, from L1 mostly).
  template <int T>
  struct Scales {
    float weight[2];
    const float* x_column;  // &activation_scales[0, kb]
    const int32_t* pairs;
    int64_t pairs_per_row;
    int k_blocks, last;
  };
  template <int T>
  __device__ static Scales<T> load_scales(const Params& p, const View& view, const int64_t (&rows)[2], int kb,
                                          int k_blocks) {
    Scales<T> scales{};
    if constexpr (kBlockScaling) {
      const int64_t scale_rows = (p.n + p.block_out - 1) / p.block_out;
      const float* expert_scales = p.weight_scales + view.expert * scale_rows * k_blocks;
#pragma unroll
      for (int r = 0; r < 2; ++r) scales.weight[r] = __ldg(expert_scales + (rows[r] / p.block_out) * k_blocks + kb);
      scales.x_column = p.activation_scales + kb;
      scales.pairs = view.pairs;
      scales.pairs_per_row = p.pairs_per_row;
      scales.k_blocks = k_blocks;
      scales.last = static_cast<int>(view.m - 1);  // <= 63
    }
    return scales;
  }

  template <int T>
  __device__ static void accumulate(float (&accumulator)[T][4], const uint4 (&weights)[2][2], const uint4 (&x)[T][2],
                                    const Scales<T>& scales, int tiles) {
    small_m::accumulate_e4m3<kBlockScaling>(accumulator, weights, x, tiles, scales.weight, [&](int u) {
      const int64_t row = scales.pairs[min(u, scales.last)] / scales.pairs_per_row;
      return __ldg(scales.x_column + row * scales.k_blocks);
    });
  }

  // Into this split's partials [pairs, n]; Channel: dot x activation scale x weight scale, the
  // contract's order.
  __device__ static void store(const Params& p, const View& view, int64_t u, int64_t row, float sum) {
    const int64_t pair = view.pairs[u];
    if constexpr (!kBlockScaling)
      sum = sum * p.activation_scales[pair / p.pairs_per_row] * p.weight_scales[view.expert * p.n + row];
    p.partials[(static_cast<int64_t>(blockIdx.y) * p.pairs + pair) * p.n + row] = sum;
  }
};

}  // namespace

// The dense plan with the weights of every pair's expert as the rows (pairs bounds the active
// experts): row_warps for the expert's pair count, splits by waves of resident CTAs.
MoeFp8SplitPlan plan_moe_fp8_small_m(int64_t tokens, int64_t top_k, int64_t n, int64_t k) {
  const int64_t pairs = std::max<int64_t>(1, tokens * top_k);
  const small_m::Plan plan = small_m::make_plan(tokens, n * pairs, k, 1, kMoeTwoCtaTiles, kPlanSms);
  MoeFp8SplitPlan split;
  split.splits = plan.splits;
  split.k_tiles_per_split = plan.k_blocks_per_split;
  split.row_warps = plan.row_warps;
  return split;
}

int launch_moe_fp8_gemm_small_m(const MoeFp8GemmArgs& args, Fp8ScaleLayout layout, const MoeFp8SplitPlan& plan,
                                int64_t tokens, int64_t max_active, cudaStream_t stream) {
  const small_m::Plan run_plan{plan.row_warps, plan.splits, plan.k_tiles_per_split};
  if (tokens < 1 || tokens > kMoeFp8SmallMMaxTokens || !small_m::valid_plan(run_plan, fp8_k_blocks(args.k)))
    return cudaErrorInvalidValue;
  return layout == Fp8ScaleLayout::Block
             ? small_m::run<MoeFp8SmallMPolicy<true>>(args, run_plan, tokens, max_active, stream)
             : small_m::run<MoeFp8SmallMPolicy<false>>(args, run_plan, tokens, max_active, stream);
}

}  // namespace rackserve::kernels
