// Split-KV (flash-decoding) grouped-query attention for decode: one CTA per (query token,
// KV head, split of the context), one warp per query head of the group, so the group's warps
// read the same cached rows (one read from memory, the rest from L1); each split's partial
// softmax is merged by a second kernel. Contract in rackserve/kernels/gqa_params.h.
#include <algorithm>

#include "attention/gqa_attention.cuh"

namespace rackserve::kernels {

namespace {

constexpr int64_t kMinKeysPerSplit = 256;
constexpr int64_t kMaxSplits = 64;

struct SplitRange {
  int64_t begin, end;
};
// Keys [begin, end) of `split` for a query with `keys` keys; the last split takes the rest.
__device__ __forceinline__ SplitRange split_range(int64_t keys, int split, int splits, int keys_per_split) {
  const int64_t begin = static_cast<int64_t>(split) * keys_per_split;
  const int64_t end = split + 1 == splits ? keys : (keys < begin + keys_per_split ? keys : begin + keys_per_split);
  return {begin, end < begin ? begin : end};
}

template <int kPerLane, typename Element>
__global__ void gqa_decode_kernel(GqaAttentionParams p, int splits, int keys_per_split) {
  wait_for_prior_kernel();
  const int64_t t = blockIdx.x, kv_head = blockIdx.y;
  const int split = static_cast<int>(blockIdx.z);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t group = p.heads / p.kv_heads, h = kv_head * group + warp;
  const int64_t s = gqa::sequence_of(p.query_start, p.sequences, t);
  const SplitRange range = split_range(static_cast<int64_t>(p.positions[t]) + 1, split, splits, keys_per_split);

  gqa::WarpSoftmax<kPerLane> softmax;
  softmax.load_query(static_cast<const __nv_bfloat16*>(p.q) + (t * p.heads + h) * p.head_dim, p.softmax_scale, lane);
#pragma unroll 4
  for (int64_t j = range.begin; j < range.end; ++j)
    softmax.add(gqa::cache_row<Element>(p, s, j), kv_head, p.kv_heads, p.head_dim, lane);

  if (splits == 1) {  // the whole context: normalise here (keys >= 1 by contract, so running_sum > 0)
    __nv_bfloat16* out = static_cast<__nv_bfloat16*>(p.output) + (t * p.heads + h) * p.head_dim;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i)
      out[lane + 32 * i] = __float2bfloat16(softmax.running_sum > 0.0f ? softmax.acc[i] / softmax.running_sum : 0.0f);
    return;
  }
  float* partial = p.partials + ((t * splits + split) * p.heads + h) * (p.head_dim + 2);
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) partial[lane + 32 * i] = softmax.acc[i];
  if (lane == 0) {
    partial[p.head_dim] = softmax.running_max;
    partial[p.head_dim + 1] = softmax.running_sum;  // 0 for an empty split
  }
}

// out[t, h] = sum over splits of acc * e^(max - M) / sum over splits of sum * e^(max - M).
__global__ void gqa_decode_combine_kernel(GqaAttentionParams p, int splits) {
  wait_for_prior_kernel();
  const int64_t t = blockIdx.x, h = blockIdx.y, stride = p.heads * (p.head_dim + 2);
  const float* first = p.partials + (t * splits * p.heads + h) * (p.head_dim + 2);
  float total_max = -INFINITY;
  for (int s = 0; s < splits; ++s)
    if (first[s * stride + p.head_dim + 1] > 0.0f) total_max = fmaxf(total_max, first[s * stride + p.head_dim]);
  float total = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float sum = first[s * stride + p.head_dim + 1];
    if (sum > 0.0f) total += sum * expf(first[s * stride + p.head_dim] - total_max);
  }
  __nv_bfloat16* out = static_cast<__nv_bfloat16*>(p.output) + (t * p.heads + h) * p.head_dim;
  for (int64_t c = threadIdx.x; c < p.head_dim; c += blockDim.x) {
    float value = 0.0f;
    for (int s = 0; s < splits; ++s)
      if (first[s * stride + p.head_dim + 1] > 0.0f)
        value += first[s * stride + c] * expf(first[s * stride + p.head_dim] - total_max);
    out[c] = __float2bfloat16(total > 0.0f ? value / total : 0.0f);  // no keys (outside the contract): 0
  }
}

struct DecodeLauncher {
  const GqaAttentionParams& p;
  const GqaDecodeConfig& config;
  cudaStream_t stream;
  template <int kPerLane, typename Element>
  int run() const {
    const dim3 grid(static_cast<unsigned>(p.tokens), static_cast<unsigned>(p.kv_heads),
                    static_cast<unsigned>(config.splits));
    const unsigned threads = static_cast<unsigned>(32 * (p.heads / p.kv_heads));  // a warp per query head
    gqa_decode_kernel<kPerLane, Element><<<grid, threads, 0, stream>>>(p, config.splits, config.keys_per_split);
    return launch_status();
  }
};

}  // namespace

bool gqa_decode_supported(int64_t heads, int64_t kv_heads, int64_t head_dim) {
  return kv_heads > 0 && heads % kv_heads == 0 && heads / kv_heads <= kGqaDecodeMaxGroup && head_dim > 0 &&
         head_dim % 32 == 0 && head_dim <= kGqaMaxHeadDim;
}

GqaDecodeConfig plan_gqa_decode(int64_t tokens, int64_t kv_heads, int64_t max_keys, int sm_count) {
  sm_count = resolve_sm_count(sm_count);
  max_keys = std::max<int64_t>(max_keys, 1);
  const int64_t ctas = std::max<int64_t>(tokens, 1) * std::max<int64_t>(kv_heads, 1);
  const int64_t wanted = (2 * static_cast<int64_t>(sm_count) + ctas - 1) / ctas;
  const int64_t longest = (max_keys + kMinKeysPerSplit - 1) / kMinKeysPerSplit;
  const int64_t splits = std::clamp<int64_t>(std::min(wanted, longest), 1, kMaxSplits);
  GqaDecodeConfig config;
  config.keys_per_split = static_cast<int>((max_keys + splits - 1) / splits);
  config.splits = static_cast<int>((max_keys + config.keys_per_split - 1) / config.keys_per_split);
  return config;
}

int64_t gqa_decode_workspace_floats(int64_t tokens, int64_t heads, int64_t head_dim, const GqaDecodeConfig& config) {
  return config.splits > 1 ? tokens * config.splits * heads * (head_dim + 2) : 0;
}

int launch_gqa_decode_split_kv(const GqaAttentionParams& p, const GqaDecodeConfig& config, Stream stream) {
  if (p.tokens < 0 || p.sequences < 1 || !gqa_decode_supported(p.heads, p.kv_heads, p.head_dim) ||
      p.page_size <= 0 || p.tokens > INT32_MAX || p.heads > 65535 || config.splits < 1 ||
      config.splits > kMaxSplits || config.keys_per_split < 1 || (config.splits > 1 && !p.partials) ||
      (p.tokens > 0 && (!p.q || !p.cache || !p.query_start || !p.block_table || !p.positions || !p.output)))
    return cudaErrorInvalidValue;
  if (p.tokens == 0) return cudaSuccess;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (int status = gqa::dispatch_cache(p.head_dim, p.cache_scales != nullptr, DecodeLauncher{p, config, s}))
    return status;
  if (config.splits == 1) return cudaSuccess;
  gqa_decode_combine_kernel<<<dim3(static_cast<unsigned>(p.tokens), static_cast<unsigned>(p.heads)), 128, 0, s>>>(
      p, config.splits);
  return launch_status();
}

}  // namespace rackserve::kernels
