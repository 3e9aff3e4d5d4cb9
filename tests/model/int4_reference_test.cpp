// The CPU backend on the INT4 fixtures (tests/reference/make_int4_fixtures.py: tiny Kimi-like
// models whose routed experts are compressed-tensors pack-quantized INT4 in groups, as
// Kimi-K2-Thinking / K2.5 ship them; references computed by Hugging Face transformers from the
// dequantized weights). The model loads the experts natively (INT4 codes and scales, W4A16);
// activations stay unquantized, so it must give transformers' logits at every position to
// 1e-3 and the same 16-token greedy continuation, the checks fp8_reference_test makes for W8A16.
// The INT4 fixtures are made on a machine with torch (scripts/gpu-suite.sh fixtures); until they
// are copied into tests/data/models the parameterized tests have no instances, and
// Int4ReferenceFixtures.Present reports that as a skip rather than a pass.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "engine/sequence_runner.h"
#include "models/model.h"
#include "support/fixtures.h"
#include "support/similarity.h"
#include "weights/safetensors.h"

namespace rackserve {
namespace {

using testing::FixtureKind;

using testing::flatten;
using testing::max_abs_difference;

struct Int4Prompt {
  std::vector<int32_t> tokens;
  std::vector<float> w4a16;     // [tokens.size(), vocab]
  std::vector<int32_t> greedy;  // the W4A16 model's continuation
};

class Int4ReferenceModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    directory_ = testing::fixture_directory(GetParam());
    backend_ = make_cpu_backend(2);
    WeightStore reference = WeightStore::open(directory_ / "reference.safetensors");
    std::ifstream meta_file(directory_ / "reference.json");
    const nlohmann::json meta = nlohmann::json::parse(meta_file);
    for (size_t p = 0; p < meta["prompts"].size(); ++p) {
      const std::string prefix = "prompt_" + std::to_string(p);
      prompts_.push_back({testing::read_reference_vector<int32_t>(reference, prefix + ".tokens"),
                          testing::read_reference_vector<float>(reference, prefix + ".w4a16"),
                          testing::read_reference_vector<int32_t>(reference, prefix + ".greedy")});
    }
    ASSERT_GE(prompts_.size(), 3u);
    model_ = load_model(directory_, *backend_);  // routed experts as INT4 codes + scales: no option expands them
  }

  std::filesystem::path directory_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<CausalLM> model_;
  std::vector<Int4Prompt> prompts_;
};

TEST_P(Int4ReferenceModel, LogitsMatchTransformersW4A16) {
  for (const Int4Prompt& prompt : prompts_) {
    SequenceRunner runner(*model_, static_cast<int64_t>(prompt.tokens.size()));
    const std::vector<float> logits = flatten(runner.append(prompt.tokens, /*all_logits=*/true));
    ASSERT_EQ(logits.size(), prompt.w4a16.size());
    const float worst = max_abs_difference(logits, prompt.w4a16);
    EXPECT_LE(worst, 1e-3f) << "prompt of " << prompt.tokens.size();
    std::printf("  %s W4A16 prompt of %zu: max |logit - transformers| = %.3g\n", GetParam().c_str(),
                prompt.tokens.size(), worst);
  }
}

TEST_P(Int4ReferenceModel, GreedyContinuationMatchesTransformers) {
  for (const Int4Prompt& prompt : prompts_) {
    SequenceRunner runner(*model_, static_cast<int64_t>(prompt.tokens.size() + prompt.greedy.size()));
    EXPECT_EQ(runner.generate_greedy(prompt.tokens, static_cast<int64_t>(prompt.greedy.size())), prompt.greedy)
        << "prompt of " << prompt.tokens.size();
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Int4ReferenceModel, ::testing::ValuesIn(testing::fixture_names(FixtureKind::Int4)),
                         [](const auto& info) { return testing::fixture_test_name(info.param); });
// No INT4 fixture yet gives no instances: not a gtest error, but not a pass either (below).
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Int4ReferenceModel);

// Says which INT4 fixtures the tests above ran on, or skips (ctest: "Skipped", not "Passed")
// naming what is missing when there are none.
TEST(Int4ReferenceFixtures, Present) {
  const std::vector<std::string> names = testing::fixture_names(FixtureKind::Int4);
  if (names.empty())
    GTEST_SKIP() << "no INT4 fixture under tests/data/models: the transformers W4A16 comparison did not run "
                    "(tests/reference/make_int4_fixtures.py makes them; scripts/gpu-suite.sh fixtures)";
  for (const std::string& name : names) std::printf("  INT4 fixture %s\n", name.c_str());
}

}  // namespace
}  // namespace rackserve
