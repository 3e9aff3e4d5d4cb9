// UTF-8 validation and lossy decoding (see utf8.h for the contracts).
#include "text/utf8.h"

namespace rackserve::text::utf8 {
namespace {

bool is_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

// Valid range for the second byte given the lead (Unicode Table 3-7); later bytes are
// always 80..BF.
bool second_byte_ok(unsigned char lead, unsigned char second) {
  switch (lead) {
    case 0xE0: return second >= 0xA0 && second <= 0xBF;
    case 0xED: return second >= 0x80 && second <= 0x9F;
    case 0xF0: return second >= 0x90 && second <= 0xBF;
    case 0xF4: return second >= 0x80 && second <= 0x8F;
    default: return is_continuation(second);
  }
}

// Length of the valid sequence at `pos`, or the length of its maximal invalid subpart
// negated (at least 1): the prefix of a would-be sequence that was well formed so far.
// `complete` is false when the bytes end in the middle of a well-formed prefix.
int classify(std::string_view text, size_t pos, bool& complete) {
  complete = true;
  const auto lead = static_cast<unsigned char>(text[pos]);
  const size_t length = sequence_length(lead);
  if (length == 1) return lead < 0x80 ? 1 : -1;
  size_t have = 1;
  for (; have < length; ++have) {
    if (pos + have >= text.size()) {
      complete = false;
      return -static_cast<int>(have);
    }
    const auto byte = static_cast<unsigned char>(text[pos + have]);
    const bool ok = have == 1 ? second_byte_ok(lead, byte) : is_continuation(byte);
    if (!ok) return -static_cast<int>(have);
  }
  return static_cast<int>(length);
}

}  // namespace

size_t find_invalid(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    bool complete = true;
    const int length = classify(text, pos, complete);
    if (length < 0) return pos;
    pos += static_cast<size_t>(length);
  }
  return std::string_view::npos;
}

char32_t decode(std::string_view text, size_t& pos) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  const size_t length = sequence_length(lead);
  if (length == 1 || pos + length > text.size()) {
    ++pos;
    return lead;
  }
  char32_t code_point = length == 2 ? (lead & 0x1F) : length == 3 ? (lead & 0x0F) : (lead & 0x07);
  for (size_t i = 1; i < length; ++i) code_point = (code_point << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
  pos += length;
  return code_point;
}

void append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string quoted(std::string_view bytes) {
  constexpr size_t kMaxBytes = 200;
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "\"";
  size_t pos = 0;
  while (pos < bytes.size() && pos < kMaxBytes) {
    const auto byte = static_cast<unsigned char>(bytes[pos]);
    bool complete = true;
    const int length = byte < 0x80 ? 1 : classify(bytes, pos, complete);
    if (length > 1) {
      out.append(bytes.substr(pos, static_cast<size_t>(length)));
      pos += static_cast<size_t>(length);
      continue;
    }
    ++pos;
    switch (byte) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      default: break;
    }
    if (byte >= 0x20 && byte < 0x7F) {
      out.push_back(static_cast<char>(byte));
    } else {
      out += "\\x";
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 15]);
    }
  }
  out += pos < bytes.size() ? "\"..." : "\"";
  return out;
}

void append_lossy(std::string& out, std::string_view bytes) {
  LossyDecoder decoder;
  decoder.push(bytes, out);
  decoder.finish(out);
}

void LossyDecoder::push(std::string_view bytes, std::string& out) {
  std::string joined;
  std::string_view text = bytes;
  if (!pending_.empty()) {
    joined = pending_;
    joined.append(bytes);
    text = joined;
    pending_.clear();
  }
  size_t pos = 0;
  size_t run = 0;  // start of the current run of valid bytes, copied in one go
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    bool complete = true;
    const int length = classify(text, pos, complete);
    if (length > 0) {
      pos += static_cast<size_t>(length);
      continue;
    }
    out.append(text.substr(run, pos - run));
    if (!complete) {  // a well-formed prefix cut off by the end: later bytes decide
      pending_.assign(text.substr(pos));
      return;
    }
    out.append(kReplacement);
    pos += static_cast<size_t>(-length);
    run = pos;
  }
  out.append(text.substr(run));
}

void LossyDecoder::finish(std::string& out) {
  if (!pending_.empty()) out.append(kReplacement);  // an unfinished prefix is one subpart
  pending_.clear();
}

}  // namespace rackserve::text::utf8
