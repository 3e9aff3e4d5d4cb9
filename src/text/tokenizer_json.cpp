// Builds a Tokenizer from Hugging Face tokenizer.json. Every component we do not
// implement is refused with an error naming its field, never ignored: a tokenizer that
// loads encodes exactly as the reference does.
#include <limits>
#include <optional>
#include <unordered_map>

#include "text/json_fields.h"
#include "text/utf8.h"
#include "text/tokenizer_impl.h"

namespace rackserve::text {
namespace {

constexpr uint64_t kMaxId = std::numeric_limits<int32_t>::max();

std::shared_ptr<const Regex> compile(const JsonField& field, const std::string& pattern) {
  try {
    return std::make_shared<const Regex>(pattern);
  } catch (const Error& error) {
    field.fail(error.what());
  }
}

// {"String": "..."} or {"Regex": "..."}: literal (regex null) or compiled regex.
std::pair<std::string, std::shared_ptr<const Regex>> parse_pattern(const JsonField& field) {
  field.expect_object();
  if (field.has("String")) return {field["String"].string(), nullptr};
  if (field.has("Regex")) return {"", compile(field["Regex"], field["Regex"].string())};
  field.fail("expected {\"String\": ...} or {\"Regex\": ...}");
}

[[noreturn]] void unsupported(const JsonField& field, const std::string& type) {
  field["type"].fail(fmt::format("\"{}\" is not supported", type));
}

void parse_normalizer(const JsonField& field, Normalizer& out) {
  const std::string type = field["type"].string();
  if (type == "Sequence") {
    const JsonField list = field["normalizers"];
    list.expect_array();
    for (size_t i = 0; i < list.size(); ++i) parse_normalizer(list.at(i), out);
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    const auto kind = type == "NFC"   ? UnicodeForm::kNFC
                      : type == "NFD" ? UnicodeForm::kNFD
                      : type == "NFKC" ? UnicodeForm::kNFKC
                                       : UnicodeForm::kNFKD;
    out.add(UnicodeForm{kind});
  } else if (type == "Replace") {
    auto [literal, regex] = parse_pattern(field["pattern"]);
    out.add(ReplaceNormalizer{std::move(literal), std::move(regex), field["content"].string()});
  } else if (type == "Prepend") {
    out.add(PrependNormalizer{field["prepend"].string()});
  } else if (type == "Lowercase") {
    out.add(LowercaseNormalizer{});
  } else if (type == "Strip") {
    out.add(StripNormalizer{field.boolean_or("strip_left", true), field.boolean_or("strip_right", true)});
  } else if (type == "StripAccents") {
    out.add(StripAccentsNormalizer{});
  } else {
    unsupported(field, type);
  }
}

SplitBehavior parse_behavior(const JsonField& field) {
  const std::string name = field.string();
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  field.fail(fmt::format("unknown behavior \"{}\"", name));
}

std::string single_char(const JsonField& field) {
  const std::string text = field.string();
  if (text.empty()) field.fail("expected one character");
  return text;
}

MetaspacePreTokenizer::Prepend parse_prepend_scheme(const JsonField& field) {
  if (field.has("prepend_scheme")) {
    const std::string scheme = field["prepend_scheme"].string();
    if (scheme == "always") return MetaspacePreTokenizer::Prepend::kAlways;
    if (scheme == "first") return MetaspacePreTokenizer::Prepend::kFirst;
    if (scheme == "never") return MetaspacePreTokenizer::Prepend::kNever;
    field["prepend_scheme"].fail(fmt::format("unknown scheme \"{}\"", scheme));
  }
  return field.boolean_or("add_prefix_space", true) ? MetaspacePreTokenizer::Prepend::kAlways
                                                    : MetaspacePreTokenizer::Prepend::kNever;
}

void parse_pre_tokenizer(const JsonField& field, PreTokenizer& out) {
  const std::string type = field["type"].string();
  auto add = [&](PreTokenizerStep step) {
    try {
      out.add(std::move(step));
    } catch (const Error& error) {
      field.fail(error.what());
    }
  };
  if (type == "Sequence") {
    const JsonField list = field["pretokenizers"];
    list.expect_array();
    for (size_t i = 0; i < list.size(); ++i) parse_pre_tokenizer(list.at(i), out);
  } else if (type == "Split") {
    auto [literal, regex] = parse_pattern(field["pattern"]);
    add(SplitPreTokenizer{std::move(regex), std::move(literal), parse_behavior(field["behavior"]),
                          field.boolean_or("invert", false)});
  } else if (type == "ByteLevel") {
    add(ByteLevelPreTokenizer{field.boolean_or("add_prefix_space", true), field.boolean_or("use_regex", true)});
  } else if (type == "Digits") {
    add(DigitsPreTokenizer{field.boolean_or("individual_digits", false)});
  } else if (type == "Metaspace") {
    add(MetaspacePreTokenizer{single_char(field["replacement"]), parse_prepend_scheme(field), field.boolean_or("split", true)});
  } else if (type == "Whitespace") {
    add(WhitespacePreTokenizer{});
  } else if (type == "WhitespaceSplit") {
    add(WhitespaceSplitPreTokenizer{});
  } else if (type == "CharDelimiterSplit") {
    const std::string delimiter = single_char(field["delimiter"]);
    size_t pos = 0;
    add(CharDelimiterPreTokenizer{utf8::decode(delimiter, pos)});
  } else {
    unsupported(field, type);
  }
}

void parse_decoder(const JsonField& field, std::vector<DecoderStep>& out) {
  const std::string type = field["type"].string();
  if (type == "Sequence") {
    const JsonField list = field["decoders"];
    list.expect_array();
    for (size_t i = 0; i < list.size(); ++i) parse_decoder(list.at(i), out);
  } else if (type == "ByteLevel") {
    out.push_back(ByteLevelDecoder{});
  } else if (type == "ByteFallback") {
    out.push_back(ByteFallbackDecoder{});
  } else if (type == "Fuse") {
    out.push_back(FuseDecoder{});
  } else if (type == "Strip") {
    const std::string content = single_char(field["content"]);
    size_t pos = 0;
    out.push_back(StripDecoder{utf8::decode(content, pos), field["start"].unsigned_integer(1u << 20),
                               field["stop"].unsigned_integer(1u << 20)});
  } else if (type == "Replace") {
    auto [literal, regex] = parse_pattern(field["pattern"]);
    out.push_back(ReplaceDecoder{std::move(literal), std::move(regex), field["content"].string()});
  } else if (type == "Metaspace") {
    out.push_back(MetaspaceDecoder{single_char(field["replacement"]),
                                   parse_prepend_scheme(field) != MetaspacePreTokenizer::Prepend::kNever});
  } else {
    unsupported(field, type);
  }
}

// The ids of a special token named in a template, from the template's own table.
std::vector<TokenId> template_token_ids(const JsonField& processor, const std::string& name) {
  const JsonField table = processor["special_tokens"];
  if (!table.has(name)) table.fail(fmt::format("no entry for \"{}\"", name));
  const JsonField ids = table[name]["ids"];
  ids.expect_array();
  std::vector<TokenId> out;
  for (size_t i = 0; i < ids.size(); ++i) out.push_back(static_cast<TokenId>(ids.at(i).unsigned_integer(kMaxId)));
  return out;
}

PostProcessor parse_post_processor(const JsonField& field) {
  const std::string type = field["type"].string();
  PostProcessor out;
  if (type == "ByteLevel") return out;  // offsets only
  if (type == "Sequence") {
    const JsonField list = field["processors"];
    list.expect_array();
    for (size_t i = 0; i < list.size(); ++i) {
      PostProcessor inner = parse_post_processor(list.at(i));
      out.prefix.insert(out.prefix.begin(), inner.prefix.begin(), inner.prefix.end());
      out.suffix.insert(out.suffix.end(), inner.suffix.begin(), inner.suffix.end());
    }
    return out;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    out.prefix = {static_cast<TokenId>(field["cls"].at(1).unsigned_integer(kMaxId))};
    out.suffix = {static_cast<TokenId>(field["sep"].at(1).unsigned_integer(kMaxId))};
    return out;
  }
  if (type != "TemplateProcessing") unsupported(field, type);
  const JsonField single = field["single"];
  single.expect_array();
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const JsonField item = single.at(i);
    if (item.has("Sequence")) {
      if (item["Sequence"]["id"].string() != "A") item["Sequence"]["id"].fail("a single-sequence template can only hold $A");
      if (seen_sequence) item.fail("$A appears twice");
      seen_sequence = true;
    } else if (item.has("SpecialToken")) {
      auto ids = template_token_ids(field, item["SpecialToken"]["id"].string());
      auto& target = seen_sequence ? out.suffix : out.prefix;
      target.insert(target.end(), ids.begin(), ids.end());
    } else {
      item.fail("expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
  }
  if (!seen_sequence) single.fail("the template has no $A");
  return out;
}

std::unique_ptr<BpeModel> parse_model(const JsonField& field, bool byte_level) {
  field.expect_object();
  const std::string type = field.string_or("type", "BPE");
  if (type != "BPE") field["type"].fail(fmt::format("\"{}\" is not supported (BPE only)", type));
  if (field.has("dropout")) {
    const auto& dropout = field["dropout"].json();
    if (!dropout.is_number() || dropout.get<double>() != 0.0) field["dropout"].fail("BPE dropout is not supported");
  }
  BpeOptions options;
  options.byte_level = byte_level;
  options.byte_fallback = field.boolean_or("byte_fallback", false);
  options.ignore_merges = field.boolean_or("ignore_merges", false);
  options.fuse_unk = field.boolean_or("fuse_unk", false);
  if (field.has("unk_token")) options.unk_token = field["unk_token"].string();
  options.continuing_subword_prefix = field.string_or("continuing_subword_prefix", "");
  options.end_of_word_suffix = field.string_or("end_of_word_suffix", "");

  const JsonField vocab_field = field["vocab"];
  vocab_field.expect_object();
  std::vector<std::pair<std::string, TokenId>> vocab;
  vocab.reserve(vocab_field.size());
  for (const auto& [token, id] : vocab_field.json().items()) {
    if (!id.is_number_unsigned() || id.get<uint64_t>() > kMaxId) {
      vocab_field.fail(fmt::format("token {}: expected an id in [0, {}], got {}", utf8::quoted(token), kMaxId, id.dump()));
    }
    vocab.emplace_back(token, static_cast<TokenId>(id.get<uint64_t>()));
  }

  const JsonField merges_field = field["merges"];
  merges_field.expect_array();
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(merges_field.size());
  for (size_t i = 0; i < merges_field.size(); ++i) {
    const JsonField merge = merges_field.at(i);
    if (merge.json().is_string()) {
      const std::string line = merge.string();
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        merge.fail(fmt::format("expected \"left right\" with one space, got {}", utf8::quoted(line)));
      }
      merges.emplace_back(line.substr(0, space), line.substr(space + 1));
    } else if (merge.json().is_array() && merge.size() == 2) {
      merges.emplace_back(merge.at(0).string(), merge.at(1).string());
    } else {
      merge.fail("expected \"left right\" or [\"left\", \"right\"]");
    }
  }
  try {
    return std::make_unique<BpeModel>(vocab, merges, std::move(options));
  } catch (const Error& error) {
    field.fail(error.what());
  }
}

std::vector<AddedToken> parse_added_tokens(const JsonField& field) {
  std::vector<AddedToken> out;
  field.expect_array();
  for (size_t i = 0; i < field.size(); ++i) {
    const JsonField entry = field.at(i);
    AddedToken token;
    token.id = static_cast<TokenId>(entry["id"].unsigned_integer(kMaxId));
    token.content = entry["content"].string();
    if (token.content.empty()) entry["content"].fail("an added token cannot be empty");
    token.special = entry.boolean_or("special", false);
    token.lstrip = entry.boolean_or("lstrip", false);
    token.rstrip = entry.boolean_or("rstrip", false);
    token.single_word = entry.boolean_or("single_word", false);
    token.normalized = entry.boolean_or("normalized", !token.special);
    out.push_back(std::move(token));
  }
  return out;
}

// tokenizers does not trust the ids written in "added_tokens": it adds the tokens in
// order, giving each the id its content already has (an earlier added token, else the
// model's vocabulary), else the next id after max(vocabulary entries - 1, largest added
// id). A later entry with the same content replaces the earlier one. We do the same, so
// that a tokenizer.json edited by hand encodes as the reference does.
std::vector<AddedToken> assign_added_token_ids(std::vector<AddedToken> tokens, const BpeModel& model,
                                               size_t vocab_entries) {
  std::vector<AddedToken> out;
  std::unordered_map<std::string, size_t> index_by_content;
  std::optional<TokenId> largest;
  for (AddedToken& token : tokens) {
    if (auto it = index_by_content.find(token.content); it != index_by_content.end()) {
      token.id = out[it->second].id;
      out[it->second] = std::move(token);
      continue;
    }
    if (auto id = model.find(token.content)) {
      token.id = *id;
    } else if (largest && (*largest >= vocab_entries || vocab_entries == 0)) {
      token.id = *largest + 1;
    } else {
      token.id = static_cast<TokenId>(vocab_entries);
    }
    largest = std::max(largest.value_or(0), token.id);
    index_by_content.emplace(token.content, out.size());
    out.push_back(std::move(token));
  }
  return out;
}

}  // namespace

std::shared_ptr<Tokenizer::Impl> load_tokenizer_json(std::string_view json_text, std::string_view origin_view) {
  const std::string origin(origin_view);
  nlohmann::json document;
  try {
    document = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& error) {
    RS_FAIL("{}: not valid JSON: {}", origin, error.what());
  }
  const JsonField root(document, origin, "");
  root.expect_object();
  auto impl = std::make_shared<Tokenizer::Impl>();
  if (root.has("normalizer")) parse_normalizer(root["normalizer"], impl->normalizer);
  if (root.has("pre_tokenizer")) parse_pre_tokenizer(root["pre_tokenizer"], impl->pre_tokenizer);
  impl->model = parse_model(root["model"], impl->pre_tokenizer.byte_level());
  std::vector<AddedToken> added_tokens;
  if (root.has("added_tokens")) {
    added_tokens = assign_added_token_ids(parse_added_tokens(root["added_tokens"]), *impl->model,
                                          root["model"]["vocab"].size());
  }
  impl->added = AddedVocabulary(std::move(added_tokens), impl->normalizer.empty() ? nullptr : &impl->normalizer);
  if (root.has("post_processor")) impl->post_processor = parse_post_processor(root["post_processor"]);
  if (root.has("decoder")) {
    std::vector<DecoderStep> steps;
    parse_decoder(root["decoder"], steps);
    impl->decoder = DecoderChain(std::move(steps));
  }
  impl->finish_loading();
  return impl;
}

}  // namespace rackserve::text
