#include "models/step_graphs.h"

#include <algorithm>
#include <bit>

#include "core/error.h"

namespace rackserve {

namespace {
constexpr int64_t kMinContextBucket = 256;
}  // namespace

int64_t step_graph_batch_bucket(int64_t sequences) {
  RS_CHECK(sequences > 0, "a step graph needs at least one sequence");
  if (sequences <= 8) return static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(sequences)));
  return (sequences + 7) / 8 * 8;
}

StepGraphs::StepGraphs(Backend& backend, const StepGraphOptions& options, int64_t max_context)
    : backend_(backend), options_(options), max_context_(max_context) {
  RS_CHECK(options.max_batch > 0, "the largest graph batch must be positive, got {}", options.max_batch);
}

StepGraphs::~StepGraphs() {
  try {
    release_all();
  } catch (...) {  // a destructor must not throw; the backend frees its graphs itself
  }
}

std::optional<StepGraphShape> StepGraphs::shape_for(const FlatBatch& flat, int64_t page_size) const {
  const int64_t sequences = flat.sequences();
  const bool pure_decode = sequences > 0 && flat.tokens() == sequences &&
                           static_cast<int64_t>(flat.logit_rows.size()) == sequences;
  if (!options_.enabled || !backend_.supports_step_graphs() || !pure_decode || sequences > options_.max_batch)
    return std::nullopt;
  const int64_t keys = std::max({flat.max_context, flat.max_blocks * page_size, kMinContextBucket});
  StepGraphShape shape;
  shape.batch = std::min(step_graph_batch_bucket(sequences), options_.max_batch);
  // A power of two, but not beyond the model's own bound (it would only widen the block table).
  const int64_t bound = (max_context_ + page_size - 1) / page_size * page_size;
  shape.context = std::min(static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(keys))), std::max(keys, bound));
  return shape;
}

void StepGraphs::pad(FlatBatch& flat, const StepGraphShape& shape, int64_t page_size) {
  const int64_t sequences = flat.sequences();
  const int64_t width = (shape.context + page_size - 1) / page_size;
  RS_CHECK(sequences >= 1 && sequences <= shape.batch && flat.max_blocks <= width,
           "batch of {} sequences x {} pages does not fit step graph {}x{}", sequences, flat.max_blocks, shape.batch,
           shape.context);
  std::vector<int32_t> table(static_cast<size_t>(shape.batch * width), 0);
  for (int64_t s = 0; s < shape.batch; ++s) {
    const int64_t source = s < sequences ? s : 0;
    std::copy_n(flat.block_table.begin() + source * flat.max_blocks, flat.max_blocks, table.begin() + s * width);
  }
  flat.block_table = std::move(table);
  flat.max_blocks = width;
  for (int64_t s = sequences; s < shape.batch; ++s) {
    flat.logit_rows.push_back(static_cast<int32_t>(flat.token_ids.size()));
    flat.token_ids.push_back(flat.token_ids.front());
    flat.positions.push_back(flat.positions.front());
    flat.slots.push_back(-1);
    flat.query_start.push_back(static_cast<int32_t>(flat.token_ids.size()));
    flat.context_length.push_back(flat.context_length.front());
  }
  flat.max_context = shape.context;
}

Tensor StepGraphs::run(const StepGraphShape& shape, const PagedKvCache& cache, const std::function<Tensor()>& compute) {
  if (cache.storage().data != cache_storage_) {
    release_all();
    cache_storage_ = cache.storage().data;
  }
  auto found = graphs_.find(shape);
  if (found == graphs_.end()) {
    Graph graph;
    graph.id = backend_.capture_step_graph([&] { graph.output = compute(); });
    found = graphs_.emplace(shape, graph).first;
  }
  backend_.replay_step_graph(found->second.id);
  return found->second.output;
}

void StepGraphs::release_all() {
  for (const auto& [shape, graph] : graphs_) backend_.release_step_graph(graph.id);
  graphs_.clear();
}

}  // namespace rackserve
