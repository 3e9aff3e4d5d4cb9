// Tokenizer: the encode pipeline (added tokens, normalizer, pre-tokenizer, BPE,
// post-processor), decoding through DecodeStream, and loading from a model directory.
#include "text/tokenizer.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/byte_level.h"
#include "text/tokenizer_impl.h"
#include "text/utf8.h"

namespace rackserve::text {
namespace {

// Python's str.isspace(), which Kimi's run splitting uses.
bool is_python_space(char32_t c) { return is_white_space(c) || (c >= 0x1C && c <= 0x1F); }

// Kimi's _split_whitespaces_or_nonwhitespaces: cuts `text` so that no piece holds more
// than `limit` consecutive whitespace or non-whitespace characters.
template <typename OnPiece>
void split_runs(std::string_view text, size_t limit, OnPiece&& on_piece) {
  size_t slice_start = 0;
  size_t run = 0;
  bool run_is_space = false;
  size_t pos = 0;
  bool first = true;
  while (pos < text.size()) {
    const size_t at = pos;
    const bool space = is_python_space(utf8::decode(text, pos));
    if (first) run_is_space = space;
    first = false;
    if (space != run_is_space) {
      run = 1;
      run_is_space = space;
    } else if (++run > limit) {
      on_piece(text.substr(slice_start, at - slice_start));
      slice_start = at;
      run = 1;
    }
  }
  on_piece(text.substr(slice_start));
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  RS_CHECK(in, "cannot open {}", path.string());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Transformers rebuilds the template of Llama-class tokenizers from
// tokenizer_config.json (add_bos_token, add_eos_token), overriding tokenizer.json.
void apply_llama_template(const nlohmann::json& config, const Tokenizer::Impl& tokenizer, PostProcessor& post) {
  const std::string cls = config.value("tokenizer_class", "");
  if (cls != "LlamaTokenizerFast" && cls != "LlamaTokenizer") return;
  auto token_content = [&](const char* key) -> std::optional<std::string> {
    if (!config.contains(key) || config[key].is_null()) return std::nullopt;
    const auto& value = config[key];
    if (value.is_string()) return value.get<std::string>();
    if (value.is_object() && value.contains("content") && value["content"].is_string()) return value["content"].get<std::string>();
    return std::nullopt;
  };
  auto id_of = [&](const char* key, bool wanted) -> std::vector<TokenId> {
    if (!wanted) return {};
    auto content = token_content(key);
    if (!content) return {};
    auto id = tokenizer.token_to_id(*content);
    RS_CHECK(id.has_value(), "tokenizer_config.json: {} {} is not a token", key, utf8::quoted(*content));
    return {*id};
  };
  const auto add_bos = config.value("add_bos_token", true);
  const auto add_eos = config.value("add_eos_token", false);
  post.prefix = id_of("bos_token", add_bos);
  post.suffix = id_of("eos_token", add_eos);
}

}  // namespace

void Tokenizer::Impl::finish_loading() {
  size_t limit = model->id_limit();
  for (const auto& token : added.tokens()) limit = std::max<size_t>(limit, token.id + 1);
  tables.token.assign(limit, {});
  tables.flags.assign(limit, 0);
  const bool fill_bytes = decoder.byte_level_only();
  if (fill_bytes) tables.bytes.assign(limit, {});
  for (TokenId id = 0; id < model->id_limit(); ++id) {
    const std::string* spelling = model->token(id);
    if (spelling == nullptr) continue;
    tables.flags[id] = DecodeTables::kPresent;
    if (model->uses_ranks()) {
      tables.token[id] = byte_level::to_chars(*spelling);
      if (fill_bytes) tables.bytes[id] = *spelling;
    } else {
      tables.token[id] = *spelling;
      if (fill_bytes) {
        auto bytes = byte_level::to_bytes(*spelling);
        tables.bytes[id] = bytes ? std::move(*bytes) : *spelling;
      }
    }
  }
  // Added tokens win over the model's spelling of the same id, as in tokenizers, which
  // also decodes a normalized added token in its normalized spelling.
  for (const auto& token : added.tokens()) {
    tables.token[token.id] = token.normalized && !normalizer.empty() ? normalizer.apply(token.content) : token.content;
    tables.flags[token.id] = DecodeTables::kPresent | (token.special ? DecodeTables::kSpecial : 0);
    if (fill_bytes) {
      auto bytes = model->uses_ranks() ? std::nullopt : byte_level::to_bytes(tables.token[token.id]);
      tables.bytes[token.id] = bytes ? std::move(*bytes) : tables.token[token.id];
    }
  }
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  const Impl& impl = *impl_;
  if (const size_t bad = utf8::find_invalid(text); bad != std::string_view::npos) {
    RS_FAIL("input text is not valid UTF-8: invalid byte 0x{:02X} at offset {}", static_cast<unsigned char>(text[bad]), bad);
  }
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 4);
  if (options.add_special_tokens) ids = impl.post_processor.prefix;
  const bool include_special = !options.split_special_tokens;

  PieceList pieces;
  auto encode_text = [&](std::string_view segment, bool at_origin) {
    pieces.storage.clear();
    pieces.pieces.clear();
    impl.pre_tokenizer.apply(segment, at_origin, pieces);
    for (const auto& piece : pieces.pieces) impl.model->encode(pieces.view(piece), ids);
  };
  auto encode_normalized = [&](std::string_view segment, bool at_origin) {
    if (impl.max_run_chars == 0) {
      encode_text(segment, at_origin);
      return;
    }
    split_runs(segment, impl.max_run_chars, [&](std::string_view run) {
      encode_text(run, at_origin && run.data() == segment.data());
    });
  };

  std::vector<TextSegment> raw_segments;
  impl.added.split(text, /*normalized_kind=*/false, include_special, raw_segments);
  std::vector<TextSegment> normalized_segments;
  for (const TextSegment& segment : raw_segments) {
    if (segment.id) {
      ids.push_back(*segment.id);
      continue;
    }
    const bool at_origin = segment.text.data() == text.data();
    if (impl.normalizer.empty() && !impl.added.has_normalized_tokens()) {
      encode_normalized(segment.text, at_origin);
      continue;
    }
    const std::string normalized = impl.normalizer.empty() ? std::string(segment.text) : impl.normalizer.apply(segment.text);
    normalized_segments.clear();
    impl.added.split(normalized, /*normalized_kind=*/true, include_special, normalized_segments);
    for (const TextSegment& inner : normalized_segments) {
      if (inner.id) {
        ids.push_back(*inner.id);
      } else {
        encode_normalized(inner.text, at_origin && inner.text.data() == normalized.data());
      }
    }
  }
  if (options.add_special_tokens) ids.insert(ids.end(), impl.post_processor.suffix.begin(), impl.post_processor.suffix.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool skip_special_tokens) const {
  DecodeStream stream = decode_stream(skip_special_tokens);
  std::string out;
  for (TokenId id : ids) out += stream.step(id);
  out += stream.finish();
  return out;
}

DecodeStream Tokenizer::decode_stream(bool skip_special_tokens) const {
  return DecodeStream(impl_->decoder, impl_->tables, skip_special_tokens);
}

size_t Tokenizer::vocab_size() const { return impl_->tables.flags.size(); }

std::optional<TokenId> Tokenizer::Impl::token_to_id(std::string_view token) const {
  if (const AddedToken* added_token = added.find(token)) return added_token->id;
  if (model->uses_ranks()) {
    auto bytes = byte_level::to_bytes(token);
    return bytes ? model->find(*bytes) : std::nullopt;
  }
  return model->find(token);
}

std::optional<TokenId> Tokenizer::token_to_id(std::string_view token) const { return impl_->token_to_id(token); }

std::optional<std::string> Tokenizer::id_to_token(TokenId id) const {
  if (id >= impl_->tables.flags.size() || !(impl_->tables.flags[id] & DecodeTables::kPresent)) return std::nullopt;
  return impl_->tables.token[id];
}

bool Tokenizer::is_special(TokenId id) const {
  return id < impl_->tables.flags.size() && (impl_->tables.flags[id] & DecodeTables::kSpecial);
}

const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added.tokens(); }

std::optional<std::vector<std::string>> Tokenizer::raw_token_bytes() const {
  const DecodeTables& tables = impl_->tables;
  if (!impl_->decoder.byte_level_only()) return std::nullopt;
  std::vector<std::string> bytes(tables.flags.size());
  for (size_t id = 0; id < bytes.size(); ++id) {
    const bool text = (tables.flags[id] & DecodeTables::kPresent) && !(tables.flags[id] & DecodeTables::kSpecial);
    if (text) bytes[id] = tables.bytes[id];
  }
  return bytes;
}

Tokenizer Tokenizer::from_tokenizer_json(std::string_view json_text, std::string_view origin) {
  return Tokenizer(load_tokenizer_json(json_text, origin));
}

Tokenizer Tokenizer::from_tiktoken(std::string_view rank_file, TiktokenSpec spec, std::string_view origin) {
  return Tokenizer(load_tiktoken(rank_file, std::move(spec), origin));
}

Tokenizer Tokenizer::from_directory(const std::filesystem::path& dir) {
  const auto config_path = dir / "tokenizer_config.json";
  nlohmann::json config = nlohmann::json::object();
  if (std::filesystem::exists(config_path)) {
    try {
      config = nlohmann::json::parse(read_file(config_path));
    } catch (const nlohmann::json::exception& error) {
      RS_FAIL("{}: not valid JSON: {}", config_path.string(), error.what());
    }
    RS_CHECK(config.is_object(), "{}: expected a JSON object", config_path.string());
  }
  const auto json_path = dir / "tokenizer.json";
  if (std::filesystem::exists(json_path)) {
    std::shared_ptr<Impl> impl = load_tokenizer_json(read_file(json_path), json_path.string());
    apply_llama_template(config, *impl, impl->post_processor);
    return Tokenizer(std::move(impl));
  }
  const auto tiktoken_path = dir / "tiktoken.model";
  RS_CHECK(std::filesystem::exists(tiktoken_path), "{}: no tokenizer.json or tiktoken.model", dir.string());
  return Tokenizer(load_tiktoken(read_file(tiktoken_path), tiktoken_spec_from_config(config, config_path.string()),
                                 tiktoken_path.string()));
}

}  // namespace rackserve::text
