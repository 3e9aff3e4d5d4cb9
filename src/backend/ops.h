// Argument structs of the backend ops that take more than a few tensors. Plain data:
// each names the shapes it expects, so a backend can validate once at the boundary.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace rackserve {

// What a weight is used for, so a backend can store it in the layout its kernels want.
enum class WeightRole : uint8_t {
  Embedding,     // [vocab, hidden], rows gathered
  Norm,          // [width]
  Bias,          // [out], added to a linear's output (Backend::add_bias)
  Linear,        // [out, in]
  RouterGate,    // [experts, hidden]; logits computed in f32 (linear_f32) from the BF16 values checkpoints ship
  RouterBias,    // [experts] f32
  ExpertGateUp,  // [experts, 2 * intermediate, hidden]
  ExpertDown,    // [experts, hidden, intermediate]
  MlaKvB,        // [heads * (qk_nope + v), kv_lora]
  RopeFrequencies,  // [dim / 2], kept in f32
};

// Rotary embedding table: cos/sin of position * inv_freq[i], times `scale`.
struct RopeTable {
  Tensor inv_freq;  // [dim / 2] f32 on the backend's device
  int64_t dim = 0;  // rotated width
  float scale = 1.0f;
  // Input pairs are (x[2i], x[2i+1]) when interleaved, (x[i], x[i + dim/2]) otherwise.
  // The output is always in the half-split layout (x[i], x[i + dim/2]), as in
  // Hugging Face DeepSeek-V3; q and k use the same layout, so scores are unchanged.
  bool interleaved = true;
};

// Paged-attention metadata of one forward step. A step holds tokens of S sequences:
// the tokens of sequence s are rows [query_start[s], query_start[s + 1]) of the step,
// their positions are consecutive and end at context_length[s] - 1, and every position
// below that is already in the cache (written by this step or earlier ones).
struct AttentionBatch {
  Tensor query_start;     // [S + 1] int32
  Tensor context_length;  // [S] int32, tokens in cache for the sequence after this step
  Tensor block_table;     // [S, max_blocks] int32, page ids
  Tensor slots;           // [T] int32, page * page_size + offset of each new token; -1: not written (padding)
  Tensor positions;       // [T] int32
  int64_t num_sequences = 0;
  int64_t num_tokens = 0;
  int64_t max_context_length = 0;
  int64_t page_size = 0;
};

// The paged MLA latent cache of one layer holds entries of kv_lora + rope_dim values in the
// backend's activation dtype, or as FP8: cache_layer F8_E4M3 (OCP e4m3fn) and one f32 scale
// per entry in cache_scales. An FP8 entry is written from the f32 values x[0..width) the
// activation-dtype cache would hold (normalised latent, rotated rope key) as
//   scale = max(max_i |x[i]| / 448, kMlaCacheMinScale)
//   value[i] = e4m3(x[i] / scale), round to nearest even, saturating to ±448
// and read as value[i] * scale.
inline constexpr float kMlaCacheMinScale = 1e-10f / 448.0f;  // an all-zero entry stays zero, never 0/0

struct MlaCacheWrite {
  Tensor kv;           // [T, kv_lora + rope_dim] output of kv_a_proj_with_mqa
  Tensor norm_weight;  // [kv_lora] kv_a_layernorm
  float norm_eps = 1e-6f;
  const RopeTable* rope = nullptr;
  Tensor positions;    // [T] int32
  Tensor slots;        // [T] int32
  Tensor cache_layer;  // [pages, page_size, kv_lora + rope_dim]
  Tensor cache_scales;  // [pages, page_size] f32 when cache_layer is F8_E4M3, else empty
};

struct MlaAttention {
  Tensor q;            // [T, heads, qk_nope + rope_dim], rope part already rotated
  Tensor kv_b;         // [heads * (qk_nope + v), kv_lora] (W_UK rows then W_UV rows per head)
  Tensor cache_layer;  // [pages, page_size, kv_lora + rope_dim]
  Tensor cache_scales;  // [pages, page_size] f32 when cache_layer is F8_E4M3, else empty
  const AttentionBatch* batch = nullptr;
  int64_t heads = 0;
  int64_t qk_nope_dim = 0;
  int64_t rope_dim = 0;
  int64_t v_dim = 0;
  int64_t kv_lora_rank = 0;
  float softmax_scale = 1.0f;
  // DeepSeek sparse attention: [T, top_k] int32 positions (within the token's sequence) of the
  // only keys token t attends to, as DsaTopK returns them: min(p(t) + 1, top_k) ascending
  // positions <= p(t), then -1. Empty: every cached position up to the token's own (causal).
  Tensor key_positions;
};

// Throws unless cache_layer is a [pages, page_size, width] cache of `native` (the backend's
// cache dtype) with no scales, or of F8_E4M3 with cache_scales [pages, page_size] F32 (the MLA
// and GQA caches alike).
inline void check_paged_cache(const char* op, const Tensor& cache_layer, const Tensor& cache_scales, DType native,
                            int64_t width) {
  RS_CHECK(cache_layer.rank() == 3 && cache_layer.dim(2) == width, "{}: cache layer {} is not [pages, page_size, {}]",
           op, shape_string(cache_layer.shape), width);
  if (cache_layer.dtype != DType::F8_E4M3) {
    RS_CHECK(cache_layer.dtype == native, "{}: the cache layer is {}; this backend caches {} or F8_E4M3", op,
             dtype_name(cache_layer.dtype), dtype_name(native));
    RS_CHECK(cache_scales.empty(), "{}: a {} cache takes no scales", op, dtype_name(cache_layer.dtype));
    return;
  }
  RS_CHECK(!cache_scales.empty() && cache_scales.dtype == DType::F32 && cache_scales.rank() == 2 &&
               cache_scales.dim(0) == cache_layer.dim(0) && cache_scales.dim(1) == cache_layer.dim(1),
           "{}: an F8_E4M3 cache {} needs F32 scales [{}, {}], got {} {}", op, shape_string(cache_layer.shape),
           cache_layer.dim(0), cache_layer.dim(1), cache_scales.empty() ? "none" : dtype_name(cache_scales.dtype),
           shape_string(cache_scales.shape));
}

// The paged grouped-query-attention cache of one layer (this rank's KV heads) holds, per
// token, its key then its value for every KV head:
//   cache_layer [pages, page_size, 2 * kv_heads * head_dim]
//   key of head h:   values [h * head_dim, (h + 1) * head_dim)
//   value of head h: values [(kv_heads + h) * head_dim, (kv_heads + h + 1) * head_dim)
// in the backend's activation dtype, or as FP8 with one f32 scale per entry (the token's keys
// and values together) by the MLA cache's rule above, x being the values the activation-dtype
// cache would hold. e4m3 is floating point, so values far below the entry's largest keep their
// 3-bit mantissa down to 2^-6 of amax / 448 (a shared scale sets the range, not the precision).
struct GqaCacheWrite {
  Tensor k;            // [T, kv_heads, head_dim], normalised and rotated as attention reads it
  Tensor v;            // [T, kv_heads, head_dim]
  Tensor slots;        // [T] int32, page * page_size + offset; -1: not written (padding)
  Tensor cache_layer;  // [pages, page_size, 2 * kv_heads * head_dim]
  Tensor cache_scales;  // [pages, page_size] f32 when cache_layer is F8_E4M3, else empty
};

// Causal attention of every query over its sequence's cached keys and values (this step's
// included): query head h reads KV head h / (heads / kv_heads), as transformers' repeat_kv.
struct GqaAttention {
  Tensor q;            // [T, heads, head_dim], rotated
  Tensor cache_layer;  // [pages, page_size, 2 * kv_heads * head_dim]
  Tensor cache_scales;  // [pages, page_size] f32 when cache_layer is F8_E4M3, else empty
  const AttentionBatch* batch = nullptr;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  float softmax_scale = 1.0f;
};

// DeepSeek sparse attention (DSA: DeepSeek-V3.2, GLM-5): a lightning indexer scores every
// cached position for each query and MLA attends only to the top_k best. Per layer, the
// indexer caches one key per token (index_head_dim values) in pages parallel to the latent
// cache (same slots), in the cache's element type; FP8 by the MLA cache's rule (one f32 scale
// per entry).
//
// Writes each token's indexer key: key = LayerNorm(k) (mean and variance over the row, eps,
// weight and bias, as torch.nn.LayerNorm), its first rope->dim values rotated at the token's
// position (rope->interleaved says the pair layout; the output is half-split, as for MLA).
struct DsaKeyWrite {
  Tensor k;             // [T, index_head_dim] output of the indexer's wk
  Tensor norm_weight;   // [index_head_dim]
  Tensor norm_bias;     // [index_head_dim]
  float norm_eps = 1e-6f;
  const RopeTable* rope = nullptr;
  Tensor positions;     // [T] int32
  Tensor slots;         // [T] int32; -1: not written (padding)
  Tensor cache_layer;   // [pages, page_size, index_head_dim]
  Tensor cache_scales;  // [pages, page_size] f32 when cache_layer is F8_E4M3, else empty
};

// The indexer's choice for every query token t of the step, over the positions j <= p(t) of
// its sequence (p: the token's position):
//   score(t, j) = sum_h head_weights[t, h] * head_scale * relu(softmax_scale * q[t, h] . key[j])
// as Hugging Face's DeepseekV32Indexer computes it (f32). Returns [T, top_k] int32: when
// p(t) + 1 <= top_k, the positions 0..p(t) (no scoring: every key is chosen); otherwise the
// top_k positions of highest score, a tie going to the lower position (-0 equals +0; a NaN
// score ranks below every number). Positions are ascending in a row, then -1 to the row's end.
struct DsaTopK {
  Tensor q;             // [T, index_heads, index_head_dim], rotated as the keys
  Tensor head_weights;  // [T, index_heads] f32: the indexer's weights_proj(x)
  Tensor cache_layer;   // [pages, page_size, index_head_dim] (DsaKeyWrite's)
  Tensor cache_scales;  // [pages, page_size] f32 when cache_layer is F8_E4M3, else empty
  const AttentionBatch* batch = nullptr;
  int64_t top_k = 0;
  float softmax_scale = 1.0f;  // index_head_dim^-0.5
  float head_scale = 1.0f;     // index_heads^-0.5
};

struct MoeRouterParams {
  int64_t top_k = 0;
  int64_t num_groups = 1;    // experts are split into groups ...
  int64_t top_k_groups = 1;  // ... and only the best groups are eligible
  bool sigmoid_scores = true;   // sigmoid (DeepSeek-V3) or softmax scoring
  bool use_correction_bias = true;  // bias added for selection only, never to the weights
  bool normalize = true;        // weights of the chosen experts sum to 1 ...
  float scaling_factor = 1.0f;  // ... then are multiplied by this
  // Always-on experts appended after the routed top_k (slots top_k .. top_k + shared_slots - 1):
  // ids experts, experts + 1, ..., weight 1. A model's shared expert stacked after the routed
  // ones (ExpertWeights::shared) runs in the same moe_experts call that way.
  int64_t shared_slots = 0;
};

struct MoeRouting {
  Tensor expert_ids;  // [T, top_k + shared_slots] int32
  Tensor weights;     // [T, top_k + shared_slots] f32
};

// How the scales of an FP8 weight map onto it (the checkpoint formats the loader accepts).
enum class Fp8Scaling : uint8_t {
  Block,    // one scale per [block_out, block_in] tile; activations quantized per token per block_in columns
  Channel,  // one scale per output row; activations quantized per token (whole row)
};

// An FP8 (e4m3) weight with its dequantization scales: real weight = values * scale. It
// travels to Backend::linear_fp8 / moe_experts instead of a dense Tensor. Rank 2 for a
// linear; rank 3 (a leading experts axis on both tensors) for stacked MoE experts.
struct QuantizedWeight {
  Tensor values;  // [(experts,) out, in] F8_E4M3 (OCP e4m3fn)
  Tensor scales;  // F32. Block: [(experts,) ceil(out / block_out), in / block_in]; Channel: [(experts,) out]
  Fp8Scaling scaling = Fp8Scaling::Block;
  int64_t block_out = 0;  // Block only; in % block_in == 0 always holds (checked at load)
  int64_t block_in = 0;

  int64_t out_features() const { return values.dim(values.rank() - 2); }
  int64_t in_features() const { return values.dim(values.rank() - 1); }

  // Rows [begin, end) of a rank-2 weight with their scales, as a view. Block: begin on a scale
  // block's first row, end on one too or the last row (a scale block is never cut).
  QuantizedWeight rows(int64_t begin, int64_t end) const {
    RS_CHECK(values.rank() == 2, "rows of a rank-{} FP8 weight", values.rank());
    QuantizedWeight part = *this;
    part.values = values.rows(begin, end);
    if (scaling == Fp8Scaling::Block) {
      RS_CHECK(block_out > 0 && begin % block_out == 0 && (end % block_out == 0 || end == out_features()),
               "FP8 weight rows [{}, {}) cut a {}-row scale block", begin, end, block_out);
      part.scales = scales.rows(begin / block_out, (end + block_out - 1) / block_out);
    } else {
      part.scales = scales.rows(begin, end);
    }
    return part;
  }
};

// A symmetric group-quantized INT4 weight, as compressed-tensors "pack-quantized" stores it
// (Kimi-K2-Thinking / K2.5's routed experts, group 32): W4A16, the activations stay in the
// backend's dtype. Rank 3 with a leading experts axis (stacked MoE experts).
//   packed[.., r, w]  I32: the 4-bit codes of columns 8w .. 8w + 7, column 8w + i in bits
//                     [4i, 4i + 4), each stored as value + 8 (value in [-8, 7])
//   scales[.., r, g]  the scale of columns [g * group, (g + 1) * group) of row r, in the
//                     backend's activation dtype (the checkpoint's bf16 converts exactly)
//   weight[r, c] = (code(r, c) - 8) * scales[r, c / group], computed in f32.
struct Int4Weight {
  Tensor packed;
  Tensor scales;
  int64_t group = 0;  // a multiple of 8

  int64_t out_features() const { return packed.dim(packed.rank() - 2); }
  int64_t in_features() const { return packed.dim(packed.rank() - 1) * 8; }
};

// An NVFP4 weight as NVIDIA's modelopt exports it (the *-NVFP4 checkpoints of DeepSeek-V3.x,
// GLM-5.x, Kimi-K2.x, MiniMax-M2.5), run W4A16 here (the activations unquantized, the static
// input_scale unused). Rank 3 with a leading experts axis (stacked MoE experts).
//   packed[.., r, b]       U8: the e2m1 codes of columns 2b (low nibble) and 2b + 1 (high
//                          nibble); code = sign (bit 3) and magnitude 0, 0.5, 1, 1.5, 2, 3, 4, 6
//   block_scales[.., r, g] F8_E4M3: the scale of columns [16 g, 16 g + 16) of row r
//   row_scales[.., r]      F32: the module's weight_scale_2 (gate and up rows of an expert
//                          come from two modules, so the global scale is kept per row)
//   weight[r, c] = e2m1(code(r, c)) * e4m3(block_scales[r, c / 16]) * row_scales[r], in f32.
struct Fp4Weight {
  static constexpr int64_t kGroup = 16;
  Tensor packed;
  Tensor block_scales;
  Tensor row_scales;

  int64_t out_features() const { return packed.dim(packed.rank() - 2); }
  int64_t in_features() const { return packed.dim(packed.rank() - 1) * 2; }
};

// How a W8A8 product quantizes its activations (the contract is the CPU backend's
// fp8_linear.h): per token per `group` consecutive columns (Block, group = the weight's
// block_in), or per token over the whole row (Channel, group 0). A weight decides it: of(w).
struct Fp8ActivationLayout {
  Fp8Scaling scaling = Fp8Scaling::Block;
  int64_t group = 0;  // Block: columns per scale (> 0, divides the width); Channel: 0

  static Fp8ActivationLayout of(const QuantizedWeight& w) {
    return w.scaling == Fp8Scaling::Block ? Fp8ActivationLayout{Fp8Scaling::Block, w.block_in}
                                          : Fp8ActivationLayout{Fp8Scaling::Channel, 0};
  }
  // The scales' shape for rows x width activations: Block [rows, width / group]; Channel [rows].
  Shape scales_shape(int64_t rows, int64_t width) const {
    return scaling == Fp8Scaling::Block ? Shape{rows, width / group} : Shape{rows};
  }
  bool operator==(const Fp8ActivationLayout&) const = default;
};

// Activations quantized to e4m3 for W8A8 products, by Backend::quantize_fp8 or fused into the
// op that produced them (rms_norm_fp8, add_rms_norm_fp8, silu_mul_fp8): x[t, k] ≈ values[t, k] *
// scale of (t, k)'s group. Step memory, like any op output. Under tensor parallelism it is the
// quantization of the tensor this rank holds (a row-parallel input: the local shard).
struct QuantizedActivation {
  Tensor values;  // [T, K] F8_E4M3 (OCP e4m3fn)
  Tensor scales;  // F32, layout.scales_shape(T, K)
  Fp8ActivationLayout layout;

  int64_t rows() const { return values.dim(0); }
  int64_t width() const { return values.dim(1); }
};

// A normalised activation and its quantized copy, made by one pass (Backend::rms_norm_fp8 and
// add_rms_norm_fp8): `normed` for the dense consumers (the router), `fp8` for the FP8 linears.
struct NormedActivation {
  Tensor normed;
  QuantizedActivation fp8;
};

// Throws unless `x` is a well-formed QuantizedActivation (rank-2 F8_E4M3 values, F32 scales of
// its layout's shape, Block groups dividing the width).
inline void check_quantized_activation(const char* op, const QuantizedActivation& x) {
  RS_CHECK(x.values.dtype == DType::F8_E4M3 && x.values.rank() == 2,
           "{}: quantized activations must be a 2-D F8_E4M3 tensor, got {} {}", op, dtype_name(x.values.dtype),
           shape_string(x.values.shape));
  RS_CHECK(x.layout.scaling != Fp8Scaling::Block || (x.layout.group > 0 && x.width() % x.layout.group == 0),
           "{}: activation groups of {} columns do not divide the width {}", op, x.layout.group, x.width());
  const Shape expected = x.layout.scales_shape(x.rows(), x.width());
  RS_CHECK(x.scales.dtype == DType::F32 && x.scales.shape == expected,
           "{}: activations {} need F32 scales {}, got {} {}", op, shape_string(x.values.shape),
           shape_string(expected), dtype_name(x.scales.dtype), shape_string(x.scales.shape));
}

// Throws unless activations quantized in `have` can feed a product with `w`.
inline void check_layout_matches(const char* op, const Fp8ActivationLayout& have, const QuantizedWeight& w) {
  const Fp8ActivationLayout want = Fp8ActivationLayout::of(w);
  RS_CHECK(have == want, "{}: activations quantized {} (group {}) but the weight takes {} (group {})", op,
           have.scaling == Fp8Scaling::Block ? "per block" : "per channel", have.group,
           want.scaling == Fp8Scaling::Block ? "per block" : "per channel", want.group);
}

// Exactly one of the dense pair and the FP8 pair is set.
struct ExpertWeights {
  Tensor gate_up;  // [experts, 2 * intermediate, hidden] (gate rows first)
  Tensor down;     // [experts, hidden, intermediate]
  std::optional<QuantizedWeight> gate_up_fp8 = std::nullopt;  // the same shapes, FP8 with scales
  std::optional<QuantizedWeight> down_fp8 = std::nullopt;
  std::optional<Int4Weight> gate_up_int4 = std::nullopt;  // the same shapes, INT4 (W4A16)
  std::optional<Int4Weight> down_int4 = std::nullopt;
  std::optional<Fp4Weight> gate_up_fp4 = std::nullopt;  // the same shapes, NVFP4 (W4A16)
  std::optional<Fp4Weight> down_fp4 = std::nullopt;
  // The last `shared` of the experts are a shared expert stacked after the routed ones (the
  // router's MoeRouterParams::shared_slots); tuned launch configs are looked up for the routed
  // ones (experts - shared, top_k - shared).
  int64_t shared = 0;
};

// ---- sampling ---------------------------------------------------------------------
// How one row of logits picks its token (Backend::sample). Plain host data built by the
// engine from a request's resolved SamplingParams and its history.
//
// Semantics and order (vLLM's): penalties -> banned tokens -> greedy argmax (lowest id on
// ties), or temperature -> min_p -> top_k -> top_p -> draw:
//   penalties     for each penalty token: repetition first (HF: logit > 0 ? logit / r :
//                 logit * r, when `repeated`), then logit -= frequency * output_count +
//                 presence * (output_count > 0)
//   banned        logit = -inf
//   weights       w = exp((logit - max logit) / temperature), so the most likely token has w = 1
//   min_p         keep w >= min_p (and w > 0)
//   top_k         keep w >= the k-th largest kept w (ties at the cut stay)
//   top_p         order kept tokens by (w descending, id ascending); keep a token while the
//                 mass of the kept tokens before it is < top_p * total kept mass (>= 1 kept)
//   draw          target = sampling_uniform(seed, counter) * kept mass; walk the kept tokens
//                 in ascending id order, the first whose inclusive cumulative mass > target
// Masses may be summed in any fixed order and precision at least that of f32 weights
// (the CPU reference uses f64 sums; the CUDA kernel 2^-40 fixed point), so two backends
// agree except when a target or cut falls within rounding of a boundary.
// Log-probabilities are of the raw logits (before penalties and filters).
struct PenaltyToken {
  int32_t token = 0;
  int32_t output_count = 0;  // occurrences in the generated output
  bool repeated = false;     // present in prompt or output (the repetition penalty's set)
};

struct SamplingRow {
  float temperature = 1.0f;  // < 1e-5: greedy
  float top_p = 1.0f;        // (0, 1]
  int32_t top_k = 0;         // <= 0: off
  float min_p = 0.0f;        // [0, 1]
  float repetition_penalty = 1.0f;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  uint64_t seed = 0;
  uint64_t counter = 0;                     // the draw's counter (tokens generated so far)
  int32_t logprobs = -1;                    // -1: none; 0: the sampled token's; k > 0: also the top k
  std::vector<PenaltyToken> penalty_tokens;  // distinct tokens, any order
  std::vector<int32_t> banned;               // distinct tokens forced to -inf

  bool greedy() const { return temperature < 1e-5f; }
};

struct TokenLogprobValue {
  int32_t token = 0;
  float logprob = 0.0f;
};

struct SampledRow {
  int32_t token = 0;
  float logprob = 0.0f;                        // of `token` under the raw logits; set when logprobs >= 0
  std::vector<TokenLogprobValue> top_logprobs;  // the `logprobs` most likely raw tokens (value desc, id asc)
};

}  // namespace rackserve
