// The keys a query of absorbed MLA attends to, for the dense (causal) and the DeepSeek sparse
// attention cases alike: key index i of query t is cache position i (dense: i <= positions[t])
// or key_positions[t, i] (sparse: the indexer's choice; rows hold ascending positions, then
// -1 to the row's end, as dsa_top_k writes them).
#pragma once

#include <cstdint>

namespace rackserve::kernels {

struct MlaQueryKeys {
  const int32_t* chosen;  // the query's row of key_positions; nullptr when dense
  int count;              // keys the query attends to

  // The sequence position of key index `i` (< count).
  __device__ __forceinline__ int position(int i) const { return chosen ? chosen[i] : i; }
};

// key_positions [tokens, top_k] int32 or nullptr (dense).
__device__ __forceinline__ MlaQueryKeys mla_query_keys(const int32_t* positions, const int32_t* key_positions,
                                                      int64_t top_k, int64_t t) {
  if (key_positions == nullptr) return {nullptr, positions[t] + 1};
  const int32_t* row = key_positions + t * top_k;
  int low = 0, high = static_cast<int>(top_k);  // the first -1: the valid entries are a prefix
  while (low < high) {
    const int middle = (low + high) / 2;
    if (row[middle] >= 0) low = middle + 1; else high = middle;
  }
  return {row, low};
}

}  // namespace rackserve::kernels
