// The dense default of WeightSource::load_linear.
#include "models/layers/weight_source.h"

#include "core/error.h"

namespace rackserve {

LinearWeight WeightSource::load_linear(const LinearRequest& request) {
  const size_t pieces = request.rows.size();
  RS_CHECK(pieces > 0 && request.matrices > 0 && request.modules.size() == pieces * request.matrices,
           "load_linear: {} modules for {} matrices of {} pieces", request.modules.size(), request.matrices, pieces);
  std::vector<std::string> names;
  std::vector<int64_t> rows;
  int64_t per_matrix = 0;
  for (int64_t r : request.rows) per_matrix += r;
  for (size_t i = 0; i < request.modules.size(); ++i) {
    names.push_back(request.modules[i] + ".weight");
    rows.push_back(request.rows[i % pieces]);
  }
  LinearWeight weight;
  if (request.modules.size() == 1) {  // a plain load: the same tensor (and dummy values) as load()
    weight.dense = load(names.front(), {rows.front(), request.cols}, request.role);
    return weight;
  }
  weight.dense = load_row_concat(names, rows, request.cols, request.role);
  if (request.matrices > 1) weight.dense = weight.dense.reshaped({request.matrices, per_matrix, request.cols});
  return weight;
}

}  // namespace rackserve
