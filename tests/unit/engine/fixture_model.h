// The tiny DeepSeek-V3 fixtures of tests/data/models on the CPU backend (fp32), with the
// Hugging Face greedy continuations stored in their reference.safetensors
// (tests/reference/make_fixtures.py: model.generate with EOS disabled, 16 tokens).
#pragma once

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/model.h"
#include "support/fixtures.h"
#include "weights/safetensors.h"

namespace rackserve::testing_support {

struct ReferencePrompt {
  std::vector<int32_t> tokens;
  std::vector<int32_t> greedy;  // the HF greedy continuation
};

inline std::filesystem::path models_dir() { return std::filesystem::path(RACKSERVE_TEST_DATA_DIR) / "models"; }

// The BF16 fixtures (their greedy continuations are the unquantized model's).
inline std::vector<std::string> fixture_names() { return testing::fixture_names(testing::FixtureKind::Bf16); }

struct FixtureModel {
  explicit FixtureModel(const std::string& name) : directory(models_dir() / name) {
    backend = make_cpu_backend(2);
    model = load_model(directory, *backend);
    WeightStore reference = WeightStore::open(directory / "reference.safetensors");
    for (int p = 0; reference.contains("prompt_" + std::to_string(p) + ".tokens"); ++p) {
      const std::string prefix = "prompt_" + std::to_string(p);
      prompts.push_back({testing::read_reference_vector<int32_t>(reference, prefix + ".tokens"),
                         testing::read_reference_vector<int32_t>(reference, prefix + ".greedy")});
    }
  }

  std::filesystem::path directory;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<CausalLM> model;
  std::vector<ReferencePrompt> prompts;
};

}  // namespace rackserve::testing_support
