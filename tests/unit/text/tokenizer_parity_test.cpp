// Parity with the Hugging Face `tokenizers` library, `tiktoken` and `js-tiktoken` (real
// cl100k_base / o200k_base ranks) on the committed fixtures: every corpus line must
// encode to the reference ids, decode (keeping and, where recorded, skipping special
// tokens) to the reference strings, and stream-decode, fed in chunks of varying size, to
// the same text with no partial UTF-8 in any piece. Random id sequences
// (decode_probes.jsonl) must decode to the reference strings too.
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include "fixture_files.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace rackserve::text {
namespace {

using testing::ids_of;
using testing::read_corpus;
using testing::read_jsonl;
using testing::tokenizer_data_dir;

constexpr int kMaxReportedFailures = 8;

// Feeds `ids` to a stream in chunks of 1..7 ids; checks every returned piece is valid
// UTF-8 and the running output stays a prefix of `full`. Returns the streamed text.
std::string stream_decode(const Tokenizer& tokenizer, const std::vector<TokenId>& ids, bool skip, uint32_t seed,
                          const std::string& full) {
  std::mt19937 rng(seed);
  DecodeStream stream = tokenizer.decode_stream(skip);
  std::string out;
  size_t pos = 0;
  while (pos < ids.size()) {
    const size_t chunk = std::min<size_t>(ids.size() - pos, 1 + rng() % 7);
    for (size_t i = 0; i < chunk; ++i) {
      const std::string piece = stream.step(ids[pos + i]);
      EXPECT_EQ(utf8::find_invalid(piece), std::string::npos) << "partial UTF-8 emitted after id " << ids[pos + i];
      out += piece;
    }
    pos += chunk;
    if (full.compare(0, out.size(), out) != 0) {
      ADD_FAILURE() << "streamed text is not a prefix of the full decode after " << pos << " ids";
      return out;
    }
  }
  const std::string tail = stream.finish();
  EXPECT_EQ(utf8::find_invalid(tail), std::string::npos);
  return out + tail;
}

// A fixture directory under tests/data/tokenizers.
class TokenizerParity : public ::testing::TestWithParam<std::string> {
 protected:
  std::filesystem::path dir() const { return tokenizer_data_dir() / GetParam(); }
};
using DecodeProbeParity = TokenizerParity;

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) c = c == '/' ? '_' : c;
  return name;
}

TEST_P(TokenizerParity, EncodeDecodeAndStreamEveryCorpusLine) {
  const Tokenizer tokenizer = Tokenizer::from_directory(dir());
  const std::vector<std::string> corpus = read_corpus();
  const std::vector<nlohmann::json> expected = read_jsonl(dir() / "expected.jsonl");
  ASSERT_EQ(corpus.size(), expected.size());
  ASSERT_GE(corpus.size(), 2000u);
  int failures = 0;
  size_t tokens = 0;
  for (size_t line = 0; line < corpus.size() && failures < kMaxReportedFailures; ++line) {
    const std::string& text = corpus[line];
    const std::vector<TokenId> want = ids_of(expected[line]["ids"]);
    tokens += want.size();
    const std::vector<TokenId> got = tokenizer.encode(text);
    if (got != want) {
      ADD_FAILURE() << GetParam() << " line " << line << " " << nlohmann::json(text).dump() << "\n  want "
                    << fmt::format("{}", want) << "\n  got  " << fmt::format("{}", got);
      ++failures;
      continue;
    }
    for (const bool skip : {false, true}) {
      // js-tiktoken records one decode ("decoded", special tokens kept).
      const bool js_tiktoken = !expected[line].contains("keep") && GetParam().starts_with("js_tiktoken/");
      if (skip && js_tiktoken) continue;
      const char* key = skip ? "skip" : js_tiktoken ? "decoded" : "keep";
      const std::string want_text = expected[line].value(key, text);
      const std::string full = tokenizer.decode(want, skip);
      if (full != want_text) {
        ADD_FAILURE() << GetParam() << " line " << line << " decode(" << key << ")\n  want "
                      << nlohmann::json(want_text).dump() << "\n  got  " << nlohmann::json(full).dump();
        ++failures;
        continue;
      }
      const std::string streamed = stream_decode(tokenizer, want, skip, static_cast<uint32_t>(line), full);
      if (streamed != full) {
        ADD_FAILURE() << GetParam() << " line " << line << " stream(" << key << ") differs from decode:\n  full   "
                      << nlohmann::json(full).dump() << "\n  stream " << nlohmann::json(streamed).dump();
        ++failures;
      }
    }
  }
  EXPECT_EQ(failures, 0);
  RecordProperty("tokens", static_cast<int>(tokens));
}

TEST_P(DecodeProbeParity, RandomIdSequences) {
  const Tokenizer tokenizer = Tokenizer::from_directory(dir());
  const std::vector<nlohmann::json> probes = read_jsonl(dir() / "decode_probes.jsonl");
  ASSERT_GE(probes.size(), 100u);
  int failures = 0;
  for (size_t i = 0; i < probes.size() && failures < kMaxReportedFailures; ++i) {
    const std::vector<TokenId> ids = ids_of(probes[i]["ids"]);
    for (const bool skip : {false, true}) {
      const std::string want = probes[i][skip ? "skip" : "keep"];
      const std::string got = tokenizer.decode(ids, skip);
      if (got != want) {
        ADD_FAILURE() << GetParam() << " probe " << i << " " << fmt::format("{}", ids) << " skip=" << skip << "\n  want "
                      << nlohmann::json(want).dump() << "\n  got  " << nlohmann::json(got).dump();
        ++failures;
        continue;
      }
      EXPECT_EQ(stream_decode(tokenizer, ids, skip, static_cast<uint32_t>(i), got), got) << "probe " << i;
    }
  }
  EXPECT_EQ(failures, 0);
}

// Every id one at a time: the stream of a single id equals its full decode.
TEST_P(TokenizerParity, SingleIdStreamsEqualDecode) {
  const Tokenizer tokenizer = Tokenizer::from_directory(dir());
  int failures = 0;
  for (TokenId id = 0; id < tokenizer.vocab_size() && failures < kMaxReportedFailures; ++id) {
    if (!tokenizer.id_to_token(id)) continue;
    const std::vector<TokenId> ids = {id, id};
    const std::string full = tokenizer.decode(ids);
    if (stream_decode(tokenizer, ids, false, id, full) != full) ++failures;
  }
  EXPECT_EQ(failures, 0);
}

const auto kReferenceFixtures = ::testing::Values("deepseek_v3", "glm_bytelevel", "gpt2_digits", "split_behaviours",
                                                  "llama_byte_fallback", "metaspace_nfkc", "kimi_tiktoken");
INSTANTIATE_TEST_SUITE_P(Fixtures, TokenizerParity, kReferenceFixtures, test_name);
INSTANTIATE_TEST_SUITE_P(Fixtures, DecodeProbeParity, kReferenceFixtures, test_name);
INSTANTIATE_TEST_SUITE_P(JsTiktoken, TokenizerParity,
                         ::testing::Values("js_tiktoken/cl100k_base", "js_tiktoken/o200k_base"), test_name);

}  // namespace
}  // namespace rackserve::text
