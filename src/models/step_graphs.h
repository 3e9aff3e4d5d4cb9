// StepGraphs: decode steps replayed from captured backend graphs (CUDA graphs) instead of
// launching every op. A pure decode batch (one new token and one logit row per sequence)
// of S <= max_batch sequences runs padded to the next batch bucket B (1, 2, 4, 8, then
// multiples of 8), with its context bound rounded up to a power of two C (>= 256): the
// graph of (B, C) is captured on first use and replayed afterwards. Padding rows repeat
// the first sequence (same token, position, pages: they route to the same experts and
// read finite cache data) with slot -1, so they write nothing; their logits are dropped.
// Attention plans (split counts) are made for C, which covers every context of the batch.
// Prefill and mixed steps, and backends without graphs, run eagerly.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <utility>

#include "models/flat_batch.h"
#include "models/kv_cache.h"

namespace rackserve {

struct StepGraphOptions {
  bool enabled = true;     // off: every step runs eagerly (--enforce-eager)
  int64_t max_batch = 128;  // larger decode batches run eagerly
};

struct StepGraphShape {
  int64_t batch = 0;    // padded sequences (= tokens)
  int64_t context = 0;  // bound on every context length; the block table has context / page_size columns
  auto operator<=>(const StepGraphShape&) const = default;
};

class StepGraphs {
 public:
  // `max_context` bounds the positions the model accepts (max_position_embeddings).
  StepGraphs(Backend& backend, const StepGraphOptions& options, int64_t max_context);
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  // The shape `flat` would replay as, or nullopt when it must run eagerly.
  std::optional<StepGraphShape> shape_for(const FlatBatch& flat, int64_t page_size) const;

  // Pads `flat` (for which shape_for returned `shape`) to the shape, as described above.
  static void pad(FlatBatch& flat, const StepGraphShape& shape, int64_t page_size);

  // Replays the graph of `shape` for `cache` (capturing `compute` first if there is none)
  // and returns the tensor `compute` returned at capture. The step's inputs must have been
  // uploaded after begin_step() exactly as at capture (upload_step_inputs of a padded batch
  // of this shape); graphs captured for another cache are released first.
  Tensor run(const StepGraphShape& shape, const PagedKvCache& cache, const std::function<Tensor()>& compute);

  // Graphs captured so far.
  size_t size() const { return graphs_.size(); }

 private:
  struct Graph {
    int64_t id = -1;
    Tensor output;
  };
  void release_all();

  Backend& backend_;
  StepGraphOptions options_;
  int64_t max_context_;
  const void* cache_storage_ = nullptr;  // the cache the graphs were captured with
  std::map<StepGraphShape, Graph> graphs_;
};

// The batch bucket S pads to (1, 2, 4, 8, then multiples of 8).
int64_t step_graph_batch_bucket(int64_t sequences);

}  // namespace rackserve
