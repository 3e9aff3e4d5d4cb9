// The streaming decoder chain (see decoder.h). Each step is a Stage that receives
// tokens (or, after Fuse/ByteLevel, chunks of one text) and passes results on; a step
// whose text-mode behaviour cannot be streamed exactly buffers until finish().
#include "text/decoder.h"

#include <optional>

#include "core/error.h"
#include "text/byte_level.h"
#include "text/normalizer.h"
#include "text/utf8.h"

namespace rackserve::text {
namespace {

using Pieces = std::vector<std::string>;

// ByteLevel on one token: its bytes when every character is in the byte alphabet,
// otherwise its UTF-8 as is (tokenizers does the same for added tokens).
std::string byte_level_bytes(const std::string& token) {
  auto bytes = byte_level::to_bytes(token);
  return bytes ? std::move(*bytes) : token;
}

std::optional<unsigned char> fallback_byte(std::string_view token) {
  if (token.size() != 6 || !token.starts_with("<0x") || token.back() != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const int high = hex(token[3]);
  const int low = hex(token[4]);
  if (high < 0 || low < 0) return std::nullopt;
  return static_cast<unsigned char>(high * 16 + low);
}

void flush_fallback(std::string& group, size_t count, Pieces& out) {
  if (count == 0) return;
  if (utf8::find_invalid(group) == std::string_view::npos) {
    out.push_back(group);
  } else {
    for (size_t i = 0; i < count; ++i) out.emplace_back(utf8::kReplacement);
  }
  group.clear();
}

std::string strip_token(const StripDecoder& strip, const std::string& token) {
  std::vector<std::pair<size_t, char32_t>> chars;  // (byte offset, code point)
  size_t pos = 0;
  while (pos < token.size()) {
    const size_t start = pos;
    chars.emplace_back(start, utf8::decode(token, pos));
  }
  size_t start_cut = 0;
  for (size_t i = 0; i < std::min(strip.start, chars.size()) && chars[i].second == strip.content; ++i) start_cut = i + 1;
  size_t stop_cut = chars.size();
  for (size_t i = 0; i < std::min(strip.stop, chars.size()); ++i) {
    const size_t index = chars.size() - i - 1;
    if (chars[index].second != strip.content) break;
    stop_cut = index;
  }
  if (stop_cut <= start_cut) return {};
  const size_t begin = chars[start_cut].first;
  const size_t end = stop_cut < chars.size() ? chars[stop_cut].first : token.size();
  return token.substr(begin, end - begin);
}

std::string replace_token(const ReplaceDecoder& replace, const std::string& token) {
  if (!replace.regex) return replace_all(token, replace.literal, replace.content);
  std::string out;
  size_t last = 0;
  replace.regex->for_each_match(token, [&](size_t start, size_t end) {
    out.append(token, last, start - last);
    out.append(replace.content);
    last = end;
  });
  out.append(token, last);
  return out;
}

std::string metaspace_token(const MetaspaceDecoder& metaspace, const std::string& token, bool first) {
  return replace_all(token, metaspace.replacement, first && metaspace.strip_first ? "" : " ");
}

// tokenizers' decode_chain for one step over a whole token list (used when buffering).
Pieces apply_whole(const DecoderStep& step, const Pieces& tokens) {
  Pieces out;
  if (std::holds_alternative<ByteLevelDecoder>(step)) {
    std::string bytes;
    for (const auto& token : tokens) bytes += byte_level_bytes(token);
    std::string text;
    utf8::append_lossy(text, bytes);
    out.push_back(std::move(text));
  } else if (std::holds_alternative<ByteFallbackDecoder>(step)) {
    std::string group;
    size_t count = 0;
    for (const auto& token : tokens) {
      if (auto byte = fallback_byte(token)) {
        group.push_back(static_cast<char>(*byte));
        ++count;
        continue;
      }
      flush_fallback(group, count, out);
      count = 0;
      out.push_back(token);
    }
    flush_fallback(group, count, out);
  } else if (std::holds_alternative<FuseDecoder>(step)) {
    std::string joined;
    for (const auto& token : tokens) joined += token;
    out.push_back(std::move(joined));
  } else if (const auto* strip = std::get_if<StripDecoder>(&step)) {
    for (const auto& token : tokens) out.push_back(strip_token(*strip, token));
  } else if (const auto* replace = std::get_if<ReplaceDecoder>(&step)) {
    for (const auto& token : tokens) out.push_back(replace_token(*replace, token));
  } else if (const auto* metaspace = std::get_if<MetaspaceDecoder>(&step)) {
    for (size_t i = 0; i < tokens.size(); ++i) out.push_back(metaspace_token(*metaspace, tokens[i], i == 0));
  }
  return out;
}

}  // namespace

struct DecodeStream::Stage {
  virtual ~Stage() = default;
  virtual void push(std::string piece, Pieces& out) = 0;
  virtual void finish(Pieces& out) = 0;
};

namespace {

using Stage = DecodeStream::Stage;

// Text mode, not streamable: collects the one text and decodes it at the end.
struct BufferStage : Stage {
  explicit BufferStage(DecoderStep step) : step(std::move(step)) {}
  void push(std::string piece, Pieces&) override { text += piece; }
  void finish(Pieces& out) override {
    for (auto& piece : apply_whole(step, Pieces{text})) out.push_back(std::move(piece));
  }
  DecoderStep step;
  std::string text;
};

struct ByteLevelStage : Stage {
  void push(std::string piece, Pieces& out) override {
    std::string text;
    decoder.push(byte_level_bytes(piece), text);
    if (!text.empty()) out.push_back(std::move(text));
  }
  void finish(Pieces& out) override {
    std::string text;
    decoder.finish(text);
    if (!text.empty()) out.push_back(std::move(text));
  }
  utf8::LossyDecoder decoder;
};

struct ByteFallbackStage : Stage {
  void push(std::string piece, Pieces& out) override {
    if (auto byte = fallback_byte(piece)) {
      group.push_back(static_cast<char>(*byte));
      ++count;
      return;
    }
    flush_fallback(group, count, out);
    count = 0;
    out.push_back(std::move(piece));
  }
  void finish(Pieces& out) override {
    flush_fallback(group, count, out);
    count = 0;
  }
  std::string group;
  size_t count = 0;
};

struct PassStage : Stage {  // Fuse: tokens become chunks of one text
  void push(std::string piece, Pieces& out) override { out.push_back(std::move(piece)); }
  void finish(Pieces&) override {}
};

struct TokenStage : Stage {  // Strip, Replace, Metaspace on separate tokens
  explicit TokenStage(DecoderStep step) : step(std::move(step)) {}
  void push(std::string piece, Pieces& out) override {
    if (const auto* strip = std::get_if<StripDecoder>(&step)) {
      out.push_back(strip_token(*strip, piece));
    } else if (const auto* replace = std::get_if<ReplaceDecoder>(&step)) {
      out.push_back(replace_token(*replace, piece));
    } else {
      out.push_back(metaspace_token(std::get<MetaspaceDecoder>(step), piece, index == 0));
    }
    ++index;
  }
  void finish(Pieces&) override {}
  DecoderStep step;
  size_t index = 0;
};

// Strip on one growing text: leading characters go while the text has not started,
// trailing ones are held back until more text shows they are not at the end.
struct TextStripStage : Stage {
  explicit TextStripStage(StripDecoder strip) : strip(strip) {}
  void push(std::string piece, Pieces& out) override {
    size_t pos = 0;
    while (started_count < strip.start && pos < piece.size()) {
      size_t next = pos;
      if (utf8::decode(piece, next) != strip.content) {
        started_count = strip.start;
        break;
      }
      pos = next;
      ++started_count;
    }
    if (pos < piece.size()) started_count = strip.start;
    held += piece.substr(pos);
    // Hold back the trailing run of `content`, at most `stop` characters of it.
    size_t cut = held.size();
    size_t run = 0;
    while (run < strip.stop && cut > 0) {
      size_t begin = cut - 1;
      while (begin > 0 && (static_cast<unsigned char>(held[begin]) & 0xC0) == 0x80) --begin;
      size_t probe = begin;
      if (utf8::decode(held, probe) != strip.content) break;
      cut = begin;
      ++run;
    }
    if (cut > 0) {
      out.push_back(held.substr(0, cut));
      held.erase(0, cut);
    }
  }
  void finish(Pieces&) override { held.clear(); }  // only removable characters are held
  StripDecoder strip;
  size_t started_count = 0;
  std::string held;
};

// Literal Replace on one growing text: holds back a tail that may begin an occurrence.
struct TextReplaceStage : Stage {
  explicit TextReplaceStage(ReplaceDecoder replace) : replace(std::move(replace)) {}
  void push(std::string piece, Pieces& out) override {
    held += piece;
    const std::string& pattern = replace.literal;
    std::string emitted;
    size_t last = 0;
    for (size_t found = held.find(pattern); !pattern.empty() && found != std::string::npos; found = held.find(pattern, last)) {
      emitted.append(held, last, found - last);
      emitted.append(replace.content);
      last = found + pattern.size();
    }
    size_t keep = 0;
    for (size_t k = std::min(pattern.size() - 1, held.size() - last); k > 0 && pattern.size() > 1; --k) {
      if (held.compare(held.size() - k, k, pattern, 0, k) == 0) {
        keep = k;
        break;
      }
    }
    emitted.append(held, last, held.size() - last - keep);
    held.erase(0, held.size() - keep);
    if (!emitted.empty()) out.push_back(std::move(emitted));
  }
  void finish(Pieces& out) override {
    if (!held.empty()) out.push_back(std::move(held));
    held.clear();
  }
  ReplaceDecoder replace;
  std::string held;
};

struct TextMetaspaceStage : Stage {  // after Fuse every character belongs to token 0
  explicit TextMetaspaceStage(MetaspaceDecoder metaspace) : metaspace(std::move(metaspace)) {}
  void push(std::string piece, Pieces& out) override { out.push_back(metaspace_token(metaspace, piece, true)); }
  void finish(Pieces&) override {}
  MetaspaceDecoder metaspace;
};

std::unique_ptr<Stage> make_stage(const DecoderStep& step, bool text_mode) {
  if (!text_mode) {
    if (std::holds_alternative<ByteLevelDecoder>(step)) return std::make_unique<ByteLevelStage>();
    if (std::holds_alternative<ByteFallbackDecoder>(step)) return std::make_unique<ByteFallbackStage>();
    if (std::holds_alternative<FuseDecoder>(step)) return std::make_unique<PassStage>();
    return std::make_unique<TokenStage>(step);
  }
  if (std::holds_alternative<FuseDecoder>(step)) return std::make_unique<PassStage>();
  if (const auto* strip = std::get_if<StripDecoder>(&step)) return std::make_unique<TextStripStage>(*strip);
  if (const auto* replace = std::get_if<ReplaceDecoder>(&step); replace && !replace->regex) {
    return std::make_unique<TextReplaceStage>(*replace);
  }
  if (const auto* metaspace = std::get_if<MetaspaceDecoder>(&step)) return std::make_unique<TextMetaspaceStage>(*metaspace);
  return std::make_unique<BufferStage>(step);
}

}  // namespace

DecoderChain::DecoderChain(std::vector<DecoderStep> steps) : steps_(std::move(steps)), has_decoder_(true) {
  byte_level_only_ = steps_.size() == 1 && std::holds_alternative<ByteLevelDecoder>(steps_[0]);
}

DecodeStream::DecodeStream(const DecoderChain& chain, const DecodeTables& tables, bool skip_special_tokens)
    : chain_(&chain), tables_(&tables), skip_special_(skip_special_tokens) {
  if (chain.byte_level_only()) return;
  bool text_mode = false;
  for (const auto& step : chain.steps()) {
    stages_.push_back(make_stage(step, text_mode));
    text_mode = text_mode || std::holds_alternative<FuseDecoder>(step) || std::holds_alternative<ByteLevelDecoder>(step);
  }
}

DecodeStream::~DecodeStream() = default;
DecodeStream::DecodeStream(DecodeStream&&) noexcept = default;
DecodeStream& DecodeStream::operator=(DecodeStream&&) noexcept = default;

void DecodeStream::run_from(size_t stage, std::string piece, std::string& out) {
  if (stage == stages_.size()) {
    out += piece;
    return;
  }
  Pieces produced;
  stages_[stage]->push(std::move(piece), produced);
  for (auto& next : produced) run_from(stage + 1, std::move(next), out);
}

std::string DecodeStream::step(TokenId id) {
  RS_CHECK(id < tables_->flags.size() && (tables_->flags[id] & DecodeTables::kPresent),
           "token id {} is not in the vocabulary", id);
  if (skip_special_ && (tables_->flags[id] & DecodeTables::kSpecial)) return {};
  std::string out;
  if (chain_->byte_level_only()) {
    byte_decoder_.push(tables_->bytes[id], out);
    return out;
  }
  if (!chain_->has_decoder()) {
    if (!first_token_) out += ' ';
    first_token_ = false;
    out += tables_->token[id];
    return out;
  }
  run_from(0, tables_->token[id], out);
  return out;
}

std::string DecodeStream::finish() {
  std::string out;
  if (chain_->byte_level_only()) byte_decoder_.finish(out);
  for (size_t stage = 0; stage < stages_.size(); ++stage) {
    Pieces produced;
    stages_[stage]->finish(produced);
    for (auto& piece : produced) run_from(stage + 1, std::move(piece), out);
  }
  return out;
}

}  // namespace rackserve::text
