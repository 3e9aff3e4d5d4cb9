// Builds a Tokenizer from a tiktoken vocabulary: one "<base64 bytes> <rank>" line per
// token, a pre-tokenizer regex (pat_str) whose matches are the pieces (text between
// matches is dropped, as tiktoken does), and special tokens above the ranks.
#include <limits>

#include "text/json_fields.h"
#include "text/tokenizer_impl.h"
#include "text/utf8.h"

namespace rackserve::text {
namespace {

// Kimi K2's pat_str (tokenization_kimi.py), in Python `regex` syntax with class
// intersection; translate_regex turns it into PCRE2.
constexpr std::string_view kKimiPattern =
    R"PAT([\p{Han}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)PAT";

// Runs of this many whitespace or non-whitespace characters are cut, as Kimi's wrapper does.
constexpr size_t kKimiMaxRunChars = 25000;

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool base64_decode(std::string_view text, std::string& out) {
  out.clear();
  uint32_t buffer = 0;
  int bits = 0;
  size_t padding = 0;
  for (char c : text) {
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding > 0) return false;
    const int value = base64_value(c);
    if (value < 0) return false;
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return padding <= 2 && !out.empty();
}

}  // namespace

TiktokenSpec tiktoken_spec_from_config(const nlohmann::json& config, std::string_view origin) {
  const JsonField root(config, std::string(origin), "");
  TiktokenSpec spec;
  if (root.has("pat_str")) {
    spec.pattern = root["pat_str"].string();
  } else {  // Kimi's tokenizer: its pattern and its run splitting
    spec.pattern = std::string(kKimiPattern);
    spec.max_run_chars = kKimiMaxRunChars;
  }
  if (!root.has("added_tokens_decoder")) return spec;
  const JsonField decoder = root["added_tokens_decoder"];
  decoder.expect_object();
  for (const auto& [key, value] : decoder.json().items()) {
    const JsonField entry(value, std::string(origin), "added_tokens_decoder." + key);
    AddedToken token;
    size_t used = 0;
    unsigned long id = 0;
    try {
      id = std::stoul(key, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != key.size() || id > static_cast<unsigned long>(std::numeric_limits<int32_t>::max())) {
      decoder.fail(fmt::format("key {} is not a token id", utf8::quoted(key)));
    }
    token.id = static_cast<TokenId>(id);
    token.content = entry["content"].string();
    token.special = entry.boolean_or("special", true);
    token.lstrip = entry.boolean_or("lstrip", false);
    token.rstrip = entry.boolean_or("rstrip", false);
    token.single_word = entry.boolean_or("single_word", false);
    spec.special_tokens.push_back(std::move(token));
  }
  return spec;
}

std::shared_ptr<Tokenizer::Impl> load_tiktoken(std::string_view rank_file, TiktokenSpec spec, std::string_view origin) {
  std::vector<std::pair<std::string, TokenId>> ranks;
  size_t line_number = 0;
  size_t pos = 0;
  std::string bytes;
  while (pos < rank_file.size()) {
    size_t end = rank_file.find('\n', pos);
    if (end == std::string_view::npos) end = rank_file.size();
    std::string_view line = rank_file.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    RS_CHECK(space != std::string_view::npos, "{} line {}: expected \"<base64> <rank>\"", origin, line_number);
    RS_CHECK(base64_decode(line.substr(0, space), bytes), "{} line {}: invalid base64 {}", origin, line_number,
             utf8::quoted(line.substr(0, space)));
    const std::string_view rank_text = line.substr(space + 1);
    uint64_t rank = 0;
    RS_CHECK(!rank_text.empty() && rank_text.size() <= 10, "{} line {}: invalid rank", origin, line_number);
    for (char c : rank_text) {
      RS_CHECK(c >= '0' && c <= '9', "{} line {}: invalid rank {}", origin, line_number, utf8::quoted(rank_text));
      rank = rank * 10 + static_cast<uint64_t>(c - '0');
    }
    RS_CHECK(rank <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max()), "{} line {}: rank too large", origin, line_number);
    ranks.emplace_back(bytes, static_cast<TokenId>(rank));
  }
  RS_CHECK(!ranks.empty(), "{}: no ranks", origin);

  auto impl = std::make_shared<Tokenizer::Impl>();
  try {
    impl->model = std::make_unique<BpeModel>(ranks);
  } catch (const Error& error) {
    RS_FAIL("{}: {}", origin, error.what());
  }
  // Ids between the ranks and the last special token without a name are reserved
  // special tokens, named as Kimi's tokenizer names them.
  TokenId first_free = 0;
  for (const auto& entry : ranks) first_free = std::max(first_free, entry.second + 1);
  TokenId last_special = 0;
  std::vector<bool> named;
  for (const auto& token : spec.special_tokens) {
    RS_CHECK(!impl->model->token(token.id), "{}: special token {} has id {}, which is a rank", origin, utf8::quoted(token.content), token.id);
    last_special = std::max(last_special, token.id);
  }
  if (!spec.special_tokens.empty() && last_special >= first_free) {
    named.assign(last_special - first_free + 1, false);
    for (const auto& token : spec.special_tokens) {
      if (token.id >= first_free) named[token.id - first_free] = true;
    }
    for (TokenId id = first_free; id <= last_special; ++id) {
      if (!named[id - first_free]) {
        spec.special_tokens.push_back({id, fmt::format("<|reserved_token_{}|>", id), true, false, false, false, false});
      }
    }
  }
  for (auto& token : spec.special_tokens) token.normalized = false;
  impl->added = AddedVocabulary(std::move(spec.special_tokens), nullptr);
  try {
    impl->pre_tokenizer.add(SplitPreTokenizer{std::make_shared<const Regex>(spec.pattern), "", SplitBehavior::kRemoved, true});
  } catch (const Error& error) {
    RS_FAIL("{}: pattern: {}", origin, error.what());
  }
  impl->decoder = DecoderChain({ByteLevelDecoder{}});
  impl->max_run_chars = spec.max_run_chars;
  impl->finish_loading();
  return impl;
}

}  // namespace rackserve::text
