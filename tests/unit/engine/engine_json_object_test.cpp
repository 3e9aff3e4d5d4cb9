// response_format json_object through the Engine on a tiny fixture model (CPU, fp32), with
// the mask and detokenizer the server builds from a real byte-level tokenizer (the e2e one,
// tests/data/e2e/tokenizer.json). Every output must be a prefix of a JSON object document per
// a fresh JsonGrammar, its text must be the bytes of its tokens, and an output that stopped
// on EOS must be a document nlohmann::json reads as an object. The same for json_schema,
// with a fresh JsonSchemaGrammar and the schema's keys and types.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/json_object_mask.h"
#include "api/reasoning_splitter.h"
#include "api/tokenizer_detokenizer.h"
#include "engine/engine.h"
#include "engine/json_grammar.h"
#include "engine/json_schema_compile.h"
#include "engine/json_schema_grammar.h"
#include "fixture_model.h"
#include "text/tokenizer.h"

namespace rackserve {
namespace {

using testing_support::FixtureModel;

constexpr int32_t kEos = 1;  // <|eos|> of the e2e tokenizer (special)

// How many bytes at the end of `bytes` are a UTF-8 character still missing bytes (0 when
// none): a detokenizer cut there by max_tokens writes U+FFFD for them instead.
size_t partial_character_tail(const std::string& bytes) {
  for (size_t back = 1; back <= std::min<size_t>(3, bytes.size()); ++back) {
    const auto byte = static_cast<uint8_t>(bytes[bytes.size() - back]);
    if ((byte & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    const size_t length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1;
    return length > back ? back : 0;
  }
  return 0;
}

class EngineJsonObject : public ::testing::Test {
 protected:
  EngineJsonObject()
      : fixture_("dsv3-plain-noqlora"),
        tokenizer_(std::make_shared<const text::Tokenizer>(text::Tokenizer::from_directory(
            std::filesystem::path(RACKSERVE_TEST_DATA_DIR) / "e2e"))),
        vocab_size_(static_cast<int32_t>(fixture_.model->config().vocab_size)),
        mask_(api::make_json_object_mask(*tokenizer_, vocab_size_, std::vector<int32_t>{kEos})),
        token_bytes_(*tokenizer_->raw_token_bytes()) {
    token_bytes_.resize(vocab_size_);
  }

  std::unique_ptr<Engine> make_engine(EngineConfig config = {}) {
    GenerationConfig generation;
    generation.eos_token_ids = {kEos};
    auto engine = std::make_unique<Engine>(*fixture_.model, config, generation, api::make_detokenizer_factory(tokenizer_));
    engine->start();
    return engine;
  }

  // At most `max_tokens`, fewer where the fixture's context (128 positions) ends first.
  Request constrained(size_t prompt, std::optional<uint64_t> seed, int32_t max_tokens,
                      std::shared_ptr<const JsonTokenMask> mask = nullptr) const {
    Request request;
    request.prompt = fixture_.prompts.at(prompt).tokens;
    request.params.temperature = seed ? 1.0f : 0.0f;
    request.params.seed = seed;
    const auto context = static_cast<int32_t>(fixture_.model->config().max_position_embeddings);
    request.params.max_tokens = std::min(max_tokens, context - static_cast<int32_t>(request.prompt.size()));
    request.json_mask = mask ? std::move(mask) : mask_;
    return request;
  }

  static RequestOutput run(Engine& engine, Request request) {
    SubmitResult result = engine.submit(std::move(request));
    EXPECT_EQ(result.status, SubmitResult::Status::Accepted) << result.message;
    return result.stream->wait_all();
  }

  // The bytes of a sequence's tokens, its EOS left out.
  std::string output_bytes(const SequenceDelta& sequence) const {
    std::string bytes;
    for (int32_t token : sequence.token_ids)
      if (token != kEos) bytes += token_bytes_.at(token);
    return bytes;
  }

  // The checks every constrained output must pass; returns whether it stopped on EOS.
  bool expect_json_object(const SequenceDelta& sequence, const Request& request) const {
    std::string bytes;
    for (size_t i = 0; i < sequence.token_ids.size(); ++i) {
      const int32_t token = sequence.token_ids[i];
      if (token == kEos) {
        EXPECT_EQ(i + 1, sequence.token_ids.size()) << "EOS ends the output";
        break;
      }
      EXPECT_FALSE(token_bytes_.at(token).empty()) << "token " << token << " has no bytes";
      bytes += token_bytes_.at(token);
    }
    JsonGrammar grammar;
    EXPECT_TRUE(grammar.accept(bytes)) << "not a prefix of a JSON object: " << bytes;
    EXPECT_EQ(bytes.substr(0, 1), "{");
    const size_t partial = sequence.finish_reason == FinishReason::Length ? partial_character_tail(bytes) : 0;
    if (partial == 0) {
      EXPECT_EQ(sequence.text, bytes) << "the detokenized text is not the tokens' bytes";
    } else {
      const std::string whole = bytes.substr(0, bytes.size() - partial);
      EXPECT_EQ(sequence.text.substr(0, whole.size()), whole);
    }
    const bool stopped_on_eos =
        sequence.finish_reason == FinishReason::Stop && std::holds_alternative<int32_t>(sequence.stop_reason) &&
        std::get<int32_t>(sequence.stop_reason) == kEos;
    if (stopped_on_eos) {
      EXPECT_TRUE(grammar.complete());
      nlohmann::json parsed;
      EXPECT_NO_THROW(parsed = nlohmann::json::parse(sequence.text)) << sequence.text;
      EXPECT_TRUE(parsed.is_object()) << sequence.text;
    } else {
      EXPECT_EQ(sequence.finish_reason, FinishReason::Length);
      EXPECT_EQ(static_cast<int32_t>(sequence.token_ids.size()), *request.params.max_tokens);
    }
    return stopped_on_eos;
  }

  FixtureModel fixture_;
  std::shared_ptr<const text::Tokenizer> tokenizer_;
  int32_t vocab_size_;
  std::shared_ptr<const JsonTokenMask> mask_;
  std::vector<std::string> token_bytes_;  // by model id
};

TEST_F(EngineJsonObject, GreedyAndSampledOutputsAreJsonObjects) {
  ASSERT_NE(mask_, nullptr);
  auto engine = make_engine();
  constexpr int32_t kMaxTokens = 200;  // the context's end, for these prompts
  for (std::optional<uint64_t> seed : {std::optional<uint64_t>{}, std::optional<uint64_t>{11},
                                       std::optional<uint64_t>{12}, std::optional<uint64_t>{13}}) {
    Request request = constrained(seed.value_or(0) % fixture_.prompts.size(), seed, kMaxTokens);
    request.params.n = seed ? 2 : 1;
    RequestOutput output = run(*engine, request);
    ASSERT_TRUE(output.error.empty()) << output.error;
    for (const SequenceDelta& sequence : output.sequences) expect_json_object(sequence, request);
  }
}

// With only a few tokens left a random model closes the object quickly: the EOS path, with
// min_tokens holding EOS back past the closing brace (whitespace only in between).
TEST_F(EngineJsonObject, StopsOnEosOnlyWithAWholeObject) {
  std::vector<std::string> few = token_bytes_;
  for (std::string& bytes : few)
    if (bytes != "{" && bytes != "}" && bytes != "\"" && bytes != "a" && bytes != ":" && bytes != "1" && bytes != " ")
      bytes.clear();
  auto few_tokens = std::make_shared<const JsonTokenMask>(few, std::vector<int32_t>{kEos});
  auto engine = make_engine();
  constexpr int32_t kMaxTokens = 60;
  int stopped = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    Request request = constrained(seed % fixture_.prompts.size(), seed, kMaxTokens, few_tokens);
    request.params.min_tokens = 8;
    RequestOutput output = run(*engine, request);
    ASSERT_TRUE(output.error.empty()) << output.error;
    const SequenceDelta& sequence = output.sequences.at(0);
    if (expect_json_object(sequence, request)) {
      ++stopped;
      EXPECT_GE(sequence.token_ids.size(), 8u);
    }
  }
  EXPECT_GT(stopped, 0) << "no sequence closed its object and stopped";
}

// Preemption recomputes a sequence's KV cache; the grammar state, kept per sequence, must
// carry on where it was: the same tokens as alone.
TEST_F(EngineJsonObject, SameTokensUnderPreemption) {
  constexpr int32_t kMaxTokens = 120;
  std::vector<std::vector<int32_t>> alone;
  {
    auto engine = make_engine();
    for (size_t prompt = 0; prompt < fixture_.prompts.size(); ++prompt)
      alone.push_back(run(*engine, constrained(prompt, std::nullopt, kMaxTokens)).sequences.at(0).token_ids);
  }
  EngineConfig config;
  config.scheduler.num_pages = 4;  // 4 pages of 64 tokens for all of them at once
  config.scheduler.max_num_batched_tokens = 40;
  auto engine = make_engine(config);
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<Request> requests;
  for (size_t prompt = 0; prompt < fixture_.prompts.size(); ++prompt) {
    requests.push_back(constrained(prompt, std::nullopt, kMaxTokens));
    streams.push_back(engine->submit(requests.back()).stream);
  }
  for (size_t prompt = 0; prompt < streams.size(); ++prompt) {
    ASSERT_NE(streams[prompt], nullptr);
    RequestOutput output = streams[prompt]->wait_all();
    ASSERT_TRUE(output.error.empty()) << output.error;
    EXPECT_EQ(output.sequences.at(0).token_ids, alone[prompt]) << "prompt " << prompt;
    expect_json_object(output.sequences.at(0), requests[prompt]);
  }
  EXPECT_GT(engine->stats().preemptions, 0);
}

// response_format json_schema. Every output is a prefix of a document of the schema; one that
// stopped on EOS is a whole one with the schema's keys and types. With whitespace runs
// bounded, the one-property schema leaves the (random) model no way but to finish and stop
// within 1+8 + 4+8 + 1+8 + 5+8 + 1+8 + 1 = 53 tokens, greedy or sampled.
TEST_F(EngineJsonObject, JsonSchemaOutputsFollowTheSchema) {
  struct Case {
    const char* schema;
    bool must_stop;
  };
  const Case cases[] = {
      {R"({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]})", true},
      {R"({"type": "object", "properties": {"ok": {"type": "boolean"}, "kind": {"enum": ["alpha", "beta"]},
          "note": {"type": "null"}}, "required": ["ok", "kind"], "additionalProperties": false})",
       false},
  };
  auto engine = make_engine();
  int stopped = 0;
  for (const Case& test : cases) {
    auto schema = compile_json_schema(nlohmann::ordered_json::parse(test.schema));
    for (std::optional<uint64_t> seed : {std::optional<uint64_t>{}, std::optional<uint64_t>{21},
                                         std::optional<uint64_t>{22}, std::optional<uint64_t>{23}}) {
      Request request = constrained(seed.value_or(0) % fixture_.prompts.size(), seed, 100);
      ASSERT_GE(*request.params.max_tokens, 53);
      request.json_schema = schema;
      request.params.n = seed ? 2 : 1;
      RequestOutput output = run(*engine, request);
      ASSERT_TRUE(output.error.empty()) << output.error;
      for (const SequenceDelta& sequence : output.sequences) {
        const std::string bytes = output_bytes(sequence);
        JsonSchemaGrammar grammar(*schema);
        EXPECT_TRUE(grammar.accept(bytes)) << "not a prefix of a document of the schema: " << bytes;
        if (test.must_stop) EXPECT_EQ(sequence.finish_reason, FinishReason::Stop) << bytes;
        if (sequence.finish_reason != FinishReason::Stop) continue;
        ++stopped;
        EXPECT_EQ(sequence.token_ids.back(), kEos);
        EXPECT_TRUE(grammar.complete()) << bytes;
        EXPECT_EQ(sequence.text, bytes);
        const nlohmann::json parsed = nlohmann::json::parse(sequence.text);
        EXPECT_TRUE(parsed.at("ok").is_boolean()) << sequence.text;
        if (test.must_stop) continue;
        EXPECT_TRUE(parsed.at("kind") == "alpha" || parsed.at("kind") == "beta") << sequence.text;
        EXPECT_TRUE(!parsed.contains("note") || parsed.at("note").is_null()) << sequence.text;
        EXPECT_LE(parsed.size(), 3u) << sequence.text;
      }
    }
  }
  EXPECT_GE(stopped, 7);
}

// structured_outputs "choice": every output is one of the texts (a prefix when cut), and it
// stops on EOS once it is one; texts that start others ("yes" / "yes indeed") included.
TEST_F(EngineJsonObject, ChoiceOutputsAreOneOfTheTexts) {
  auto choices = std::make_shared<const TextChoices>(std::vector<std::string>{"yes", "yes indeed", "no", "maybe not"});
  auto engine = make_engine();
  int stopped = 0;
  for (std::optional<uint64_t> seed : {std::optional<uint64_t>{}, std::optional<uint64_t>{31},
                                       std::optional<uint64_t>{32}, std::optional<uint64_t>{33}}) {
    Request request = constrained(seed.value_or(0) % fixture_.prompts.size(), seed, 40);
    request.choices = choices;
    request.params.n = seed ? 3 : 1;
    RequestOutput output = run(*engine, request);
    ASSERT_TRUE(output.error.empty()) << output.error;
    for (const SequenceDelta& sequence : output.sequences) {
      const std::string bytes = output_bytes(sequence);
      EXPECT_TRUE(std::ranges::any_of(choices->texts(), [&](const std::string& text) { return text.starts_with(bytes); }))
          << bytes;
      if (sequence.finish_reason != FinishReason::Stop) continue;
      ++stopped;
      EXPECT_EQ(sequence.token_ids.back(), kEos);
      EXPECT_TRUE(std::ranges::count(choices->texts(), sequence.text) == 1) << sequence.text;
    }
  }
  EXPECT_GE(stopped, 6);
}

// A reasoning model thinks before its answer: under constrain_after_token (the e2e tokenizer's
// "</think>") the output is free but for EOS until that token, then a JSON object. A sequence
// that stopped on EOS went through the token, and its text after "</think>" is the object; one
// cut by max_tokens has a prefix of one there, if it got that far. Preempted or not, the same
// tokens (the constraint's phase is kept next to the output).
TEST_F(EngineJsonObject, ConstraintStartsAfterTheReasoningEndToken) {
  const std::optional<int32_t> think_end = api::reasoning_end_token(*tokenizer_, vocab_size_);
  ASSERT_TRUE(think_end.has_value()) << "the e2e tokenizer has \"</think>\" as one token, not special";
  const int32_t kThinkEnd = *think_end;
  auto engine = make_engine();
  int reached = 0, stopped = 0;
  std::vector<Request> requests;
  std::vector<std::vector<int32_t>> alone;
  for (uint64_t seed = 31; seed <= 38; ++seed) {
    Request request = constrained(seed % fixture_.prompts.size(), seed, 200);
    request.params.temperature = 1.5f;
    request.params.n = 4;
    request.constrain_after_token = kThinkEnd;
    RequestOutput output = run(*engine, request);
    ASSERT_TRUE(output.error.empty()) << output.error;
    requests.push_back(request);
    for (const SequenceDelta& sequence : output.sequences) {
      alone.push_back(sequence.token_ids);
      const auto start = std::find(sequence.token_ids.begin(), sequence.token_ids.end(), kThinkEnd);
      const bool stopped_on_eos = sequence.finish_reason == FinishReason::Stop;
      for (auto it = sequence.token_ids.begin(); it != start; ++it)
        EXPECT_NE(*it, kEos) << "EOS is banned before the reasoning ends";
      if (start == sequence.token_ids.end()) {
        EXPECT_FALSE(stopped_on_eos);
        continue;
      }
      ++reached;
      std::string bytes;
      for (auto it = start + 1; it != sequence.token_ids.end() && *it != kEos; ++it) bytes += token_bytes_.at(*it);
      JsonGrammar grammar;
      EXPECT_TRUE(grammar.accept(bytes)) << "not a prefix of a JSON object after </think>: " << bytes;
      if (!stopped_on_eos) continue;
      ++stopped;
      EXPECT_EQ(sequence.token_ids.back(), kEos);
      EXPECT_TRUE(grammar.complete()) << bytes;
      const size_t tag = sequence.text.rfind("</think>");
      ASSERT_NE(tag, std::string::npos) << sequence.text;
      EXPECT_EQ(sequence.text.substr(tag + 8), bytes);
      EXPECT_TRUE(nlohmann::json::parse(bytes).is_object()) << bytes;
    }
  }
  EXPECT_GT(reached, 0) << "no sequence ended its reasoning: the test checked nothing after it";
  EXPECT_GT(stopped, 0) << "no sequence stopped with a whole object after its reasoning";
  std::cout << reached << " of " << alone.size() << " sequences ended their reasoning, " << stopped
            << " then stopped with a whole object\n";

  EngineConfig config;
  config.scheduler.num_pages = 4;  // 4 pages of 64 tokens for 32 sequences: preemption
  config.scheduler.max_num_batched_tokens = 40;
  auto small = make_engine(config);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const Request& request : requests) streams.push_back(small->submit(request).stream);
  size_t next = 0;
  for (auto& stream : streams) {
    ASSERT_NE(stream, nullptr);
    RequestOutput output = stream->wait_all();
    ASSERT_TRUE(output.error.empty()) << output.error;
    for (const SequenceDelta& sequence : output.sequences) EXPECT_EQ(sequence.token_ids, alone.at(next++));
  }
  EXPECT_GT(small->stats().preemptions, 0);
}

}  // namespace
}  // namespace rackserve
