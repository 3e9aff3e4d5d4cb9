// The keys a query of absorbed MLA attends to, for the dense (causal) and the DeepSeek sparse
// attention cases alike: key index i of query t is cache position i (dense: i <= positions[t])
// or key_positions[t, i] (sparse: the indexer's choice; rows hold min(positions[t] + 1, top_k)
// ascending positions, then -1 to the row's end, as dsa_top_k writes them).
#pragma once

#include <cstdint>

namespace rackserve::kernels {

struct MlaQueryKeys {
  const int32_t* chosen;  // the query's row of key_positions; nullptr when dense
  int count;              // keys the query attends to

  // The sequence position of key index `i` (< count).
  __device__ __forceinline__ int position(int i) const { return chosen ? chosen[i] : i; }
};

// key_positions [tokens, top_k] int32 or nullptr (dense). A sparse row holds exactly
// min(positions[t] + 1, top_k) positions (dsa_top_k's contract), so the count needs no search and
// is never 0.
__device__ __forceinline__ MlaQueryKeys mla_query_keys(const int32_t* positions, const int32_t* key_positions,
                                                      int64_t top_k, int64_t t) {
  const int keys = positions[t] + 1;
  if (key_positions == nullptr) return {nullptr, keys};
  return {key_positions + t * top_k, keys < top_k ? keys : static_cast<int>(top_k)};
}

}  // namespace rackserve::kernels
