#include "text/parsers/tool_call_writer.h"

#include "text/utf8.h"

namespace rackserve::text {
namespace {

constexpr std::string_view kWhitespace = " \t\r\n";

// Bytes at the end of `text` that begin a character the text does not finish.
size_t unfinished_character_length(std::string_view text) {
  // A character has at most 3 bytes after its lead byte.
  for (size_t back = 1; back <= 4 && back <= text.size(); ++back) {
    const auto byte = static_cast<unsigned char>(text[text.size() - back]);
    if ((byte & 0xC0) == 0x80) continue;  // continuation byte: look further back for the lead
    return utf8::sequence_length(byte) > back ? back : 0;
  }
  return 0;
}

}  // namespace

void Utf8Joiner::append(std::string_view text, std::string& out) {
  if (held_.empty()) {
    const size_t cut = text.size() - unfinished_character_length(text);
    out.append(text.substr(0, cut));
    held_.assign(text.substr(cut));
    return;
  }
  held_.append(text);
  const size_t cut = held_.size() - unfinished_character_length(held_);
  out.append(held_, 0, cut);
  held_.erase(0, cut);
}

void Utf8Joiner::flush(std::string& out) {
  out.append(held_);
  held_.clear();
}

void ToolCallWriter::content(std::string_view text) {
  if (skip_whitespace_) {
    const size_t start = text.find_first_not_of(kWhitespace);
    if (start == std::string_view::npos) return;
    text.remove_prefix(start);
    skip_whitespace_ = false;
  }
  const size_t last = text.find_last_not_of(kWhitespace);
  if (last == std::string_view::npos) {
    held_whitespace_.append(text);
    return;
  }
  emit_content(held_whitespace_);
  held_whitespace_.assign(text.substr(last + 1));
  emit_content(text.substr(0, last + 1));
}

void ToolCallWriter::emit_content(std::string_view text) {
  if (!text.empty()) content_bytes_.append(text, out_.content);
}

void ToolCallWriter::begin_markup() {
  held_whitespace_.clear();
  skip_whitespace_ = false;
  content_bytes_.flush(out_.content);
}

void ToolCallWriter::end_markup() { skip_whitespace_ = true; }

void ToolCallWriter::start_call(std::string id, std::string name) {
  end_call();
  dropping_call_ = name.empty();
  if (dropping_call_) return;
  out_.calls.push_back({.index = calls_++, .id = std::move(id), .name = std::move(name), .arguments = {}});
}

void ToolCallWriter::arguments(std::string_view text) {
  if (calls_ == 0 || dropping_call_ || text.empty()) return;
  if (out_.calls.empty() || out_.calls.back().index != calls_ - 1) {
    out_.calls.push_back({.index = calls_ - 1, .id = {}, .name = {}, .arguments = {}});
  }
  argument_bytes_.append(text, out_.calls.back().arguments);
}

void ToolCallWriter::end_call() {
  std::string rest;
  argument_bytes_.flush(rest);
  arguments(rest);
}

void ToolCallWriter::finish() {
  end_call();
  emit_content(held_whitespace_);
  held_whitespace_.clear();
  content_bytes_.flush(out_.content);
}

ToolCallParse ToolCallWriter::take() {
  ToolCallParse taken = std::move(out_);
  out_ = {};
  return taken;
}

}  // namespace rackserve::text
