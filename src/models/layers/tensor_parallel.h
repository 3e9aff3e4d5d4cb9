// What layers need from tensor parallelism besides their weights' slices: the per-rank
// share of a divided extent (checked, with the flag in the message) and the all-reduce of
// a row-parallel layer's partial sums. A null communicator is a single rank.
#pragma once

#include <cstdint>

#include "core/error.h"
#include "models/layers/weight_source.h"
#include "parallel/communicator.h"

namespace rackserve {

// extent / shard.world; throws "--tp N: <what> E is not divisible by N" otherwise.
inline int64_t per_rank(const char* what, int64_t extent, const ShardSpec& shard) {
  RS_CHECK(shard.world >= 1 && extent % shard.world == 0, "--tp {}: {} {} is not divisible by {}", shard.world, what,
           extent, shard.world);
  return extent / shard.world;
}

// Sums a row-parallel output over the ranks, in place (nothing to do on one rank).
inline void all_reduce_partial_sums(Communicator* tp, const Tensor& partial) {
  if (tp != nullptr && tp->world_size() > 1) tp->all_reduce_sum(partial);
}

}  // namespace rackserve
