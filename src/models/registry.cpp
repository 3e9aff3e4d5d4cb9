// load_model: picks the model class for a checkpoint directory from its config.json and
// the weight source from LoadOptions.
#include "core/error.h"
#include "models/decoder_model.h"
#include "models/layers/checkpoint_weight_source.h"
#include "models/layers/dummy_weight_source.h"
#include "weights/safetensors.h"

namespace rackserve {

std::unique_ptr<CausalLM> load_model(const std::filesystem::path& directory, Backend& backend,
                                     const LoadOptions& options, Communicator* tp) {
  ModelConfig config = with_layers_cut(ModelConfig::load(directory), options.num_layers);
  const ShardSpec shard{tp ? tp->rank() : 0, tp ? tp->world_size() : 1};
  // Every model type ModelConfig accepts is a DecoderModel (MLA or GQA attention).
  if (options.format == LoadFormat::Dummy) {
    DummyWeightSource weights(config, backend, options.dummy_seed, shard, options.fp8_weights, QuantConfig::load(directory));
    auto model =
        std::make_unique<DecoderModel>(std::move(config), weights, backend, options.step_graphs, tp, options.fusions);
    weights.check_complete();
    return model;
  }
  WeightStore store = WeightStore::open(directory);
  CheckpointWeightSource weights(store, backend, QuantConfig::load(directory), options.fp8_weights, shard,
                                 config.checkpoint_prefix);
  return std::make_unique<DecoderModel>(std::move(config), weights, backend, options.step_graphs, tp,
                                           options.fusions);
}

}  // namespace rackserve
