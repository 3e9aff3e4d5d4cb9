// The FP8 model on CUDA with its activations quantized inside the ops that produce them (the
// default: rms_norm_fp8, add_rms_norm_fp8, silu_mul_fp8) against the same model on a backend
// whose producers are unfused (the plain op, then quantize_fp8): the logits of a prefill and of
// decode steps (replayed from step graphs) must be identical, bit for bit, since both quantize
// the same bf16 values with the same rounding. Runs the FP8 channel fixtures and a dummy
// block-layout model (the fixtures' 16-wide blocks are not the kernels' 128), random prompts,
// step allocations poisoned.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/cuda/cuda_backend.h"
#include "engine/sequence_runner.h"
#include "models/model.h"
#include "support/fixtures.h"
#include "support/fp8_block_model.h"
#include "support/test_random.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;

// The CUDA backend with every fused FP8 producer replaced by its unfused pair.
class UnfusedCudaBackend : public CudaBackend {
 public:
  using CudaBackend::CudaBackend;
  int64_t producers = 0;  // fused producers the model asked for

  NormedActivation rms_norm_fp8(const Tensor& x, const Tensor& weight, float eps,
                                const Fp8ActivationLayout& layout) override {
    ++producers;
    Tensor normed = rms_norm(x, weight, eps);
    return {normed, quantize_fp8(normed, layout)};
  }
  NormedActivation add_rms_norm_fp8(const Tensor& residual, const Tensor& x, const Tensor& weight, float eps,
                                    const Fp8ActivationLayout& layout) override {
    ++producers;
    Tensor normed = add_rms_norm(residual, x, weight, eps);
    return {normed, quantize_fp8(normed, layout)};
  }
  QuantizedActivation silu_mul_fp8(const Tensor& gate_up, const Fp8ActivationLayout& layout) override {
    ++producers;
    return quantize_fp8(silu_mul(gate_up), layout);
  }
};

constexpr const char* kDummyBlockModel = "dummy-fp8-block128";

std::vector<std::string> models() {
  std::vector<std::string> names{kDummyBlockModel};
  for (const std::string& name : testing::fixture_names(testing::FixtureKind::Fp8))
    if (name.ends_with("-fp8-channel")) names.push_back(name);
  return names;
}

std::vector<uint32_t> bits(const std::vector<std::vector<float>>& rows) {
  std::vector<uint32_t> out;
  for (const auto& row : rows) {
    const size_t at = out.size();
    out.resize(at + row.size());
    std::memcpy(out.data() + at, row.data(), row.size() * sizeof(float));
  }
  return out;
}

class FusedFp8Model : public ::testing::TestWithParam<std::string> {};

TEST_P(FusedFp8Model, LogitsEqualTheUnfusedProducersBitForBit) {
  ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
  CudaBackendOptions options;
  options.poison_step_allocations = true;
  auto fused_backend = make_cuda_backend(options);
  UnfusedCudaBackend unfused_backend(options);
  std::unique_ptr<CausalLM> fused, unfused;
  if (GetParam() == kDummyBlockModel) {
    const fs::path directory = testing::write_fp8_block_model_config({384, 512, 128, 256});
    LoadOptions load;
    load.format = LoadFormat::Dummy;
    fused = load_model(directory, *fused_backend, load);
    unfused = load_model(directory, unfused_backend, load);
    fs::remove_all(directory);
  } else {
    fused = load_model(testing::fixture_directory(GetParam()), *fused_backend);
    unfused = load_model(testing::fixture_directory(GetParam()), unfused_backend);
  }
  std::mt19937_64 rng(testing::run_seed());
  std::printf("  %s: prompts from seed %llu\n", GetParam().c_str(),
              static_cast<unsigned long long>(testing::run_seed()));
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(fused->config().vocab_size - 1));
  for (size_t length : {1, 9, 70}) {
    std::vector<int32_t> prompt(length);
    for (int32_t& t : prompt) t = token(rng);
    const int64_t decode_steps = 6;
    SequenceRunner fused_runner(*fused, static_cast<int64_t>(length) + decode_steps);
    SequenceRunner unfused_runner(*unfused, static_cast<int64_t>(length) + decode_steps);
    const auto fused_logits = fused_runner.append(prompt, /*all_logits=*/true);
    const auto unfused_logits = unfused_runner.append(prompt, /*all_logits=*/true);
    EXPECT_TRUE(bits(fused_logits) == bits(unfused_logits)) << GetParam() << " prefill of " << length;
    for (int64_t step = 0; step < decode_steps; ++step) {  // one token per step: the step graphs
      const std::vector<int32_t> next = {token(rng)};
      EXPECT_TRUE(bits(fused_runner.append(next, false)) == bits(unfused_runner.append(next, false)))
          << GetParam() << " decode step " << step << " after " << length;
    }
  }
  EXPECT_GT(unfused_backend.producers, 0) << "the model asked for no fused FP8 producer";
}

INSTANTIATE_TEST_SUITE_P(Models, FusedFp8Model, ::testing::ValuesIn(models()),
                         [](const auto& info) { return testing::fixture_test_name(info.param); });

}  // namespace
}  // namespace rackserve
