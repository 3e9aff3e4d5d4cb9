// CudaBackend::sample: validates the rows, packs their settings and token lists into one
// upload, runs kernels/sampling/sample_rows.cu (one CTA per row) and copies the results
// back with a single synchronisation.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"
#include "rackserve/kernels/sampling_params.h"

namespace rackserve {

namespace {

void validate_row(const SamplingRow& row, size_t index) {
  RS_CHECK(std::isfinite(row.temperature) && row.temperature >= 0.0f,
           "sample: row {}: temperature {} must be finite and >= 0", index, row.temperature);
  RS_CHECK(row.top_p > 0.0f && row.top_p <= 1.0f, "sample: row {}: top_p {} must be in (0, 1]", index, row.top_p);
  RS_CHECK(row.min_p >= 0.0f && row.min_p <= 1.0f, "sample: row {}: min_p {} must be in [0, 1]", index, row.min_p);
  RS_CHECK(std::isfinite(row.repetition_penalty) && row.repetition_penalty > 0.0f,
           "sample: row {}: repetition_penalty {} must be finite and > 0", index, row.repetition_penalty);
  RS_CHECK(std::isfinite(row.frequency_penalty) && std::isfinite(row.presence_penalty),
           "sample: row {}: frequency_penalty {} and presence_penalty {} must be finite", index,
           row.frequency_penalty, row.presence_penalty);
  RS_CHECK(row.logprobs >= -1 && row.logprobs <= kernels::kSampleMaxTop,
           "sample: row {}: logprobs {} must be in [-1, {}]", index, row.logprobs, kernels::kSampleMaxTop);
}

// Where each array lives in the packed upload; every section 8-byte aligned.
struct UploadLayout {
  size_t configs = 0, penalty_offsets = 0, banned_offsets = 0, penalty_tokens = 0, penalty_counts = 0,
         banned_tokens = 0, penalty_repeated = 0, bytes = 0;

  UploadLayout(size_t rows, size_t penalties, size_t banned) {
    auto place = [this](size_t section_bytes) {
      const size_t at = bytes;
      bytes += (section_bytes + 7) / 8 * 8;
      return at;
    };
    configs = place(rows * sizeof(kernels::SampleRowConfig));
    penalty_offsets = place((rows + 1) * sizeof(int32_t));
    banned_offsets = place((rows + 1) * sizeof(int32_t));
    penalty_tokens = place(penalties * sizeof(int32_t));
    penalty_counts = place(penalties * sizeof(int32_t));
    banned_tokens = place(banned * sizeof(int32_t));
    penalty_repeated = place(penalties);
  }
};

}  // namespace

std::vector<SampledRow> CudaBackend::sample(const Tensor& logits, std::span<const SamplingRow> rows) {
  RS_CHECK(logits.dtype == DType::F32 && logits.rank() == 2, "sample: logits must be a 2-D F32 tensor, got {} {}",
           dtype_name(logits.dtype), shape_string(logits.shape));
  RS_CHECK(logits.device == device(), "sample: the logits are not on this backend's CUDA device {}", options_.device);
  const int64_t count = logits.dim(0), vocab = logits.dim(1);
  RS_CHECK(static_cast<int64_t>(rows.size()) == count, "sample: {} rows of parameters for {} rows of logits",
           rows.size(), count);
  RS_CHECK(vocab >= 1 && vocab <= kernels::kSampleMaxVocab, "sample: vocabulary {} is outside [1, {}]", vocab,
           kernels::kSampleMaxVocab);
  RS_CHECK(count <= std::numeric_limits<int32_t>::max(), "sample: {} rows is too many for one launch", count);
  if (count == 0) return {};

  // Validate every row; each list must hold distinct in-range tokens (the kernel writes
  // each listed token's logit once, so a repeated entry would race).
  size_t penalties = 0, banned = 0;
  int64_t max_top = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    validate_row(rows[r], r);
    penalties += rows[r].penalty_tokens.size();
    banned += rows[r].banned.size();
    max_top = std::max<int64_t>(max_top, std::min<int64_t>(rows[r].logprobs, vocab));
  }
  if (penalties + banned > 0) {
    std::vector<int64_t> listed_by(static_cast<size_t>(vocab), -1);  // 2 * row, + 1 for the banned list
    for (size_t r = 0; r < rows.size(); ++r) {
      const int64_t penalty_stamp = static_cast<int64_t>(2 * r), banned_stamp = penalty_stamp + 1;
      for (const PenaltyToken& entry : rows[r].penalty_tokens) {
        RS_CHECK(entry.token >= 0 && entry.token < vocab, "sample: row {}: penalty token {} is outside [0, {})", r,
                 entry.token, vocab);
        RS_CHECK(entry.output_count >= 0, "sample: row {}: penalty token {} has output count {}", r, entry.token,
                 entry.output_count);
        RS_CHECK(listed_by[entry.token] != penalty_stamp, "sample: row {}: penalty token {} is listed twice", r,
                 entry.token);
        listed_by[entry.token] = penalty_stamp;
      }
      for (int32_t token : rows[r].banned) {
        RS_CHECK(token >= 0 && token < vocab, "sample: row {}: banned token {} is outside [0, {})", r, token, vocab);
        RS_CHECK(listed_by[token] != banned_stamp, "sample: row {}: banned token {} is listed twice", r, token);
        listed_by[token] = banned_stamp;
      }
    }
  }
  RS_CHECK(penalties <= static_cast<size_t>(std::numeric_limits<int32_t>::max()) &&
               banned <= static_cast<size_t>(std::numeric_limits<int32_t>::max()),
           "sample: {} penalty and {} banned entries are too many for one launch", penalties, banned);

  // Pack the settings and the CSR lists into one host buffer.
  const UploadLayout layout(rows.size(), penalties, banned);
  std::vector<uint64_t> packed((layout.bytes + 7) / 8);
  std::byte* host = reinterpret_cast<std::byte*>(packed.data());
  auto* configs = reinterpret_cast<kernels::SampleRowConfig*>(host + layout.configs);
  auto* penalty_offsets = reinterpret_cast<int32_t*>(host + layout.penalty_offsets);
  auto* banned_offsets = reinterpret_cast<int32_t*>(host + layout.banned_offsets);
  auto* penalty_tokens = reinterpret_cast<int32_t*>(host + layout.penalty_tokens);
  auto* penalty_counts = reinterpret_cast<int32_t*>(host + layout.penalty_counts);
  auto* banned_tokens = reinterpret_cast<int32_t*>(host + layout.banned_tokens);
  auto* penalty_repeated = reinterpret_cast<uint8_t*>(host + layout.penalty_repeated);
  int32_t penalty_at = 0, banned_at = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const SamplingRow& row = rows[r];
    configs[r] = kernels::SampleRowConfig{row.seed,        row.counter,
                                          row.temperature, row.top_p,
                                          row.min_p,       row.repetition_penalty,
                                          row.frequency_penalty, row.presence_penalty,
                                          row.top_k,       row.logprobs};
    penalty_offsets[r] = penalty_at;
    banned_offsets[r] = banned_at;
    for (const PenaltyToken& entry : row.penalty_tokens) {
      penalty_tokens[penalty_at] = entry.token;
      penalty_counts[penalty_at] = entry.output_count;
      penalty_repeated[penalty_at] = entry.repeated ? 1 : 0;
      ++penalty_at;
    }
    for (int32_t token : row.banned) banned_tokens[banned_at++] = token;
  }
  penalty_offsets[rows.size()] = penalty_at;
  banned_offsets[rows.size()] = banned_at;

  cudaStream_t stream = static_cast<cudaStream_t>(stream_);
  Tensor inputs = allocate_step(DType::I32, {static_cast<int64_t>((layout.bytes + 3) / 4)});
  // The host buffer lives until the synchronisation below, so the copy need not wait here.
  check(cudaMemcpyAsync(inputs.data, host, layout.bytes, cudaMemcpyHostToDevice, stream), "sample upload");
  Tensor workspace = allocate_step(DType::F32, {count, vocab});
  // Outputs, one buffer: tokens [R], logprobs [R], top ids [R, max_top], top logprobs [R, max_top].
  const int64_t output_words = count * (2 + 2 * max_top);
  Tensor outputs = allocate_step(DType::I32, {output_words});

  const std::byte* device_inputs = static_cast<const std::byte*>(inputs.data);
  int32_t* device_outputs = outputs.as<int32_t>();
  kernels::SampleRowsParams params{};
  params.logits = logits.as<float>();
  params.configs = reinterpret_cast<const kernels::SampleRowConfig*>(device_inputs + layout.configs);
  params.penalty_offsets = reinterpret_cast<const int32_t*>(device_inputs + layout.penalty_offsets);
  params.penalty_tokens = reinterpret_cast<const int32_t*>(device_inputs + layout.penalty_tokens);
  params.penalty_output_counts = reinterpret_cast<const int32_t*>(device_inputs + layout.penalty_counts);
  params.penalty_repeated = reinterpret_cast<const uint8_t*>(device_inputs + layout.penalty_repeated);
  params.banned_offsets = reinterpret_cast<const int32_t*>(device_inputs + layout.banned_offsets);
  params.banned_tokens = reinterpret_cast<const int32_t*>(device_inputs + layout.banned_tokens);
  params.workspace = workspace.as<float>();
  params.tokens = device_outputs;
  params.logprobs = reinterpret_cast<float*>(device_outputs + count);
  params.top_ids = max_top > 0 ? device_outputs + 2 * count : nullptr;
  params.top_logprobs = max_top > 0 ? reinterpret_cast<float*>(device_outputs + 2 * count + count * max_top) : nullptr;
  params.rows = count;
  params.vocab = vocab;
  params.max_top = max_top;
  check(kernels::launch_sample_rows(params, stream_), "sample_rows");

  std::vector<int32_t> results(static_cast<size_t>(output_words));
  check(cudaMemcpyAsync(results.data(), device_outputs, results.size() * sizeof(int32_t), cudaMemcpyDeviceToHost,
                        stream),
        "sample download");
  check(cudaStreamSynchronize(stream), "sample");

  auto float_at = [&results](int64_t index) {
    float value;
    std::memcpy(&value, &results[static_cast<size_t>(index)], sizeof(value));
    return value;
  };
  std::vector<SampledRow> sampled(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    const int64_t row = static_cast<int64_t>(r);
    SampledRow& out = sampled[r];
    out.token = results[r];
    RS_CHECK(out.token >= 0, "sample: row {}: every token is masked (banned or -inf)", r);
    RS_CHECK(out.token < vocab, "sample: row {}: the kernel returned token {} outside [0, {})", r, out.token, vocab);
    if (rows[r].logprobs < 0) continue;
    out.logprob = float_at(count + row);
    const int64_t top = std::min<int64_t>(rows[r].logprobs, vocab);
    out.top_logprobs.reserve(static_cast<size_t>(top));
    for (int64_t i = 0; i < top; ++i)
      out.top_logprobs.push_back({results[static_cast<size_t>(2 * count + row * max_top + i)],
                                  float_at(2 * count + count * max_top + row * max_top + i)});
  }
  return sampled;
}

}  // namespace rackserve
