// Multi-head latent attention block of the DeepSeek-V3 family (with or without query
// compression): projections, latent cache write, absorbed attention, output projection.
// Tensor parallelism: heads are divided among the ranks (q_b / q_proj and kv_b by rows,
// o_proj by columns, its partial sums all-reduced); the compressions (q_a, kv_a) and the
// latent cache are replicated, every rank writes the same latents into its own cache.
// DeepSeek sparse attention models (GLM-5, DeepSeek-V3.2) add a DsaIndexer: each query then
// attends to the index_topk positions it picks instead of every earlier one.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "backend/backend.h"
#include "config/model_config.h"
#include "models/layers/activation.h"
#include "models/layers/attention_block.h"
#include "models/layers/dsa_indexer.h"
#include "models/layers/step_context.h"
#include "models/layers/weight_loader.h"
#include "parallel/communicator.h"

namespace rackserve {

class MlaAttentionBlock final : public AttentionBlock {
 public:
  // `prefix` is e.g. "model.layers.3.self_attn"; `tp` is the rank's group (nullptr: one
  // rank), whose size must be loader.shard().world and divide num_attention_heads.
  MlaAttentionBlock(const ModelConfig& config, WeightLoader& loader, const std::string& prefix,
                    Communicator* tp = nullptr);

  // x [T, hidden] (already normalised) -> [T, hidden]; writes the step's latents into
  // cache.entries (and, for an FP8 cache, their scales into cache.scales; with an indexer, its
  // keys into cache.index_keys).
  Tensor forward(Backend& backend, const Activation& x, const StepContext& step,
                 const LayerKvCache& cache) const override;

  // The layout the producer of x should quantize it in: one copy serves both projections of x
  // (kv_a_proj_with_mqa and q_a_proj / q_proj) when they are FP8; nullopt when neither is.
  std::optional<Fp8ActivationLayout> input_fp8_layout() const override;

 private:
  MlaConfig shape_;
  int64_t local_heads_;  // this rank's heads
  Communicator* tp_;
  float norm_eps_;
  float softmax_scale_;
  LinearWeight q_a_proj_, q_b_proj_;  // with query compression (q_lora_rank > 0)
  Tensor q_a_norm_;
  LinearWeight q_proj_;               // without
  LinearWeight kv_a_proj_, o_proj_;
  // With query compression, q_a_proj's rows stacked on kv_a_proj_with_mqa's (both compress the
  // same x; vLLM's fused_qkv_a_proj): one product instead of two. Empty (and q_a_proj_,
  // kv_a_proj_ loaded on their own) when the checkpoint stores the two differently.
  LinearWeight qkv_a_proj_;
  bool fused_qkv_a() const { return !qkv_a_proj_.dense.empty() || qkv_a_proj_.fp8.has_value(); }
  Tensor kv_a_norm_, kv_b_proj_;
  std::unique_ptr<DsaIndexer> indexer_;  // DeepSeek sparse attention; null for dense MLA
};

}  // namespace rackserve
