// WeightLoader: what model code uses to get its weights by checkpoint name and expected
// shape, whatever the WeightSource behind it (a checkpoint or dummy weights). Adds the
// per-expert stacking the MoE block needs on top of the source's two primitives.
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
  // Several [rows_i, cols] tensors concatenated along rows, e.g. gate and up into gate_up.
  Tensor load_row_concat(const std::vector<std::string>& names, const std::vector<int64_t>& rows, int64_t cols,
                         WeightRole role) {
    return source_.load_row_concat(names, rows, cols, role);
  }
  // Per-expert tensors stacked into [experts, sum(rows), cols]; `names_of(e)` lists the
  // tensors of expert e (concatenated along rows, as in load_row_concat).
  template <typename NamesOf>
  Tensor load_stacked(int64_t experts, const NamesOf& names_of, const std::vector<int64_t>& rows, int64_t cols,
                      WeightRole role) {
    std::vector<std::string> names;
    std::vector<int64_t> all_rows;
    for (int64_t e = 0; e < experts; ++e)
      for (size_t i = 0; i < rows.size(); ++i) {
        names.push_back(names_of(e)[i]);
        all_rows.push_back(rows[i]);
      }
    int64_t per_expert = 0;
    for (int64_t r : rows) per_expert += r;
    return load_row_concat(names, all_rows, cols, role).reshaped({experts, per_expert, cols});
  }

  bool contains(const std::string& name) const { return source_.contains(name); }

 private:
  WeightSource& source_;
};

}  // namespace rackserve
