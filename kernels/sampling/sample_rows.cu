// Token sampling, one 1024-thread CTA per row (SamplingRow's contract in src/backend/ops.h):
// penalties and banned tokens, then the greedy argmax or temperature -> min_p -> top_k ->
// top_p -> a counter-based draw, plus log-probabilities of the raw logits. Weights become
// 2^-40 fixed-point masses, so every sum is an exact integer sum; the thresholds come from
// radix selects over the weights' bit patterns (256-bin shared histograms, 4 digits).
#include <climits>

#include "common/device_utils.cuh"
#include "common/shared_memory_budget.cuh"
#include "rackserve/kernels/sampling_params.h"
#include "rackserve/random_hash.h"

namespace rackserve::kernels {

namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 256;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kTouchedWords = static_cast<int>(kSampleMaxVocab / 32);
constexpr float kGreedyTemperature = 1e-5f;  // SamplingRow::greedy()
static_assert(kWarps == 32, "the warp-level steps give one lane per warp");

// Radix select state, written by warp 0 between passes and read by every thread.
struct RadixState {
  uint32_t prefix;                         // the selected digits so far
  unsigned long long above, at;            // weight above the selected bin; weight in it
  unsigned long long total, target;        // all eligible weight (pass 0); the weight to reach
};

// The draw's selection, written by warp 0 after the per-warp sums.
struct DrawState {
  int warp;                                // the warp range holding the token; -1: nothing kept
  unsigned long long mass_before;          // kept mass of the earlier warp ranges
  uint32_t ties_before;                    // cut-value ties in the earlier warp ranges
  double target;
  int first_hit, last_nonempty;            // threads of the selected range (atomicMin / atomicMax)
};

struct SampleShared {
  uint32_t touched[kTouchedWords];         // bit t: the workspace holds token t's penalised logit
  unsigned long long mass_histogram[kBins];
  uint32_t count_histogram[kBins];
  unsigned long long scan_u64[kWarps];
  uint32_t scan_u32[kWarps];
  float reduce_value[kWarps], reduce_sum[kWarps];
  int32_t reduce_index[kWarps];
  RadixState radix;
  DrawState draw;
  unsigned long long warp_mass[kWarps];
  uint32_t warp_ties[kWarps];
  int32_t token;
  uint32_t top_count;
  int32_t top_id[kSampleMaxTop];
  uint32_t top_key[kSampleMaxTop];
};
static_assert(sizeof(SampleShared) <= 48 * 1024, "static shared memory is limited to 48 KB");
static_assert(sizeof(SampleShared) <= kSharedMemoryBudgetBytes, "SM120 shared-memory budget");

// ---- small block-wide helpers (every thread of the CTA must call them) ------------------

__device__ __forceinline__ unsigned long long mass_of_bits(uint32_t weight_bits) {
  return __float2ull_rz(__uint_as_float(weight_bits) * 1099511627776.0f);  // w * 2^40, exact scaling
}

// Order-preserving key of a float (-0 and +0 equal): larger value, larger key.
__device__ __forceinline__ uint32_t order_key(float x) {
  uint32_t bits = __float_as_uint(x);
  if ((bits & 0x7fffffffu) == 0) bits = 0;
  return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

template <typename T>
__device__ __forceinline__ T warp_inclusive_scan(T value) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    const T other = __shfl_up_sync(kFullMask, value, offset);
    if (lane >= offset) value += other;
  }
  return value;
}

__device__ __forceinline__ unsigned long long warp_sum_u64(unsigned long long value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

// Exclusive prefix sum over the threads in threadIdx order; `total` gets the block sum.
template <typename T>
__device__ T block_exclusive_scan(T value, T* scratch, T& total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const T inclusive = warp_inclusive_scan(value);
  __syncthreads();  // the previous user of scratch is done
  if (lane == 31) scratch[warp] = inclusive;
  __syncthreads();
  const T warp_total = scratch[lane];
  const T warp_inclusive = warp_inclusive_scan(warp_total);
  total = __shfl_sync(kFullMask, warp_inclusive, kWarps - 1);
  const T warp_before = __shfl_sync(kFullMask, warp_inclusive - warp_total, warp);
  return warp_before + inclusive - value;
}

__device__ __forceinline__ uint32_t block_sum_u32(uint32_t value, uint32_t* scratch) {
  uint32_t total;
  block_exclusive_scan(value, scratch, total);
  return total;
}

// (value desc, index asc); index < 0 is "nothing".
__device__ __forceinline__ bool ranks_before(float value, int32_t index, float best_value, int32_t best_index) {
  return index >= 0 && (best_index < 0 || value > best_value || (value == best_value && index < best_index));
}

// The block's best (value, index); every thread gets it.
__device__ void block_argmax(float& value, int32_t& index, SampleShared& shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other_value = __shfl_xor_sync(kFullMask, value, offset);
    const int32_t other_index = __shfl_xor_sync(kFullMask, index, offset);
    if (ranks_before(other_value, other_index, value, index)) {
      value = other_value;
      index = other_index;
    }
  }
  __syncthreads();
  if (lane == 0) {
    shared.reduce_value[warp] = value;
    shared.reduce_index[warp] = index;
  }
  __syncthreads();
  value = shared.reduce_value[lane];
  index = shared.reduce_index[lane];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other_value = __shfl_xor_sync(kFullMask, value, offset);
    const int32_t other_index = __shfl_xor_sync(kFullMask, index, offset);
    if (ranks_before(other_value, other_index, value, index)) {
      value = other_value;
      index = other_index;
    }
  }
}

// Running (max, sum of exp(x - max)) of a softmax; -inf entries add nothing.
__device__ __forceinline__ void softmax_combine(float& max, float& sum, float other_max, float other_sum) {
  const float new_max = fmaxf(max, other_max);
  if (new_max == -INFINITY) return;  // both empty
  sum = (max == -INFINITY ? 0.0f : sum * expf(max - new_max)) +
        (other_max == -INFINITY ? 0.0f : other_sum * expf(other_max - new_max));
  max = new_max;
}

// Block-wide softmax statistics; every thread gets identical values (the combine is
// commutative bit for bit, so the xor butterfly agrees on every lane).
__device__ void block_softmax_stats(float& max, float& sum, SampleShared& shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    softmax_combine(max, sum, __shfl_xor_sync(kFullMask, max, offset), __shfl_xor_sync(kFullMask, sum, offset));
  __syncthreads();
  if (lane == 0) {
    shared.reduce_value[warp] = max;
    shared.reduce_sum[warp] = sum;
  }
  __syncthreads();
  max = shared.reduce_value[lane];
  sum = shared.reduce_sum[lane];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    softmax_combine(max, sum, __shfl_xor_sync(kFullMask, max, offset), __shfl_xor_sync(kFullMask, sum, offset));
}

// ---- radix select ---------------------------------------------------------------------

struct RadixResult {
  uint32_t key;                   // v: the largest key with weight(key >= v) >= target
  unsigned long long above, at;   // weight of the eligible keys > v and == v
  unsigned long long total, target;
};

// Over the eligible elements of [0, n) (`element(j, key, weight)` returns false for the
// others), finds the largest key v with weight(key >= v) >= target, one 8-bit digit per
// pass from the top. With fraction > 0 the target is max(1, ceil(fraction * total)),
// the total read off the first pass. Weight is uint32_t (counts) or unsigned long long
// (masses); integer atomics only, so the result does not depend on thread timing.
template <typename Weight, typename Element>
__device__ RadixResult radix_select_largest(int64_t n, const Element& element, unsigned long long target,
                                            double fraction, Weight* histogram, RadixState& state) {
  const int lane = threadIdx.x % 32;
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 24 - 8 * pass;
    for (int bin = threadIdx.x; bin < kBins; bin += kThreads) histogram[bin] = 0;
    __syncthreads();  // cleared; the previous pass's state is written
    const uint32_t prefix = pass == 0 ? 0u : state.prefix;
    const uint32_t high_mask = pass == 0 ? 0u : ~0u << (shift + 8);
    for (int64_t j = threadIdx.x; j < n; j += kThreads) {
      uint32_t key;
      Weight weight;
      if (element(j, key, weight) && (key & high_mask) == prefix) atomicAdd(&histogram[(key >> shift) & 0xffu], weight);
    }
    __syncthreads();
    if (threadIdx.x < 32) {
      // Lane l holds bins 255 - 8l down to 248 - 8l: lanes in descending key order.
      unsigned long long bins[8], lane_weight = 0;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        bins[i] = histogram[kBins - 1 - 8 * lane - i];
        lane_weight += bins[i];
      }
      const unsigned long long inclusive = warp_inclusive_scan(lane_weight);
      unsigned long long above = 0;
      if (pass == 0) {
        const unsigned long long total = __shfl_sync(kFullMask, inclusive, 31);
        if (fraction > 0.0) {
          const double wanted = ceil(fraction * static_cast<double>(total));
          target = wanted < 1.0 ? 1ull : static_cast<unsigned long long>(wanted);
          if (target > total) target = total;  // fraction <= 1; only rounding of a huge total
        }
        if (lane == 0) {
          state.total = total;
          state.target = target;
        }
      } else {
        above = state.above;
        target = state.target;
      }
      const unsigned reaching = __ballot_sync(kFullMask, above + inclusive >= target);
      const int chosen_lane = reaching ? __ffs(reaching) - 1 : 31;  // none: only if target > total
      if (lane == chosen_lane) {
        unsigned long long before = above + inclusive - lane_weight, at = 0;
        int chosen = -1;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          if (chosen < 0 && (i == 7 || before + bins[i] >= target)) {
            chosen = i;
            at = bins[i];
          } else if (chosen < 0) {
            before += bins[i];
          }
        }
        const uint32_t digit = static_cast<uint32_t>(kBins - 1 - 8 * lane - chosen);
        state.prefix = (pass == 0 ? 0u : state.prefix) | (digit << shift);
        state.above = before;
        state.at = at;
      }
    }
    __syncthreads();
  }
  return {state.prefix, state.above, state.at, state.total, state.target};
}

// ---- the filtered draw -----------------------------------------------------------------

// Which weights survive the filters: bits > strict_above, or bits == tie_bits for the first
// tie_limit of those in ascending id order (top_p's cut value). Bits are of w >= 0.
struct KeptSet {
  uint32_t strict_above;
  uint32_t tie_bits;
  unsigned long long tie_limit;  // 0: no ties handling
  unsigned long long tie_mass;   // each tie's mass
};

// Counts the kept mass and the ties over work[begin, end) with the given stride.
__device__ __forceinline__ void kept_mass(const float* work, int64_t begin, int64_t end, int64_t stride,
                                          const KeptSet& kept, unsigned long long& strict_mass, uint32_t& ties) {
  for (int64_t j = begin; j < end; j += stride) {
    const uint32_t bits = __float_as_uint(work[j]);
    if (bits > kept.strict_above)
      strict_mass += mass_of_bits(bits);
    else if (kept.tie_limit > 0 && bits == kept.tie_bits)
      ++ties;
  }
}

__device__ __forceinline__ unsigned long long kept_ties(unsigned long long tie_limit, unsigned long long ties_before,
                                                        uint32_t ties) {
  if (tie_limit <= ties_before) return 0;
  const unsigned long long left = tie_limit - ties_before;
  return left < ties ? left : ties;
}

// The token whose inclusive cumulative kept mass (ascending id) first exceeds
// target = u * kept mass; the last kept token when rounding leaves none. Two levels: each
// warp sums a contiguous range of ceil(vocab / 32) (coalesced), warp 0 picks the range,
// then each thread sums <= 8 contiguous elements of it and one thread walks its piece.
// Returns -1 when nothing is kept.
__device__ int32_t draw_token(const float* work, int64_t vocab, const KeptSet& kept, double uniform,
                              SampleShared& shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t range = (vocab + kWarps - 1) / kWarps;
  {
    const int64_t begin = warp * range, end = begin + range < vocab ? begin + range : vocab;
    unsigned long long strict = 0;
    uint32_t ties = 0;
    kept_mass(work, begin + lane, end, 32, kept, strict, ties);
    strict = warp_sum_u64(strict);
    ties = __reduce_add_sync(kFullMask, ties);
    if (lane == 0) {
      shared.warp_mass[warp] = strict;
      shared.warp_ties[warp] = ties;
    }
  }
  __syncthreads();
  if (threadIdx.x < 32) {
    const uint32_t ties = shared.warp_ties[lane];
    const uint32_t ties_before = warp_inclusive_scan(ties) - ties;
    const unsigned long long mass = shared.warp_mass[lane] + kept_ties(kept.tie_limit, ties_before, ties) * kept.tie_mass;
    const unsigned long long inclusive = warp_inclusive_scan(mass);
    const unsigned long long total = __shfl_sync(kFullMask, inclusive, 31);
    const double target = uniform * static_cast<double>(total);
    const unsigned hits = __ballot_sync(kFullMask, mass > 0 && static_cast<double>(inclusive) > target);
    const unsigned nonempty = __ballot_sync(kFullMask, mass > 0);
    const int selected = hits ? __ffs(hits) - 1 : (nonempty ? 31 - __clz(nonempty) : -1);
    if (lane == (selected < 0 ? 0 : selected)) {
      shared.draw.warp = selected;
      shared.draw.mass_before = inclusive - mass;
      shared.draw.ties_before = ties_before;
      shared.draw.target = target;
      shared.draw.first_hit = INT_MAX;
      shared.draw.last_nonempty = -1;
      shared.token = -1;
    }
  }
  __syncthreads();
  const int selected = shared.draw.warp;
  if (selected < 0) return -1;
  const double target = shared.draw.target;
  const int64_t range_begin = selected * range;
  const int64_t range_end = range_begin + range < vocab ? range_begin + range : vocab;
  const int64_t piece = (range_end - range_begin + kThreads - 1) / kThreads;
  const int64_t begin = range_begin + threadIdx.x * piece;
  const int64_t end = begin + piece < range_end ? begin + piece : range_end;
  unsigned long long strict = 0;
  uint32_t ties = 0;
  kept_mass(work, begin, end, 1, kept, strict, ties);
  uint32_t tie_total;
  const unsigned long long ties_before =
      shared.draw.ties_before + block_exclusive_scan(ties, shared.scan_u32, tie_total);
  const unsigned long long mass = strict + kept_ties(kept.tie_limit, ties_before, ties) * kept.tie_mass;
  unsigned long long mass_total;
  const unsigned long long mass_before =
      shared.draw.mass_before + block_exclusive_scan(mass, shared.scan_u64, mass_total);
  if (mass > 0) {
    if (static_cast<double>(mass_before + mass) > target) atomicMin(&shared.draw.first_hit, static_cast<int>(threadIdx.x));
    atomicMax(&shared.draw.last_nonempty, static_cast<int>(threadIdx.x));
  }
  __syncthreads();
  const int walker = shared.draw.first_hit != INT_MAX ? shared.draw.first_hit : shared.draw.last_nonempty;
  if (static_cast<int>(threadIdx.x) == walker) {
    unsigned long long cumulative = mass_before, tie_rank = ties_before;
    int32_t token = -1, last = -1;
    for (int64_t j = begin; j < end; ++j) {
      const uint32_t bits = __float_as_uint(work[j]);
      unsigned long long mass_j = 0;
      if (bits > kept.strict_above)
        mass_j = mass_of_bits(bits);
      else if (kept.tie_limit > 0 && bits == kept.tie_bits && tie_rank++ < kept.tie_limit)
        mass_j = kept.tie_mass;
      if (mass_j == 0) continue;
      cumulative += mass_j;
      last = static_cast<int32_t>(j);
      if (static_cast<double>(cumulative) > target) {
        token = last;
        break;
      }
    }
    shared.token = token >= 0 ? token : last;
  }
  __syncthreads();
  return shared.token;
}

// Temperature, min_p, top_k and top_p over the penalised row, then the draw. On entry
// work[t] holds the penalised logit of every touched token; on return work[] holds the
// candidate weights (0 for the others).
__device__ int32_t sample_filtered(const float* raw, float* work, int64_t vocab, const uint32_t* touched,
                                   const SampleRowConfig& config, float max_logit, SampleShared& shared) {
  // Weights; a candidate has w > 0, w >= min_p and a nonzero mass (w >= 2^-40).
  uint32_t candidates = 0;
  for (int64_t j = threadIdx.x; j < vocab; j += kThreads) {
    const bool is_touched = touched && ((touched[j >> 5] >> (j & 31)) & 1u);
    const float x = is_touched ? work[j] : raw[j];
    const float w = expf(__fdiv_rn(__fsub_rn(x, max_logit), config.temperature));
    const bool candidate = w > 0.0f && w >= config.min_p && mass_of_bits(__float_as_uint(w)) > 0;
    work[j] = candidate ? w : 0.0f;
    candidates += candidate;
  }
  candidates = block_sum_u32(candidates, shared.scan_u32);  // its barriers publish work[]

  KeptSet kept{0u, 0u, 0ull, 0ull};  // every candidate (bits > 0)
  uint32_t lowest_bits = 1;           // the smallest kept weight's bits so far
  if (config.top_k > 0 && static_cast<uint32_t>(config.top_k) < candidates) {
    // The k-th largest weight; ties at the cut stay. Keys are the bits shifted left by one
    // (w >= 0), so the first digit is the exponent.
    auto element = [&](int64_t j, uint32_t& key, uint32_t& weight) {
      const uint32_t bits = __float_as_uint(work[j]);
      key = bits << 1;
      weight = 1;
      return bits != 0;
    };
    const RadixResult cut = radix_select_largest<uint32_t>(vocab, element, static_cast<unsigned long long>(config.top_k),
                                                           0.0, shared.count_histogram, shared.radix);
    lowest_bits = cut.key >> 1;
    kept.strict_above = lowest_bits - 1;
  }
  if (config.top_p < 1.0f) {
    // v0: the largest weight whose kept mass at or above it reaches P = ceil(top_p * kept mass);
    // tokens above v0 stay, and of the v0 ties (ascending id) those with mass before < P.
    auto element = [&](int64_t j, uint32_t& key, unsigned long long& weight) {
      const uint32_t bits = __float_as_uint(work[j]);
      key = bits << 1;
      weight = mass_of_bits(bits);
      return bits >= lowest_bits;
    };
    const RadixResult cut = radix_select_largest<unsigned long long>(vocab, element, 0ull, static_cast<double>(config.top_p),
                                                                     shared.mass_histogram, shared.radix);
    const uint32_t cut_bits = cut.key >> 1;
    const unsigned long long tie_mass = mass_of_bits(cut_bits);
    if (tie_mass > 0 && cut.target > cut.above) {
      const unsigned long long ties = cut.at / tie_mass;
      const unsigned long long wanted = (cut.target - cut.above + tie_mass - 1) / tie_mass;  // >= 1
      kept = KeptSet{cut_bits, cut_bits, wanted < ties ? wanted : ties, tie_mass};
    }
  }
  return draw_token(work, vocab, kept, sampling_uniform(config.seed, config.counter), shared);
}

// The top k raw logits in (value desc, id asc) order with their log-probabilities.
__device__ void top_logprobs(const float* raw, int64_t vocab, int k, float raw_max, float log_sum, int32_t* top_ids,
                             float* top_values, SampleShared& shared) {
  auto element = [&](int64_t j, uint32_t& key, uint32_t& weight) {
    key = order_key(raw[j]);
    weight = 1;
    return true;
  };
  const RadixResult cut =
      radix_select_largest<uint32_t>(vocab, element, static_cast<unsigned long long>(k), 0.0, shared.count_histogram, shared.radix);
  const uint32_t above = static_cast<uint32_t>(cut.above), need = static_cast<uint32_t>(k) - above;
  const bool all_ties = cut.at <= need;  // the usual case: take every tie, no order needed
  for (int64_t j = threadIdx.x; j < vocab; j += kThreads) {
    const uint32_t key = order_key(raw[j]);
    if (key > cut.key || (all_ties && key == cut.key)) {
      const uint32_t slot = atomicAdd(&shared.top_count, 1u);
      if (slot < kSampleMaxTop) shared.top_id[slot] = static_cast<int32_t>(j);
    }
  }
  if (!all_ties) {
    // The first `need` ties in ascending id order: chunks of the block, ranked by ballots.
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    uint32_t taken = 0;
    for (int64_t chunk = 0; chunk < vocab && taken < need; chunk += kThreads) {
      const int64_t j = chunk + threadIdx.x;
      const bool tie = j < vocab && order_key(raw[j]) == cut.key;
      const unsigned ballot = __ballot_sync(kFullMask, tie);
      if (lane == 0) shared.scan_u32[warp] = __popc(ballot);
      __syncthreads();
      const uint32_t warp_count = shared.scan_u32[lane];
      const uint32_t warp_inclusive = warp_inclusive_scan(warp_count);
      const uint32_t rank = taken + __shfl_sync(kFullMask, warp_inclusive - warp_count, warp) +
                            __popc(ballot & ((1u << lane) - 1u));
      if (tie && rank < need) shared.top_id[above + rank] = static_cast<int32_t>(j);
      taken += __shfl_sync(kFullMask, warp_inclusive, 31);
      __syncthreads();  // scan_u32 is rewritten by the next chunk
    }
  }
  __syncthreads();
  const int thread = static_cast<int>(threadIdx.x);
  if (thread < k) shared.top_key[thread] = order_key(raw[shared.top_id[thread]]);
  __syncthreads();
  if (thread < k) {
    const int32_t id = shared.top_id[thread];
    const uint32_t key = shared.top_key[thread];
    int rank = 0;
    for (int i = 0; i < k; ++i) {
      const uint32_t other_key = shared.top_key[i];
      rank += other_key > key || (other_key == key && shared.top_id[i] < id);
    }
    top_ids[rank] = id;
    top_values[rank] = (raw[id] - raw_max) - log_sum;
  }
}

__global__ void __launch_bounds__(kThreads, 1) sample_rows_kernel(SampleRowsParams p) {
  wait_for_prior_kernel();
  __shared__ SampleShared shared;
  const int64_t row = blockIdx.x, vocab = p.vocab;
  const SampleRowConfig config = p.configs[row];
  const float* raw = p.logits + row * vocab;
  float* work = p.workspace + row * vocab;
  if (threadIdx.x == 0) shared.top_count = 0;
  if (threadIdx.x < kSampleMaxTop) shared.top_id[threadIdx.x] = 0;  // any valid id: never read out of bounds

  // Penalised logits of the listed tokens into the workspace; the bitmap marks them.
  const int32_t penalty_begin = p.penalty_offsets[row], penalty_end = p.penalty_offsets[row + 1];
  const int32_t banned_begin = p.banned_offsets[row], banned_end = p.banned_offsets[row + 1];
  const bool any_touched = penalty_end > penalty_begin || banned_end > banned_begin;
  if (any_touched) {
    for (int64_t word = threadIdx.x; word < (vocab + 31) / 32; word += kThreads) shared.touched[word] = 0;
    __syncthreads();
    for (int32_t e = penalty_begin + static_cast<int32_t>(threadIdx.x); e < penalty_end; e += kThreads) {
      const int32_t token = p.penalty_tokens[e];
      if (token < 0 || token >= vocab) continue;
      // Rounded operations, no FMA contraction: the CPU reference computes the same roundings.
      float x = raw[token];
      if (p.penalty_repeated[e])
        x = x > 0.0f ? __fdiv_rn(x, config.repetition_penalty) : __fmul_rn(x, config.repetition_penalty);
      const int32_t count = p.penalty_output_counts[e];
      if (count > 0)
        x = __fsub_rn(x, __fadd_rn(__fmul_rn(config.frequency_penalty, static_cast<float>(count)), config.presence_penalty));
      work[token] = x;
      atomicOr(&shared.touched[token >> 5], 1u << (token & 31));
    }
    __syncthreads();  // a token both penalised and banned ends banned
    for (int32_t e = banned_begin + static_cast<int32_t>(threadIdx.x); e < banned_end; e += kThreads) {
      const int32_t token = p.banned_tokens[e];
      if (token < 0 || token >= vocab) continue;
      work[token] = -INFINITY;
      atomicOr(&shared.touched[token >> 5], 1u << (token & 31));
    }
    __syncthreads();
  }
  const uint32_t* touched = any_touched ? shared.touched : nullptr;

  // One pass: the penalised argmax (lowest id on ties) and the raw softmax statistics.
  const bool want_logprobs = config.logprobs >= 0;
  float best_value = -INFINITY, raw_max = -INFINITY, raw_sum = 0.0f;
  int32_t best_index = -1;
  for (int64_t j = threadIdx.x; j < vocab; j += kThreads) {
    const float logit = raw[j];
    const bool is_touched = touched && ((touched[j >> 5] >> (j & 31)) & 1u);
    const float x = is_touched ? work[j] : logit;
    if (x > best_value) {
      best_value = x;
      best_index = static_cast<int32_t>(j);
    }
    if (want_logprobs && logit != -INFINITY) {
      if (logit > raw_max) {
        raw_sum = (raw_max == -INFINITY ? 0.0f : raw_sum * expf(raw_max - logit)) + 1.0f;
        raw_max = logit;
      } else {
        raw_sum += expf(logit - raw_max);
      }
    }
  }
  block_argmax(best_value, best_index, shared);
  if (want_logprobs) block_softmax_stats(raw_max, raw_sum, shared);

  int32_t token = best_index;  // -1: every token is -inf (or NaN)
  if (token >= 0 && !(config.temperature < kGreedyTemperature))
    token = sample_filtered(raw, work, vocab, touched, config, best_value, shared);

  const int64_t max_top = p.max_top;
  const float log_sum = logf(raw_sum);
  if (threadIdx.x == 0) {
    p.tokens[row] = token;
    p.logprobs[row] = want_logprobs && token >= 0 ? (raw[token] - raw_max) - log_sum : NAN;
  }
  int k = config.logprobs > 0 ? config.logprobs : 0;
  if (k > max_top) k = static_cast<int>(max_top);
  if (k > vocab) k = static_cast<int>(vocab);
  for (int64_t i = k + threadIdx.x; i < max_top; i += kThreads) {
    p.top_ids[row * max_top + i] = -1;
    p.top_logprobs[row * max_top + i] = NAN;
  }
  if (k > 0) top_logprobs(raw, vocab, k, raw_max, log_sum, p.top_ids + row * max_top, p.top_logprobs + row * max_top, shared);
}

}  // namespace

int launch_sample_rows(const SampleRowsParams& p, Stream stream) {
  if (p.rows < 0 || p.rows > INT_MAX || p.vocab < 1 || p.vocab > kSampleMaxVocab || p.max_top < 0 ||
      p.max_top > kSampleMaxTop)
    return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  if (!p.logits || !p.configs || !p.penalty_offsets || !p.banned_offsets || !p.workspace || !p.tokens || !p.logprobs ||
      (p.max_top > 0 && (!p.top_ids || !p.top_logprobs)))
    return cudaErrorInvalidValue;
  sample_rows_kernel<<<static_cast<unsigned>(p.rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return launch_status();
}

}  // namespace rackserve::kernels
