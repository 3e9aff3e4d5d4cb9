// libFuzzer target for the tokenizer (build with -DRACKSERVE_FUZZ=ON and clang). The
// first input byte picks what the rest is fed to:
//   0  text to encode with every fixture tokenizer; invalid UTF-8 must be refused with a
//      rackserve::Error, valid text must encode, and its ids must decode the same way
//      all at once and streamed (no partial UTF-8 in any streamed piece)
//   1  token ids (little-endian u16, reduced modulo the vocabulary) to decode, full and
//      streamed, keeping and skipping special tokens
//   2  a tokenizer.json document    3  a regex pattern (translated to PCRE2, then run)
//   4  a tiktoken rank file
// Anything a user can send must end in a result or a rackserve::Error: any other
// exception, a crash or a sanitizer report is a finding.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "text/regex.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace {

using rackserve::text::Tokenizer;
using rackserve::text::TokenId;

const std::vector<Tokenizer>& tokenizers() {
  static const std::vector<Tokenizer> loaded = [] {
    std::vector<Tokenizer> out;
    const std::filesystem::path root = std::filesystem::path(RACKSERVE_TEST_DATA_DIR) / "tokenizers";
    for (const char* name : {"deepseek_v3", "glm_bytelevel", "gpt2_digits", "split_behaviours", "llama_byte_fallback",
                             "metaspace_nfkc", "kimi_tiktoken"}) {
      out.push_back(Tokenizer::from_directory(root / name));
    }
    return out;
  }();
  return loaded;
}

void require(bool condition, const char* what) {
  if (!condition) {
    fprintf(stderr, "invariant broken: %s\n", what);
    abort();
  }
}

void check_decode(const Tokenizer& tokenizer, const std::vector<TokenId>& ids) {
  for (const bool skip : {false, true}) {
    const std::string full = tokenizer.decode(ids, skip);
    require(rackserve::text::utf8::find_invalid(full) == std::string::npos, "decode gave invalid UTF-8");
    auto stream = tokenizer.decode_stream(skip);
    std::string streamed;
    for (TokenId id : ids) {
      const std::string piece = stream.step(id);
      require(rackserve::text::utf8::find_invalid(piece) == std::string::npos, "stream emitted partial UTF-8");
      streamed += piece;
    }
    streamed += stream.finish();
    require(streamed == full, "streamed decode differs from full decode");
  }
}

void fuzz_encode(std::string_view text) {
  const bool valid = rackserve::text::utf8::find_invalid(text) == std::string::npos;
  for (const Tokenizer& tokenizer : tokenizers()) {
    std::vector<TokenId> ids;
    try {
      ids = tokenizer.encode(text);
    } catch (const rackserve::Error&) {
      require(!valid, "valid UTF-8 was refused");
      continue;
    }
    require(valid, "invalid UTF-8 was encoded");
    check_decode(tokenizer, ids);
  }
}

void fuzz_decode(std::string_view bytes) {
  for (const Tokenizer& tokenizer : tokenizers()) {
    std::vector<TokenId> ids;
    for (size_t i = 0; i + 1 < bytes.size(); i += 2) {
      const auto value = static_cast<TokenId>(static_cast<unsigned char>(bytes[i]) | (static_cast<unsigned char>(bytes[i + 1]) << 8));
      const TokenId id = value % tokenizer.vocab_size();
      if (tokenizer.id_to_token(id)) ids.push_back(id);
    }
    check_decode(tokenizer, ids);
  }
}

void fuzz_tokenizer_json(std::string_view json) {
  try {
    const Tokenizer tokenizer = Tokenizer::from_tokenizer_json(json, "fuzz");
    check_decode(tokenizer, tokenizer.encode("Hello, world! 你好 <s> 123"));
  } catch (const rackserve::Error&) {
  }
}

void fuzz_regex(std::string_view pattern) {
  try {
    const rackserve::text::Regex regex(pattern);
    const std::string_view text = "it's 漢字 and カナ, 123 \xC2\x85 tabs\t\tend";
    size_t last = 0;
    regex.for_each_match(text, [&](size_t start, size_t end) {
      require(start >= last && start <= end && end <= text.size(), "match out of order or out of range");
      last = end;
    });
  } catch (const rackserve::Error&) {
  }
}

void fuzz_tiktoken(std::string_view ranks) {
  try {
    const Tokenizer tokenizer = Tokenizer::from_tiktoken(ranks, {"\\p{L}+|\\p{N}+|\\s+|[^\\s\\p{L}\\p{N}]+", {}, 0}, "fuzz");
    check_decode(tokenizer, tokenizer.encode("abc 123 \xE4\xBD\xA0"));
  } catch (const rackserve::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 5) {
    case 0: fuzz_encode(rest); break;
    case 1: fuzz_decode(rest); break;
    case 2: fuzz_tokenizer_json(rest); break;
    case 3: fuzz_regex(rest); break;
    default: fuzz_tiktoken(rest); break;
  }
  return 0;
}
