// WeightLoader: what model code uses to get its weights by checkpoint name and expected
// shape, whatever the WeightSource behind it (a checkpoint or dummy weights). Linear layers
// are asked for by module name, so the source can hand back FP8 ones (LinearWeight).
// Every call names the full checkpoint shape and how tensor parallelism splits the tensor
// (the layer's declaration); what comes back is this rank's part (shard()).
#pragma once

#include <string>
#include <vector>

#include "models/layers/weight_source.h"
#include "models/load_options.h"

namespace rackserve {

class WeightLoader {
 public:
  explicit WeightLoader(WeightSource& source, WeightFusions fusions = {}) : source_(source), fusions_(fusions) {}

  const ShardSpec& shard() const { return source_.shard(); }
  // Which fused weights the layers may build (they still ask whether the checkpoint allows them).
  const WeightFusions& fusions() const { return fusions_; }

  // One tensor; `shape` is the expected (full) shape.
  Tensor load(const std::string& name, const Shape& shape, WeightRole role, const TensorSharding& sharding = {}) {
    return source_.load(name, shape, role, sharding);
  }
  // A linear layer [out, in] named by its module ("model.layers.0.self_attn.o_proj"), dense
  // or FP8 as the checkpoint stores it.
  LinearWeight load_linear(const std::string& module, int64_t out, int64_t in, TpSplit split) {
    return source_.load_linear({{module}, {out}, in, 1, WeightRole::Linear, split});
  }
  // Several linear modules [rows_i, cols] fused along rows (gate_proj and up_proj), each
  // split on its own.
  LinearWeight load_linear_concat(const std::vector<std::string>& modules, const std::vector<int64_t>& rows,
                                  int64_t cols, TpSplit split) {
    return source_.load_linear({modules, rows, cols, 1, WeightRole::Linear, split});
  }
  // Whether load_linear_concat can fuse these modules (stored alike; FP8 block scales whole).
  bool can_concat_linear(const std::vector<std::string>& modules, const std::vector<int64_t>& rows, int64_t cols,
                         TpSplit split) const {
    return source_.can_stack_linear({modules, rows, cols, 1, WeightRole::Linear, split});
  }
  // Per-expert linear modules stacked into [experts, sum(rows), cols]; `modules_of(e)` lists
  // the modules of expert e (fused along rows, as in load_linear_concat).
  template <typename ModulesOf>
  LinearWeight load_linear_stacked(int64_t experts, const ModulesOf& modules_of, const std::vector<int64_t>& rows,
                                   int64_t cols, WeightRole role, TpSplit split) {
    return source_.load_linear(stacked_request(experts, modules_of, rows, cols, role, split));
  }
  // Whether load_linear_stacked can stack these modules (stored alike, as can_concat_linear).
  template <typename ModulesOf>
  bool can_load_stacked(int64_t experts, const ModulesOf& modules_of, const std::vector<int64_t>& rows, int64_t cols,
                        WeightRole role, TpSplit split) const {
    return source_.can_stack_linear(stacked_request(experts, modules_of, rows, cols, role, split));
  }

  bool contains(const std::string& name) const { return source_.contains(name); }

 private:
  template <typename ModulesOf>
  static LinearRequest stacked_request(int64_t experts, const ModulesOf& modules_of, const std::vector<int64_t>& rows,
                                       int64_t cols, WeightRole role, TpSplit split) {
    LinearRequest request{{}, rows, cols, experts, role, split};
    for (int64_t e = 0; e < experts; ++e)
      for (const std::string& module : modules_of(e)) request.modules.push_back(module);
    return request;
  }

  WeightSource& source_;
  WeightFusions fusions_;
};

}  // namespace rackserve
