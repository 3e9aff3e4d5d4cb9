// WeightLoader: what model code uses to get its weights by checkpoint name and expected
// shape, whatever the WeightSource behind it (a checkpoint or dummy weights). Linear layers
// are asked for by module name, so the source can hand back FP8 ones (LinearWeight).
#pragma once

#include <string>
#include <vector>

#include "models/layers/weight_source.h"

namespace rackserve {

class WeightLoader {
 public:
  explicit WeightLoader(WeightSource& source) : source_(source) {}

  // One tensor; `shape` is the expected shape.
  Tensor load(const std::string& name, const Shape& shape, WeightRole role) { return source_.load(name, shape, role); }
  // A linear layer [out, in] named by its module ("model.layers.0.self_attn.o_proj"), dense
  // or FP8 as the checkpoint stores it.
  LinearWeight load_linear(const std::string& module, int64_t out, int64_t in) {
    return source_.load_linear({{module}, {out}, in, 1, WeightRole::Linear});
  }
  // Several linear modules [rows_i, cols] fused along rows (gate_proj and up_proj).
  LinearWeight load_linear_concat(const std::vector<std::string>& modules, const std::vector<int64_t>& rows,
                                  int64_t cols) {
    return source_.load_linear({modules, rows, cols, 1, WeightRole::Linear});
  }
  // Per-expert linear modules stacked into [experts, sum(rows), cols]; `modules_of(e)` lists
  // the modules of expert e (fused along rows, as in load_linear_concat).
  template <typename ModulesOf>
  LinearWeight load_linear_stacked(int64_t experts, const ModulesOf& modules_of, const std::vector<int64_t>& rows,
                                   int64_t cols, WeightRole role) {
    LinearRequest request{{}, rows, cols, experts, role};
    for (int64_t e = 0; e < experts; ++e)
      for (const std::string& module : modules_of(e)) request.modules.push_back(module);
    return source_.load_linear(request);
  }

  bool contains(const std::string& name) const { return source_.contains(name); }

 private:
  WeightSource& source_;
};

}  // namespace rackserve
