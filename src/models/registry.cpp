// load_model: picks the model class for a checkpoint directory from its config.json.
#include "core/error.h"
#include "models/deepseek_v3.h"
#include "weights/safetensors.h"

namespace rackserve {

std::unique_ptr<CausalLM> load_model(const std::filesystem::path& directory, Backend& backend) {
  ModelConfig config = ModelConfig::load(directory);
  WeightStore weights = WeightStore::open(directory);
  // Every model type ModelConfig accepts is a DeepSeek-V3-family architecture.
  return std::make_unique<DeepseekV3Model>(std::move(config), weights, backend);
}

}  // namespace rackserve
