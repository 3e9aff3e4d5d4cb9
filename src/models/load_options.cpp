#include "models/load_options.h"

#include "core/error.h"

namespace rackserve {

LoadFormat parse_load_format(std::string_view name) {
  if (name == "auto" || name == "safetensors") return LoadFormat::Safetensors;
  if (name == "dummy") return LoadFormat::Dummy;
  RS_FAIL("load format \"{}\" is not one of auto, safetensors, dummy", name);
}

std::string_view load_format_name(LoadFormat format) {
  switch (format) {
    case LoadFormat::Safetensors: return "safetensors";
    case LoadFormat::Dummy: return "dummy";
  }
  return "?";
}

ModelConfig with_layers_cut(ModelConfig config, int64_t num_layers) {
  RS_CHECK(num_layers >= 0 && num_layers <= config.num_layers, "--num-layers {}: the model has {} layers (0: all)",
           num_layers, config.num_layers);
  if (num_layers > 0) config.num_layers = num_layers;
  return config;
}

}  // namespace rackserve
