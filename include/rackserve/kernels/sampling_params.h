// Token sampling (kernels/sampling/sample_rows.cu): the device side of Backend::sample.
// The semantics are SamplingRow's contract in src/backend/ops.h; the host packs each
// row's settings into a SampleRowConfig and its penalty / banned lists into CSR arrays.
#pragma once

#include "rackserve/kernels/common.h"

namespace rackserve::kernels {

constexpr int64_t kSampleMaxVocab = 262144;  // the kernel's touched-token bitmap is sized for it
constexpr int64_t kSampleMaxTop = 64;        // most top log-probabilities one row may ask for

// One row's settings, already validated on the host (ranges as in SamplingRow).
struct SampleRowConfig {
  uint64_t seed, counter;  // the draw is sampling_uniform(seed, counter)
  float temperature;       // < 1e-5: greedy
  float top_p;             // (0, 1]; 1: off
  float min_p;             // [0, 1]
  float repetition_penalty, frequency_penalty, presence_penalty;
  int32_t top_k;           // <= 0: off
  int32_t logprobs;        // -1: none; 0: the sampled token's; k in [1, max_top]: also the top k
};
static_assert(sizeof(SampleRowConfig) == 48, "SampleRowConfig is packed by the host byte for byte");

// Row r's penalty entries are [penalty_offsets[r], penalty_offsets[r + 1]), its banned
// tokens [banned_offsets[r], banned_offsets[r + 1]); a token appears at most once in each
// list of a row (it may be in both: banned wins). Every token id is in [0, vocab).
struct SampleRowsParams {
  const float* logits;                   // [rows, vocab] raw logits; never written
  const SampleRowConfig* configs;        // [rows]
  const int32_t* penalty_offsets;        // [rows + 1], non-decreasing, starts at 0
  const int32_t* penalty_tokens;         // [penalty_offsets[rows]]
  const int32_t* penalty_output_counts;  // [penalty_offsets[rows]] >= 0
  const uint8_t* penalty_repeated;       // [penalty_offsets[rows]] 0 or 1
  const int32_t* banned_offsets;         // [rows + 1], non-decreasing, starts at 0
  const int32_t* banned_tokens;          // [banned_offsets[rows]]
  float* workspace;                      // [rows, vocab]: penalised logits, then the filtered weights
  int32_t* tokens;                       // [rows]: the sampled token; -1 when every token is masked
  float* logprobs;                       // [rows]: log-probability of tokens[r] under the raw logits
                                         //   (NaN for rows with logprobs < 0 or token -1)
  int32_t* top_ids;                      // [rows, max_top]: (value desc, id asc); -1 past the row's count
  float* top_logprobs;                   // [rows, max_top]; both may be nullptr when max_top == 0
  int64_t rows, vocab, max_top;          // vocab in [1, kSampleMaxVocab], max_top in [0, kSampleMaxTop]
};

// One CTA per row; deterministic: the same inputs give the same outputs bit for bit (every
// probability mass is a 2^-40 fixed-point integer, summed exactly).
int launch_sample_rows(const SampleRowsParams& params, Stream stream);

}  // namespace rackserve::kernels
