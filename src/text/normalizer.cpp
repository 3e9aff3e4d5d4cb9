// Normalizer steps (see normalizer.h). Unicode normalization and case mapping go
// through ICU on UTF-16; everything else works on UTF-8 directly.
#include "text/normalizer.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/ustring.h>

#include "core/error.h"
#include "text/utf8.h"

namespace rackserve::text {
namespace {

const icu::Normalizer2& icu_normalizer(UnicodeForm::Kind kind) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* normalizer = nullptr;
  switch (kind) {
    case UnicodeForm::kNFC: normalizer = icu::Normalizer2::getNFCInstance(status); break;
    case UnicodeForm::kNFD: normalizer = icu::Normalizer2::getNFDInstance(status); break;
    case UnicodeForm::kNFKC: normalizer = icu::Normalizer2::getNFKCInstance(status); break;
    case UnicodeForm::kNFKD: normalizer = icu::Normalizer2::getNFKDInstance(status); break;
  }
  RS_CHECK(U_SUCCESS(status) && normalizer != nullptr, "ICU normalizer unavailable: {}", u_errorName(status));
  return *normalizer;
}

std::string apply_form(std::string_view text, UnicodeForm::Kind kind) {
  const icu::Normalizer2& normalizer = icu_normalizer(kind);
  const icu::UnicodeString source = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  UErrorCode status = U_ZERO_ERROR;
  if (normalizer.isNormalized(source, status) && U_SUCCESS(status)) return std::string(text);
  status = U_ZERO_ERROR;
  const icu::UnicodeString result = normalizer.normalize(source, status);
  RS_CHECK(U_SUCCESS(status), "Unicode normalization failed: {}", u_errorName(status));
  std::string out;
  result.toUTF8String(out);
  return out;
}

// Rust's char::to_lowercase, one character at a time (no final-sigma context).
std::string lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const char32_t c = utf8::decode(text, pos);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
      continue;
    }
    UChar source[2];
    int32_t length = 0;
    U16_APPEND_UNSAFE(source, length, c);
    UChar lowered[8];
    UErrorCode status = U_ZERO_ERROR;
    const int32_t n = u_strToLower(lowered, 8, source, length, "", &status);
    if (U_FAILURE(status)) {
      utf8::append(out, c);
      continue;
    }
    for (int32_t i = 0; i < n;) {
      UChar32 lowered_char;
      U16_NEXT(lowered, i, n, lowered_char);
      utf8::append(out, static_cast<char32_t>(lowered_char));
    }
  }
  return out;
}

std::string strip(std::string_view text, bool left, bool right) {
  size_t begin = 0;
  size_t end = text.size();
  if (left) {
    while (begin < end) {
      size_t next = begin;
      if (!is_white_space(utf8::decode(text, next))) break;
      begin = next;
    }
  }
  if (right) {
    while (end > begin) {
      size_t start = end - 1;
      while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
      size_t probe = start;
      if (!is_white_space(utf8::decode(text, probe))) break;
      end = start;
    }
  }
  return std::string(text.substr(begin, end - begin));
}

std::string strip_accents(std::string_view text) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const char32_t c = utf8::decode(text, pos);
    if (u_charType(static_cast<UChar32>(c)) != U_NON_SPACING_MARK) out.append(text.substr(start, pos - start));
  }
  return out;
}

std::string apply_replace(std::string_view text, const ReplaceNormalizer& replace) {
  if (!replace.regex) return replace_all(text, replace.literal, replace.content);
  std::string out;
  size_t last = 0;
  replace.regex->for_each_match(text, [&](size_t start, size_t end) {
    out.append(text.substr(last, start - last));
    out.append(replace.content);
    last = end;
  });
  out.append(text.substr(last));
  return out;
}

}  // namespace

bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string replace_all(std::string_view text, std::string_view literal, std::string_view content) {
  if (literal.empty()) return std::string(text);
  std::string out;
  size_t last = 0;
  for (size_t found = text.find(literal); found != std::string_view::npos; found = text.find(literal, last)) {
    out.append(text.substr(last, found - last));
    out.append(content);
    last = found + literal.size();
  }
  out.append(text.substr(last));
  return out;
}

std::string Normalizer::apply(std::string_view text) const {
  std::string current(text);
  for (const auto& step : steps_) {
    if (const auto* form = std::get_if<UnicodeForm>(&step)) {
      current = apply_form(current, form->kind);
    } else if (const auto* replace = std::get_if<ReplaceNormalizer>(&step)) {
      current = apply_replace(current, *replace);
    } else if (const auto* prepend = std::get_if<PrependNormalizer>(&step)) {
      if (!current.empty()) current.insert(0, prepend->prefix);
    } else if (std::holds_alternative<LowercaseNormalizer>(step)) {
      current = lowercase(current);
    } else if (const auto* strip_step = std::get_if<StripNormalizer>(&step)) {
      current = strip(current, strip_step->left, strip_step->right);
    } else {
      current = strip_accents(current);
    }
  }
  return current;
}

}  // namespace rackserve::text
