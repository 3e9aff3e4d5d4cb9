// CausalLM: the interface every model implements. Models are built against the Backend
// op interface and own their weights on that backend.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>

#include "backend/backend.h"
#include "config/model_config.h"
#include "core/error.h"
#include "models/forward_batch.h"
#include "models/kv_cache.h"
#include "models/load_options.h"
#include "parallel/communicator.h"

namespace rackserve {

// Thrown by a model that cannot run any further step (a tensor-parallel rank failed or
// timed out: the group is aborted). Whoever drives the model must stop using it; the
// engine stops and the server exits with the message.
class ModelFailure : public Error {
 public:
  using Error::Error;
};

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  virtual const ModelConfig& config() const = 0;
  virtual Backend& backend() const = 0;
  // A cache sized for this model with `pages` pages of `page_size` tokens, in `dtype`
  // (nullopt: the backend's native cache, see kv_cache_value_dtype).
  virtual PagedKvCache allocate_kv_cache(int64_t pages, int64_t page_size,
                                         std::optional<KvCacheDtype> dtype = std::nullopt) const = 0;
  // Runs one step: writes the new tokens' KV into `cache` and returns logits [rows, vocab]
  // (a step tensor) with one row per token that asked for logits, in batch order. Throws
  // ModelFailure when the model is unusable from then on, Error for a failed step.
  virtual Tensor forward(const ForwardBatch& batch, PagedKvCache& cache) = 0;
};

// Loads the model in `directory` onto `backend`: config.json, and the *.safetensors
// weights unless options.format is Dummy (then config.json alone is read). With `tp`, the
// model is rank tp->rank() of a tensor-parallel group of tp->world_size(): only that
// rank's slices are read, and every forward joins the group's collectives (all ranks must
// run the same forward calls; see models/tensor_parallel_model.h).
std::unique_ptr<CausalLM> load_model(const std::filesystem::path& directory, Backend& backend,
                                     const LoadOptions& options = {}, Communicator* tp = nullptr);

}  // namespace rackserve
