// The tiny reference models on the CUDA backend (BF16 weights and activations, float32
// residual stream): logits against Hugging Face transformers' float32 reference with
// cosine >= 0.9999 at every position, the same 16-token greedy continuation, and the
// CPU backend's logits likewise. Step allocations are poisoned with NaN.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "engine/sequence_runner.h"
#include "models/model.h"
#include "weights/safetensors.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(fs::path(RACKSERVE_TEST_DATA_DIR) / "models"))
    if (fs::exists(entry.path() / "reference.safetensors")) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

template <typename T>
std::vector<T> read_vector(const WeightStore& store, const std::string& name) {
  const TensorRecord& record = store.get(name);
  const T* data = reinterpret_cast<const T*>(record.data);
  return std::vector<T>(data, data + record.bytes / sizeof(T));
}

double cosine(const float* a, const float* b, int64_t count) {
  double dot = 0, norm_a = 0, norm_b = 0;
  for (int64_t i = 0; i < count; ++i) {
    dot += double(a[i]) * b[i];
    norm_a += double(a[i]) * a[i];
    norm_b += double(b[i]) * b[i];
  }
  return dot / std::sqrt(norm_a * norm_b);  // NaN anywhere makes this NaN and fails >=
}

class CudaReferenceModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cuda_device_available()) << "the gpu tests need a CUDA device";
    directory_ = fs::path(RACKSERVE_TEST_DATA_DIR) / "models" / GetParam();
    gpu_ = make_cuda_backend(CudaBackendOptions{0, /*poison_step_allocations=*/true});
    model_ = load_model(directory_, *gpu_);
    reference_ = WeightStore::open(directory_ / "reference.safetensors");
    std::ifstream meta(directory_ / "reference.json");
    prompts_ = nlohmann::json::parse(meta)["prompts"].size();
  }
  int64_t vocab() const { return model_->config().vocab_size; }

  fs::path directory_;
  std::unique_ptr<Backend> gpu_;
  std::unique_ptr<CausalLM> model_;
  WeightStore reference_;
  size_t prompts_ = 0;
};

TEST_P(CudaReferenceModel, LogitsCosineAndGreedyMatchTransformers) {
  auto cpu = make_cpu_backend(0);
  auto cpu_model = load_model(directory_, *cpu);
  for (size_t p = 0; p < prompts_; ++p) {
    std::string prefix = "prompt_" + std::to_string(p);
    auto tokens = read_vector<int32_t>(reference_, prefix + ".tokens");
    auto expected = read_vector<float>(reference_, prefix + ".logits");
    auto greedy = read_vector<int32_t>(reference_, prefix + ".greedy");
    SequenceRunner runner(*model_, static_cast<int64_t>(tokens.size()));
    auto logits = runner.append(tokens, true);
    SequenceRunner cpu_runner(*cpu_model, static_cast<int64_t>(tokens.size()));
    auto cpu_logits = cpu_runner.append(tokens, true);
    double worst = 1.0, worst_cpu = 1.0;
    for (size_t r = 0; r < tokens.size(); ++r) {
      worst = std::min(worst, cosine(logits[r].data(), expected.data() + r * vocab(), vocab()));
      worst_cpu = std::min(worst_cpu, cosine(logits[r].data(), cpu_logits[r].data(), vocab()));
    }
    EXPECT_GE(worst, 0.9999) << "prompt " << p;
    EXPECT_GE(worst_cpu, 0.9999) << "prompt " << p;
    std::printf("  %s prompt of %zu: min cosine vs transformers %.7f, vs CPU backend %.7f\n", GetParam().c_str(),
                tokens.size(), worst, worst_cpu);
    SequenceRunner generator(*model_, static_cast<int64_t>(tokens.size() + greedy.size()));
    EXPECT_EQ(generator.generate_greedy(tokens, static_cast<int64_t>(greedy.size())), greedy) << "prompt " << p;
  }
}

TEST_P(CudaReferenceModel, DecodeThroughCacheEqualsFullForward) {
  auto tokens = read_vector<int32_t>(reference_, "prompt_" + std::to_string(prompts_ - 1) + ".tokens");
  SequenceRunner full(*model_, static_cast<int64_t>(tokens.size()));
  auto expected = full.append(tokens, true);
  SequenceRunner stepped(*model_, static_cast<int64_t>(tokens.size()));
  auto logits = stepped.append(tokens, true, 1);
  for (size_t r = 0; r < tokens.size(); ++r)
    EXPECT_GE(cosine(logits[r].data(), expected[r].data(), vocab()), 0.99999) << "position " << r;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaReferenceModel, ::testing::ValuesIn(fixture_names()), [](const auto& info) {
  std::string name = info.param;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
});

}  // namespace
}  // namespace rackserve
