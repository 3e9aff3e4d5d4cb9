// GenerationConfig: generation_config.json parsing and the defaults it gives requests;
// request checks and max_tokens resolution.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "engine/request_checks.h"
#include "engine/sampling_params.h"

namespace rackserve {
namespace {

TEST(GenerationConfig, ReadsSamplingDefaultsAndEosIds) {
  GenerationConfig config = GenerationConfig::from_json_text(
      R"({"temperature": 0.6, "top_p": 0.95, "top_k": 20, "eos_token_id": [1, 106], "bos_token_id": 0,
          "do_sample": true, "max_new_tokens": 300})",
      "test");
  EXPECT_FLOAT_EQ(*config.temperature, 0.6f);
  EXPECT_FLOAT_EQ(*config.top_p, 0.95f);
  EXPECT_EQ(*config.top_k, 20);
  EXPECT_EQ(config.eos_token_ids, (std::vector<int32_t>{1, 106}));
  EXPECT_EQ(*config.max_new_tokens, 300);
  EXPECT_FALSE(config.min_p);

  SamplingParams request;
  request.top_p = 0.5f;
  SamplingParams resolved = config.apply(request);
  EXPECT_FLOAT_EQ(*resolved.temperature, 0.6f);  // from the file
  EXPECT_FLOAT_EQ(*resolved.top_p, 0.5f);        // the request wins
  EXPECT_FLOAT_EQ(*resolved.min_p, 0.0f);        // neutral
  EXPECT_FLOAT_EQ(*resolved.repetition_penalty, 1.0f);
}

TEST(GenerationConfig, RejectsWrongTypes) {
  EXPECT_THROW(GenerationConfig::from_json_text(R"({"temperature": "hot"})", "t"), Error);
  EXPECT_THROW(GenerationConfig::from_json_text(R"({"eos_token_id": [1, "x"]})", "t"), Error);
  EXPECT_THROW(GenerationConfig::from_json_text("[", "t"), Error);
  EXPECT_TRUE(GenerationConfig::from_json_text(R"({"eos_token_id": null})", "t").eos_token_ids.empty());
}

TEST(GenerationConfig, LoadsTheFixturesFile) {
  const auto directory = std::filesystem::path(RACKSERVE_TEST_DATA_DIR) / "models" / "dsv3-plain-noqlora";
  GenerationConfig config = GenerationConfig::load(directory.string());
  EXPECT_EQ(config.eos_token_ids, std::vector<int32_t>{1});
  EXPECT_EQ(*config.bos_token_id, 0);
  EXPECT_TRUE(GenerationConfig::load("/nonexistent-dir").eos_token_ids.empty());
}

TEST(RequestChecks, MaxTokensDefaultsToTheRestOfTheContext) {
  GenerationConfig generation;
  SamplingParams resolved = resolve_params({}, generation, 30, 128);
  EXPECT_EQ(*resolved.max_tokens, 98);
  generation.max_new_tokens = 10;
  EXPECT_EQ(*resolve_params({}, generation, 30, 128).max_tokens, 10);
}

TEST(RequestChecks, NamesWhatIsWrong) {
  RequestLimits limits{512, 128, 4, 20, 64, 8};
  Request request;
  request.prompt = {1, 2, 3};
  request.params = resolve_params({}, GenerationConfig{}, 3, 128);
  EXPECT_EQ(check_request(request, limits), "");
  auto problem = [&](auto change) {
    Request copy = request;
    change(copy);
    return check_request(copy, limits);
  };
  EXPECT_NE(problem([](Request& r) { r.prompt.clear(); }), "");
  EXPECT_NE(problem([](Request& r) { r.prompt.push_back(512); }).find("vocabulary"), std::string::npos);
  EXPECT_NE(problem([](Request& r) { r.params.max_tokens = 126; }).find("context length"), std::string::npos);
  EXPECT_NE(problem([](Request& r) { r.params.n = 5; }), "");
  EXPECT_NE(problem([](Request& r) { r.params.temperature = -1.0f; }), "");
  EXPECT_NE(problem([](Request& r) { r.params.top_k = -2; }), "");
  EXPECT_NE(problem([](Request& r) { r.params.min_p = 1.5f; }), "");
  EXPECT_NE(problem([](Request& r) { r.params.repetition_penalty = 0.0f; }), "");
  EXPECT_NE(problem([](Request& r) { r.params.presence_penalty = 3.0f; }), "");
  EXPECT_NE(problem([](Request& r) { r.params.logprobs = 21; }), "");
  EXPECT_NE(problem([](Request& r) { r.params.stop_token_ids = {-1}; }), "");
  limits.num_pages = 1;  // 3 + 125 tokens need 2 pages of 64
  EXPECT_NE(check_request(request, limits).find("KV cache"), std::string::npos);
}

}  // namespace
}  // namespace rackserve
