// WeightLoader: moves checkpoint tensors from a WeightStore onto a backend, checking each
// shape against what the model expects so a wrong checkpoint fails at load with the
// tensor's name, not with garbage logits.
#pragma once

#include <string>
#include <vector>

#include "backend/backend.h"
#include "weights/safetensors.h"

namespace rackserve {

class WeightLoader {
 public:
  WeightLoader(const WeightStore& store, Backend& backend) : store_(store), backend_(backend) {}

  // One tensor; `shape` is the expected shape.
  Tensor load(const std::string& name, const Shape& shape, WeightRole role);
  // Several [rows_i, cols] tensors concatenated along rows, e.g. gate and up into gate_up.
  Tensor load_row_concat(const std::vector<std::string>& names, const std::vector<int64_t>& rows, int64_t cols,
                         WeightRole role);
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

  bool contains(const std::string& name) const { return store_.contains(name); }

 private:
  const TensorRecord& checked(const std::string& name, const Shape& shape) const;

  const WeightStore& store_;
  Backend& backend_;
};

}  // namespace rackserve
