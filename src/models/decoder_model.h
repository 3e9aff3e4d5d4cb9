// DecoderModel: the decoder-only MoE transformers rackserve serves, one class for every
// family: embeddings, pre-norm decoder layers (attention, then a dense MLP for the first
// layers and a routed MoE with optional shared experts after), final norm, lm_head. The
// families differ only in their layers:
//   MLA attention (layers/mla_attention.h): DeepSeek-V3/R1/V3.1, Kimi K2/K2.5 text, GLM-5
//     (without its sparse indexer yet);
//   GQA attention (layers/gqa_attention.h): GLM-4.5/4.6/4.7, MiniMax-M2.x;
// and in their checkpoint names (layers/moe_checkpoint_names.h).
// Built for one tensor-parallel rank when given a communicator: the weights' source loads
// that rank's slices and each layer inserts its collectives (layers/*.h say which).
#pragma once

#include <memory>
#include <vector>

#include "models/layers/feed_forward.h"
#include "models/layers/attention_block.h"
#include "models/layers/rotary_embedding.h"
#include "models/layers/vocab_parallel.h"
#include "models/layers/weight_source.h"
#include "models/flat_batch.h"
#include "models/load_options.h"
#include "models/model.h"
#include "models/step_graphs.h"

namespace rackserve {

class DecoderModel final : public CausalLM {
 public:
  // Builds every layer of `config` (config.num_layers of them) from `weights`. `tp` is this
  // rank's communicator (nullptr: one rank); its rank and size must be weights.shard()'s.
  // Throws when the TP size does not divide the heads, intermediate sizes or vocabulary.
  // `fusions` says which fused weights the layers may build.
  DecoderModel(ModelConfig config, WeightSource& weights, Backend& backend, const StepGraphOptions& graphs = {},
               Communicator* tp = nullptr, const WeightFusions& fusions = {});

  const ModelConfig& config() const override { return config_; }
  Backend& backend() const override { return backend_; }
  PagedKvCache allocate_kv_cache(int64_t pages, int64_t page_size,
                                 std::optional<KvCacheDtype> dtype = std::nullopt) const override;
  Tensor forward(const ForwardBatch& batch, PagedKvCache& cache) override;

  // Step graphs captured so far (tests and benchmarks).
  size_t step_graphs_captured() const { return graphs_.size(); }

 private:
  // Every layer on uploaded inputs -> logits [rows, vocab] f32; issues no host transfer.
  Tensor compute(const StepInputs& inputs, const PagedKvCache& cache);

  struct DecoderLayer {
    Tensor input_norm, post_attention_norm;
    std::unique_ptr<AttentionBlock> attention;
    std::unique_ptr<DenseMlp> dense_mlp;  // exactly one of dense_mlp and moe is set
    std::unique_ptr<MoeBlock> moe;
  };

  ModelConfig config_;
  Backend& backend_;
  RopeTable rope_;
  int64_t kv_entry_width_;  // cached values per token per layer on this rank
  std::unique_ptr<VocabParallelEmbedding> embed_tokens_;
  std::unique_ptr<VocabParallelLmHead> lm_head_;
  Tensor final_norm_;
  std::vector<DecoderLayer> layers_;
  StepGraphs graphs_;
};

}  // namespace rackserve
