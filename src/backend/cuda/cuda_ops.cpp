// CudaBackend ops: shape validation, output allocation, and the kernel launch.
#include "backend/cuda/cuda_backend.h"

#include "backend/cuda/moe_fp8_config_file.h"
#include "core/error.h"
#include "rackserve/kernels/elementwise_params.h"
#include "rackserve/kernels/gemm_params.h"
#include "rackserve/kernels/gqa_params.h"
#include "rackserve/kernels/mla_decode_params.h"
#include "rackserve/kernels/mla_params.h"
#include "rackserve/kernels/moe_params.h"

namespace rackserve {

namespace {

kernels::ElementType element_type(const Tensor& tensor, const char* what) {
  RS_CHECK(tensor.dtype == DType::F32 || tensor.dtype == DType::BF16, "{} must be F32 or BF16, got {}", what,
           dtype_name(tensor.dtype));
  return tensor.dtype == DType::F32 ? kernels::ElementType::F32 : kernels::ElementType::BF16;
}

// Which BF16 GEMM kernel, decided here only: m <= 64 runs the tensor-core small-M kernel
// (weights read once for up to 64 tokens, split-K planned so small-n projections fill the
// SMs), larger m the tiled kernel. Why: on the H200 the CUDA-core small-M kernel it replaces
// re-read the weights per 8 tokens and reached 0.26-0.77 of copy bandwidth at m = 1 and 0.05
// at m = 32 on n < 4096, and the tiled kernel at m = 32 (ceil(n / 128) CTAs, no split-K)
// 0.12-0.47 on n >= 4096 (bench/results/2026-12-02-h200-kernel-roofline.md). The
// tensor-core kernel is compiled, not yet measured: kernel_roofline's gemm section compares
// it with both at m = 1, 8, 32, 64, and that run confirms or moves this threshold.
constexpr int64_t kSmallMMaxTokens = kernels::kLinearBf16SmallMMaxTokens;

bool use_small_m_kernel(int64_t m) { return m <= kSmallMMaxTokens; }

void expect(const Tensor& tensor, DType dtype, int rank, const char* what) {
  RS_CHECK(tensor.dtype == dtype && tensor.rank() == rank, "{} must be a {}-D {} tensor, got {} {}", what, rank,
           dtype_name(dtype), dtype_name(tensor.dtype), shape_string(tensor.shape));
}

void check_linear_operands(const Tensor& x, const Tensor& weight) {
  expect(x, DType::BF16, 2, "linear input");
  expect(weight, DType::BF16, 2, "linear weight");
  RS_CHECK(weight.dim(1) == x.dim(1), "linear: input width {} does not match weight {}", x.dim(1),
           shape_string(weight.shape));
}

}  // namespace

Tensor CudaBackend::embedding(const Tensor& table, const Tensor& token_ids) {
  expect(table, DType::BF16, 2, "embedding table");
  expect(token_ids, DType::I32, 1, "token ids");
  Tensor out = allocate_step(DType::F32, {token_ids.dim(0), table.dim(1)});
  check(kernels::launch_embedding({table.data, token_ids.as<int32_t>(), out.as<float>(), token_ids.dim(0), table.dim(1),
                                   table.dim(0)},
                                  stream_),
        "embedding");
  return out;
}

CudaBackend::RmsNormLaunch CudaBackend::prepare_rms_norm(const char* op, const Tensor* residual, const Tensor& x,
                                                          const Tensor& weight, float eps) {
  if (residual) {
    expect(*residual, DType::F32, 2, "residual stream");
    RS_CHECK(x.shape == residual->shape && weight.numel() == x.dim(1), "{}: shapes {} / {} / {} disagree", op,
             shape_string(residual->shape), shape_string(x.shape), shape_string(weight.shape));
  } else {
    RS_CHECK(x.rank() == 2 && weight.numel() == x.dim(1), "{}: input {} and weight {} disagree", op,
             shape_string(x.shape), shape_string(weight.shape));
  }
  expect(weight, DType::BF16, 1, "rms_norm weight");
  Tensor out = allocate_step(DType::BF16, x.shape);
  return {{x.data, element_type(x, residual ? "add_rms_norm input" : "rms_norm input"),
           residual ? residual->as<float>() : nullptr, weight.data, out.data, x.dim(0), x.dim(1), eps},
          out};
}

Tensor CudaBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  const RmsNormLaunch norm = prepare_rms_norm("rms_norm", nullptr, x, weight, eps);
  check(kernels::launch_rms_norm(norm.params, stream_), "rms_norm");
  return norm.output;
}

Tensor CudaBackend::add_rms_norm(const Tensor& residual, const Tensor& x, const Tensor& weight, float eps) {
  const RmsNormLaunch norm = prepare_rms_norm("add_rms_norm", &residual, x, weight, eps);
  check(kernels::launch_rms_norm(norm.params, stream_), "add_rms_norm");
  return norm.output;
}

void CudaBackend::add_inplace(const Tensor& residual, const Tensor& x) {
  RS_CHECK(residual.shape == x.shape, "add: shapes {} and {} differ", shape_string(residual.shape),
           shape_string(x.shape));
  check(kernels::launch_add({residual.data, element_type(residual, "add target"), x.data, element_type(x, "add source"),
                             x.numel()},
                            stream_),
        "add");
}

void CudaBackend::add_bias(const Tensor& x, const Tensor& bias) {
  expect(x, DType::BF16, 2, "add_bias input");
  expect(bias, DType::BF16, 1, "bias");
  RS_CHECK(bias.numel() == x.dim(1), "add_bias: bias {} for x {}", shape_string(bias.shape), shape_string(x.shape));
  check(kernels::launch_add_bias({x.data, bias.data, x.dim(0), x.dim(1)}, stream_), "add_bias");
}

Tensor CudaBackend::mean_squares(const Tensor& x, int64_t row_width) {
  RS_CHECK(x.rank() == 2 && row_width >= x.dim(1), "mean_squares: x {} as part of rows of {}", shape_string(x.shape),
           row_width);
  Tensor out = allocate_step(DType::F32, {x.dim(0)});
  check(kernels::launch_mean_squares({x.data, element_type(x, "mean_squares input"), out.as<float>(), x.dim(0), x.dim(1),
                                      row_width},
                                     stream_),
        "mean_squares");
  return out;
}

Tensor CudaBackend::rms_norm_given_mean_squares(const Tensor& x, const Tensor& mean_squares, const Tensor& weight,
                                                float eps) {
  RmsNormLaunch norm = prepare_rms_norm("rms_norm_given_mean_squares", nullptr, x, weight, eps);
  expect(mean_squares, DType::F32, 1, "mean squares");
  RS_CHECK(mean_squares.numel() == x.dim(0), "rms_norm_given_mean_squares: {} means for {} rows", mean_squares.numel(),
           x.dim(0));
  norm.params.mean_squares = mean_squares.as<float>();
  check(kernels::launch_rms_norm(norm.params, stream_), "rms_norm_given_mean_squares");
  return norm.output;
}

void CudaBackend::launch_linear_small_m(kernels::LinearBf16Params params) {
  kernels::LinearBf16SmallMConfig config = kernels::plan_linear_bf16_small_m(
      params.m, params.n, params.k, sm_count_, small_m_resident_per_sm(SmallMGemm::Bf16, params.m));
  config.overlap_prior = options_.overlap_launches;
  params.split_counters = static_cast<unsigned*>(split_counters_);
  const int64_t workspace_floats = kernels::linear_bf16_workspace_floats(params.m, params.n, config);
  Tensor workspace = workspace_floats > 0 ? allocate_step(DType::F32, {workspace_floats}) : Tensor{};
  params.workspace = workspace.as<float>();
  check(kernels::launch_linear_bf16_small_m_mma(params, config, stream_), "linear_bf16_small_m_mma");
}

Tensor CudaBackend::linear_into(const Tensor& x, const Tensor& weight, DType output_dtype) {
  check_linear_operands(x, weight);
  Tensor out = allocate_step(output_dtype, {x.dim(0), weight.dim(0)});
  const int64_t m = x.dim(0), n = weight.dim(0), k = x.dim(1);
  kernels::LinearBf16Params params{x.data, weight.data, out.data, element_type(out, "linear output"), m, n, k};
  if (use_small_m_kernel(m))
    launch_linear_small_m(params);
  else
    check(kernels::launch_linear_bf16_tiled(params, stream_), "linear_bf16_tiled");
  return out;
}

Tensor CudaBackend::linear(const Tensor& x, const Tensor& weight) { return linear_into(x, weight, DType::BF16); }
Tensor CudaBackend::linear_f32(const Tensor& x, const Tensor& weight) { return linear_into(x, weight, DType::F32); }

std::pair<Tensor, Tensor> CudaBackend::split_output(const Tensor& flat, int64_t m, int64_t first_rows, int64_t n) {
  return {flat.rows(0, m * first_rows).reshaped({m, first_rows}),
          flat.rows(m * first_rows, m * n).reshaped({m, n - first_rows})};
}

// Decode sizes: one small-M launch storing the two row blocks' outputs one after the other
// (segment_rows), viewed as two tensors. Otherwise the two parts as two linears.
std::pair<Tensor, Tensor> CudaBackend::linear_split(const Tensor& x, const Tensor& weight, int64_t first_rows) {
  check_linear_operands(x, weight);
  const int64_t m = x.dim(0), n = weight.dim(0), k = x.dim(1);
  RS_CHECK(0 < first_rows && first_rows < n, "linear_split: rows cut at {} of a {} weight", first_rows,
           shape_string(weight.shape));
  if (!use_small_m_kernel(m))
    return {linear_into(x, weight.rows(0, first_rows), DType::BF16),
            linear_into(x, weight.rows(first_rows, n), DType::BF16)};
  Tensor out = allocate_step(DType::BF16, {m * n});
  kernels::LinearBf16Params params{x.data, weight.data, out.data, kernels::ElementType::BF16, m, n, k};
  params.segment_rows = first_rows;
  launch_linear_small_m(params);
  return split_output(out, m, first_rows, n);
}

Tensor CudaBackend::silu_mul(const Tensor& gate_up) {
  expect(gate_up, DType::BF16, 2, "silu_mul input");
  RS_CHECK(gate_up.dim(1) % 2 == 0, "silu_mul input width {} is odd", gate_up.dim(1));
  Tensor out = allocate_step(DType::BF16, {gate_up.dim(0), gate_up.dim(1) / 2});
  check(kernels::launch_silu_mul({gate_up.data, out.data, gate_up.dim(0), gate_up.dim(1) / 2}, stream_), "silu_mul");
  return out;
}

Tensor CudaBackend::gather_rows(const Tensor& x, const Tensor& row_indices) {
  RS_CHECK(x.rank() == 2, "gather_rows input must be 2-D, got {}", shape_string(x.shape));
  expect(row_indices, DType::I32, 1, "row indices");
  Tensor out = allocate_step(x.dtype, {row_indices.dim(0), x.dim(1)});
  check(kernels::launch_gather_rows({x.data, row_indices.as<int32_t>(), out.data, row_indices.dim(0), x.dim(0),
                                     static_cast<int64_t>(x.dim(1) * dtype_size(x.dtype))},
                                    stream_),
        "gather_rows");
  return out;
}

void CudaBackend::rope_inplace(const Tensor& x, int64_t offset, const RopeTable& rope, const Tensor& positions) {
  expect(x, DType::BF16, 3, "rope input");
  RS_CHECK(positions.numel() == x.dim(0), "rope: {} positions for {} tokens", positions.numel(), x.dim(0));
  kernels::RopeParams params{x.data,      positions.as<int32_t>(), rope.inv_freq.as<float>(), x.dim(0), x.dim(1),
                             x.dim(2),    offset,                  rope.dim,                  rope.scale,
                             rope.interleaved};
  check(kernels::launch_rope(params, stream_), "rope");
}

void CudaBackend::mla_write_cache(const MlaCacheWrite& args) {
  expect(args.kv, DType::BF16, 2, "mla kv");
  check_paged_cache("mla_write_cache", args.cache_layer, args.cache_scales, DType::BF16, args.kv.dim(1));
  const int64_t lora = args.norm_weight.numel();
  RS_CHECK(args.rope && lora + args.rope->dim == args.kv.dim(1) && args.cache_layer.dim(2) == args.kv.dim(1),
           "mla_write_cache: kv {} / cache {} / lora {} disagree", shape_string(args.kv.shape),
           shape_string(args.cache_layer.shape), lora);
  const bool fp8 = args.cache_layer.dtype == DType::F8_E4M3;
  kernels::MlaCacheWriteParams params{};
  params.kv = args.kv.data;
  params.norm_weight = args.norm_weight.data;
  params.positions = args.positions.as<int32_t>();
  params.slots = args.slots.as<int32_t>();
  params.inv_freq = args.rope->inv_freq.as<float>();
  params.cache = args.cache_layer.data;
  params.cache_scales = fp8 ? args.cache_scales.as<float>() : nullptr;
  params.cache_type = fp8 ? kernels::MlaCacheType::E4M3 : kernels::MlaCacheType::BF16;
  params.tokens = args.kv.dim(0);
  params.lora = lora;
  params.dim = args.rope->dim;
  params.capacity = args.cache_layer.dim(0) * args.cache_layer.dim(1);
  params.eps = args.norm_eps;
  params.rope_scale = args.rope->scale;
  params.interleaved = args.rope->interleaved;
  check(kernels::launch_mla_cache_write(params, stream_), "mla_cache_write");
}

Tensor CudaBackend::mla_attention(const MlaAttention& args) {
  const AttentionBatch& batch = *args.batch;
  expect(args.q, DType::BF16, 3, "mla q");
  RS_CHECK(args.q.dim(0) == batch.num_tokens && args.q.dim(1) == args.heads &&
               args.q.dim(2) == args.qk_nope_dim + args.rope_dim,
           "mla_attention: q {} does not match the batch", shape_string(args.q.shape));
  RS_CHECK(args.kv_b.dim(0) == args.heads * (args.qk_nope_dim + args.v_dim) && args.kv_b.dim(1) == args.kv_lora_rank,
           "mla_attention: kv_b {} has the wrong shape", shape_string(args.kv_b.shape));
  check_paged_cache("mla_attention", args.cache_layer, args.cache_scales, DType::BF16,
                  args.kv_lora_rank + args.rope_dim);
  RS_CHECK(args.cache_layer.dim(1) == batch.page_size, "mla_attention: cache {} does not have pages of {} tokens",
           shape_string(args.cache_layer.shape), batch.page_size);
  const bool fp8 = args.cache_layer.dtype == DType::F8_E4M3;
  const int64_t tokens = batch.num_tokens, heads = args.heads;
  Tensor q_latent = allocate_step(DType::F32, {tokens, heads, args.kv_lora_rank});
  Tensor out_latent = allocate_step(DType::F32, {tokens, heads, args.kv_lora_rank});
  Tensor out = allocate_step(DType::BF16, {tokens, heads, args.v_dim});
  kernels::MlaAttentionParams params{};
  params.q = args.q.data;
  params.kv_b = args.kv_b.data;
  params.cache = args.cache_layer.data;
  params.cache_scales = fp8 ? args.cache_scales.as<float>() : nullptr;
  params.cache_type = fp8 ? kernels::MlaCacheType::E4M3 : kernels::MlaCacheType::BF16;
  params.query_start = batch.query_start.as<int32_t>();
  params.block_table = batch.block_table.as<int32_t>();
  params.positions = batch.positions.as<int32_t>();
  params.q_latent = q_latent.as<float>();
  params.out_latent = out_latent.as<float>();
  params.output = out.data;
  params.tokens = tokens;
  params.sequences = batch.num_sequences;
  params.heads = heads;
  params.nope = args.qk_nope_dim;
  params.rope = args.rope_dim;
  params.v = args.v_dim;
  params.lora = args.kv_lora_rank;
  params.page_size = batch.page_size;
  params.max_blocks = batch.block_table.dim(1);
  params.softmax_scale = args.softmax_scale;
  const bool sparse = !args.key_positions.empty();
  if (sparse) {
    RS_CHECK(args.key_positions.dtype == DType::I32 && args.key_positions.rank() == 2 &&
                 args.key_positions.dim(0) == tokens,
             "mla_attention: key positions {} are not [{}, top_k] int32", shape_string(args.key_positions.shape), tokens);
    params.key_positions = args.key_positions.as<int32_t>();
    params.top_k = args.key_positions.dim(1);
  }
  // A pure decode step (one query per sequence) on the 512 + 64 latent takes the split-KV
  // kernel, which reads each latent row once per group of 16-32 heads; anything else (prefill,
  // chunked prefill, other latent widths) the per-head kernel. Both compute any batch correctly.
  const bool split_kv = tokens > 0 && tokens == batch.num_sequences &&
                        kernels::mla_decode_supported(args.kv_lora_rank, args.rope_dim, args.qk_nope_dim);
  if (!split_kv) {
    check(kernels::launch_mla_attention(params, stream_), "mla_attention");
    return out;
  }
  int64_t max_keys = batch.max_context_length > 0 ? batch.max_context_length : params.max_blocks * batch.page_size;
  if (sparse) max_keys = std::min(max_keys, params.top_k);
  const kernels::MlaDecodeConfig config = kernels::plan_mla_decode(tokens, heads, max_keys, sm_count_);
  const int64_t workspace_floats = kernels::mla_decode_workspace_floats(tokens, heads, args.kv_lora_rank, config);
  Tensor workspace = allocate_step(DType::F32, {std::max<int64_t>(workspace_floats, 1)});
  kernels::MlaDecodeParams decode{};
  decode.q_latent = params.q_latent;
  decode.q = params.q;
  decode.cache = params.cache;
  decode.cache_scales = params.cache_scales;
  decode.cache_type = params.cache_type;
  decode.query_start = params.query_start;
  decode.block_table = params.block_table;
  decode.positions = params.positions;
  decode.out_latent = params.out_latent;
  decode.partial_out = workspace.as<float>();  // [tokens, splits, heads, lora] then the LSEs
  decode.partial_lse = workspace.as<float>() + tokens * config.splits * heads * args.kv_lora_rank;
  decode.tokens = tokens;
  decode.sequences = batch.num_sequences;
  decode.heads = heads;
  decode.nope = args.qk_nope_dim;
  decode.rope = args.rope_dim;
  decode.lora = args.kv_lora_rank;
  decode.page_size = batch.page_size;
  decode.max_blocks = params.max_blocks;
  decode.softmax_scale = args.softmax_scale;
  decode.key_positions = params.key_positions;
  decode.top_k = params.top_k;
  check(kernels::launch_mla_q_latent(params, stream_), "mla_q_latent");
  check(kernels::launch_mla_decode_split_kv(decode, config, stream_), "mla_decode_split_kv");
  check(kernels::launch_mla_output(params, stream_), "mla_output");
  return out;
}

void CudaBackend::gqa_write_cache(const GqaCacheWrite& args) {
  expect(args.k, DType::BF16, 3, "gqa k");
  expect(args.v, DType::BF16, 3, "gqa v");
  const int64_t tokens = args.k.dim(0), kv_heads = args.k.dim(1), head_dim = args.k.dim(2);
  check_paged_cache("gqa_write_cache", args.cache_layer, args.cache_scales, DType::BF16, 2 * kv_heads * head_dim);
  RS_CHECK(args.v.shape == args.k.shape && args.slots.numel() == tokens,
           "gqa_write_cache: k {}, v {} and {} slots disagree", shape_string(args.k.shape), shape_string(args.v.shape),
           args.slots.numel());
  kernels::GqaCacheWriteParams params{args.k.data, args.v.data, args.slots.as<int32_t>(), args.cache_layer.data,
                                      tokens, kv_heads, head_dim, args.cache_layer.dim(0) * args.cache_layer.dim(1)};
  params.cache_scales = args.cache_scales.empty() ? nullptr : args.cache_scales.as<float>();
  check(kernels::launch_gqa_cache_write(params, stream_), "gqa_cache_write");
}

Tensor CudaBackend::gqa_attention(const GqaAttention& args) {
  const AttentionBatch& batch = *args.batch;
  expect(args.q, DType::BF16, 3, "gqa q");
  check_paged_cache("gqa_attention", args.cache_layer, args.cache_scales, DType::BF16,
                    2 * args.kv_heads * args.head_dim);
  RS_CHECK(args.q.dim(0) == batch.num_tokens && args.q.dim(1) == args.heads && args.q.dim(2) == args.head_dim,
           "gqa_attention: q {} does not match the batch", shape_string(args.q.shape));
  RS_CHECK(args.cache_layer.dim(1) == batch.page_size, "gqa_attention: cache {} does not have pages of {} tokens",
           shape_string(args.cache_layer.shape), batch.page_size);
  RS_CHECK(args.head_dim % 32 == 0 && args.head_dim <= kernels::kGqaMaxHeadDim,
           "gqa_attention: head_dim {} must be a multiple of 32 up to {}", args.head_dim, kernels::kGqaMaxHeadDim);
  Tensor out = allocate_step(DType::BF16, args.q.shape);
  kernels::GqaAttentionParams params{};
  params.q = args.q.data;
  params.cache = args.cache_layer.data;
  params.query_start = batch.query_start.as<int32_t>();
  params.block_table = batch.block_table.as<int32_t>();
  params.positions = batch.positions.as<int32_t>();
  params.output = out.data;
  params.tokens = batch.num_tokens;
  params.sequences = batch.num_sequences;
  params.heads = args.heads;
  params.kv_heads = args.kv_heads;
  params.head_dim = args.head_dim;
  params.page_size = batch.page_size;
  params.max_blocks = batch.block_table.dim(1);
  params.softmax_scale = args.softmax_scale;
  params.cache_scales = args.cache_scales.empty() ? nullptr : args.cache_scales.as<float>();
  // A pure decode step (one query per sequence) takes the split-KV kernel, which reads each
  // cached row once per KV head group; prefill and chunked prefill the tiled kernel, which reads
  // it once per 64 queries; what neither covers (groups over 16 heads at decode, head_dim other
  // than 64 / 128 at prefill) the per-head kernel. All compute any batch.
  const bool decode = batch.num_tokens > 0 && batch.num_tokens == batch.num_sequences &&
                      kernels::gqa_decode_supported(args.heads, args.kv_heads, args.head_dim);
  if (!decode) {
    if (batch.num_tokens != batch.num_sequences &&
        kernels::gqa_prefill_supported(args.heads, args.kv_heads, args.head_dim))
      check(kernels::launch_gqa_prefill_tiled(params, stream_), "gqa_prefill_tiled");
    else
      check(kernels::launch_gqa_attention(params, stream_), "gqa_attention");
    return out;
  }
  const int64_t max_keys = batch.max_context_length > 0 ? batch.max_context_length : params.max_blocks * batch.page_size;
  const kernels::GqaDecodeConfig config = kernels::plan_gqa_decode(batch.num_tokens, args.kv_heads, max_keys, sm_count_);
  const int64_t workspace_floats =
      kernels::gqa_decode_workspace_floats(batch.num_tokens, args.heads, args.head_dim, config);
  Tensor workspace = workspace_floats > 0 ? allocate_step(DType::F32, {workspace_floats}) : Tensor{};
  params.partials = workspace_floats > 0 ? workspace.as<float>() : nullptr;
  check(kernels::launch_gqa_decode_split_kv(params, config, stream_), "gqa_decode_split_kv");
  return out;
}

MoeRouting CudaBackend::moe_route(const Tensor& router_logits, const Tensor& score_correction_bias,
                                  const MoeRouterParams& params) {
  expect(router_logits, DType::F32, 2, "router logits");
  const int64_t tokens = router_logits.dim(0), experts = router_logits.dim(1);
  RS_CHECK(!params.use_correction_bias || (score_correction_bias.dtype == DType::F32 &&
                                           score_correction_bias.numel() == experts),
           "score correction bias must be F32 [{}]", experts);
  const int64_t slots = params.top_k + params.shared_slots;
  MoeRouting routing{allocate_step(DType::I32, {tokens, slots}), allocate_step(DType::F32, {tokens, slots})};
  kernels::MoeRouteParams launch{router_logits.as<float>(),
                                 params.use_correction_bias ? score_correction_bias.as<float>() : nullptr,
                                 routing.expert_ids.as<int32_t>(),
                                 routing.weights.as<float>(),
                                 tokens,
                                 experts,
                                 params.top_k,
                                 params.num_groups,
                                 params.top_k_groups,
                                 params.sigmoid_scores,
                                 params.normalize,
                                 params.scaling_factor,
                                 params.shared_slots};
  check(kernels::launch_moe_route(launch, stream_), "moe_route");
  return routing;
}

kernels::MoeAlignParams CudaBackend::align_moe_pairs(const MoeRouting& routing, int64_t experts, int64_t block) {
  const int64_t tokens = routing.expert_ids.dim(0), top_k = routing.expert_ids.dim(1);
  const kernels::MoeAlignLayout layout = kernels::moe_align_layout(tokens, top_k, experts, block);
  Tensor lists = allocate_step(DType::I32, {layout.capacity + 3 * layout.max_active + layout.max_blocks});
  kernels::MoeAlignParams align{};
  align.expert_ids = routing.expert_ids.as<int32_t>();
  align.sorted_pairs = lists.as<int32_t>();
  align.active_experts = align.sorted_pairs + layout.capacity;
  align.active_offsets = align.active_experts + layout.max_active;
  align.active_counts = align.active_offsets + layout.max_active;
  align.block_slots = align.active_counts + layout.max_active;
  align.pairs = layout.pairs;
  align.experts = experts;
  align.max_active = layout.max_active;
  align.max_blocks = layout.max_blocks;
  align.block = block;
  check(kernels::launch_moe_align_tokens(align, stream_), "moe_align_tokens");
  return align;
}

kernels::MoeFp8Config CudaBackend::moe_fp8_config(const ExpertWeights& experts, int64_t tokens, int64_t top_k) {
  RS_CHECK(experts.gate_up_fp8.has_value(), "moe_fp8_config: the experts are not FP8");
  const QuantizedWeight& gate_up = *experts.gate_up_fp8;
  RS_CHECK(gate_up.values.rank() == 3, "FP8 expert gate_up must be rank 3, got {}", shape_string(gate_up.values.shape));
  // The routed experts' shape (a stacked shared expert adds one expert and one slot to each
  // token): the tuned files are keyed by the model's expert count.
  const MoeFp8Shape shape{gate_up.values.dim(0) - experts.shared, gate_up.out_features() / 2, gate_up.in_features(),
                          top_k - experts.shared,
                          gate_up.scaling == Fp8Scaling::Block ? MoeFp8Dtype::Block : MoeFp8Dtype::Channel};
  return moe_fp8_configs_->select(shape, tokens);
}

Tensor CudaBackend::moe_experts(const Tensor& x, const MoeRouting& routing, const ExpertWeights& experts) {
  expect(x, DType::BF16, 2, "moe input");
  RS_CHECK(experts.gate_up_fp8.has_value() == experts.down_fp8.has_value(),
           "expert gate_up and down must both be FP8 or both dense");
  if (experts.gate_up_fp8)  // x quantized once per token, then the FP8 experts (cuda_fp8_ops.cpp)
    return moe_experts(quantize_fp8(x, Fp8ActivationLayout::of(*experts.gate_up_fp8)), routing, experts);
  const bool int4 = experts.gate_up_int4.has_value(), fp4 = experts.gate_up_fp4.has_value();
  RS_CHECK(int4 == experts.down_int4.has_value() && fp4 == experts.down_fp4.has_value() && !(int4 && fp4),
           "expert gate_up and down must both be INT4, both NVFP4 or both dense");
  // One weight as the kernels take it: its [experts, out, in] whatever its storage, validated.
  struct ExpertTensors {
    Shape shape;
    const void* values = nullptr;
    const void* scales = nullptr;
    const float* row_scales = nullptr;
    int64_t group = 0;
  };
  auto tensors_of = [&](const Tensor& dense, const std::optional<Int4Weight>& int4_weight,
                        const std::optional<Fp4Weight>& fp4_weight, const char* what) -> ExpertTensors {
    if (int4_weight) {
      const Int4Weight& w = *int4_weight;
      expect(w.packed, DType::I32, 3, what);
      expect(w.scales, DType::BF16, 3, what);
      const Shape shape{w.packed.dim(0), w.out_features(), w.in_features()};
      RS_CHECK(w.group > 0 && w.group % 8 == 0 && shape[2] % w.group == 0 &&
                   w.scales.shape == Shape({shape[0], shape[1], shape[2] / w.group}),
               "{}: INT4 scales {} do not match packed codes {} in groups of {}", what, shape_string(w.scales.shape),
               shape_string(w.packed.shape), w.group);
      return {shape, w.packed.data, w.scales.data, nullptr, w.group};
    }
    if (fp4_weight) {
      const Fp4Weight& w = *fp4_weight;
      expect(w.packed, DType::U8, 3, what);
      expect(w.block_scales, DType::F8_E4M3, 3, what);
      expect(w.row_scales, DType::F32, 2, what);
      const Shape shape{w.packed.dim(0), w.out_features(), w.in_features()};
      RS_CHECK(w.block_scales.shape == Shape({shape[0], shape[1], shape[2] / Fp4Weight::kGroup}) &&
                   w.row_scales.shape == Shape({shape[0], shape[1]}),
               "{}: NVFP4 scales {} / {} do not match packed codes {}", what, shape_string(w.block_scales.shape),
               shape_string(w.row_scales.shape), shape_string(w.packed.shape));
      return {shape, w.packed.data, w.block_scales.data, w.row_scales.as<float>(), Fp4Weight::kGroup};
    }
    expect(dense, DType::BF16, 3, what);
    return {dense.shape, dense.data};
  };
  const ExpertTensors gate_up = tensors_of(experts.gate_up, experts.gate_up_int4, experts.gate_up_fp4, "expert gate_up");
  const ExpertTensors down = tensors_of(experts.down, experts.down_int4, experts.down_fp4, "expert down");
  const Shape& gate_up_shape = gate_up.shape;
  const Shape& down_shape = down.shape;
  const int64_t tokens = x.dim(0), hidden = x.dim(1), top_k = routing.expert_ids.dim(1);
  const int64_t count = gate_up_shape[0], inter = gate_up_shape[1] / 2;
  RS_CHECK(gate_up_shape[2] == hidden && down_shape == Shape({count, hidden, inter}),
           "expert weights {} / {} do not match hidden {}", shape_string(gate_up_shape), shape_string(down_shape),
           hidden);
  RS_CHECK(gate_up.group == down.group, "4-bit experts: gate_up groups of {}, down groups of {}", gate_up.group,
           down.group);
  RS_CHECK(routing.expert_ids.dim(0) == tokens && routing.weights.numel() == tokens * top_k,
           "moe routing {} does not match {} tokens", shape_string(routing.expert_ids.shape), tokens);
  // Workspace: the per-expert pair lists (ints), the activation as bf16 high + low parts, and
  // one f32 contribution row per pair (summed per token in slot order by the last kernel).
  const kernels::MoeAlignParams align = align_moe_pairs(routing, count, kernels::kMoeAlignBlock);
  Tensor activated = allocate_step(DType::BF16, {2, align.pairs, inter});
  Tensor contributions = allocate_step(DType::F32, {align.pairs, hidden});
  Tensor out = allocate_step(DType::F32, {tokens, hidden});
  kernels::MoeGroupedExpertsParams params{};
  params.x = x.data;
  params.weights = routing.weights.as<float>();
  params.gate_up = gate_up.values;
  params.down = down.values;
  params.weight_format = int4  ? kernels::MoeWeightFormat::INT4
                         : fp4 ? kernels::MoeWeightFormat::NVFP4
                               : kernels::MoeWeightFormat::BF16;
  params.gate_up_scales = gate_up.scales;
  params.down_scales = down.scales;
  params.gate_up_row_scales = gate_up.row_scales;
  params.down_row_scales = down.row_scales;
  params.group = gate_up.group;
  kernels::set_pair_lists(params, align);
  params.activated_high = activated.data;
  params.activated_low = static_cast<std::byte*>(activated.data) + align.pairs * inter * 2;
  params.contributions = contributions.as<float>();
  params.output = out.as<float>();
  params.tokens = tokens;
  params.top_k = top_k;
  params.experts = count;
  params.hidden = hidden;
  params.inter = inter;
  check(kernels::launch_moe_experts_grouped(params, kernels::plan_moe_grouped(tokens, top_k, count), stream_),
        "moe_experts_grouped");
  return out;
}

Tensor CudaBackend::moe_experts(const QuantizedActivation& x, const MoeRouting& routing, const ExpertWeights& experts) {
  RS_CHECK(experts.gate_up_fp8 && experts.down_fp8, "moe_experts on quantized activations needs FP8 experts");
  check_quantized_activation("moe_experts", x);
  RS_CHECK(routing.expert_ids.rank() == 2, "moe routing ids must be [T, top_k], got {}",
           shape_string(routing.expert_ids.shape));
  return moe_experts_fp8(x, routing, experts, moe_fp8_config(experts, x.rows(), routing.expert_ids.dim(1)));
}

}  // namespace rackserve
