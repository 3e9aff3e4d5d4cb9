#include "text/parsers/key_value_call_parser.h"

#include "text/parsers/markup_name.h"

namespace rackserve::text {

ToolCallParse KeyValueCallParser::append(std::string_view text) {
  buffer_.append(text);
  while (step()) {
  }
  return writer_.take();
}

ToolCallParse KeyValueCallParser::finish() {
  while (step()) {
  }
  // Held text is content only outside markup; inside, it is markup cut short.
  if (state_ == State::Content) writer_.content(buffer_.view());
  buffer_.consume(buffer_.view().size());
  writer_.finish();
  return writer_.take();
}

bool KeyValueCallParser::step() {
  switch (state_) {
    case State::Content: return step_content();
    case State::Section: return step_section();
    case State::Name: return step_name();
    case State::Body: return step_body();
    case State::Key: return step_key();
    case State::BeforeValue: return step_before_value();
    case State::Value: return step_value();
  }
  return false;
}

void KeyValueCallParser::advance(size_t consumed, State next) {
  buffer_.consume(consumed);
  state_ = next;
}

bool KeyValueCallParser::step_content() {
  const bool sectioned = !syntax_.section_begin.empty();
  const std::string_view begin = sectioned ? syntax_.section_begin : syntax_.call_begin;
  const auto hit = buffer_.find_first({begin});
  if (!hit) {
    const size_t keep = buffer_.partial_length({begin});
    writer_.content(buffer_.take(buffer_.view().size() - keep));
    return false;
  }
  writer_.content(buffer_.view().substr(0, hit->position));
  writer_.begin_markup();
  advance(hit->position + begin.size(), sectioned ? State::Section : State::Name);
  return true;
}

bool KeyValueCallParser::step_section() {
  const auto hit = buffer_.find_first({syntax_.call_begin, syntax_.section_end});
  if (!hit) {
    buffer_.drop_all_but_partial({syntax_.call_begin, syntax_.section_end});
    return false;
  }
  if (hit->marker == 0) {
    advance(hit->position + syntax_.call_begin.size(), State::Name);
  } else {
    writer_.end_markup();
    advance(hit->position + syntax_.section_end.size(), State::Content);
  }
  return true;
}

bool KeyValueCallParser::step_name() {
  const size_t start = buffer_.view().find_first_not_of(kMarkupWhitespace);
  if (start != 0) {  // whitespace before the name
    buffer_.consume(start == std::string_view::npos ? buffer_.view().size() : start);
    return start != std::string_view::npos;
  }
  const size_t end = buffer_.find_first_of(syntax_.name_end_bytes);
  if (end == std::string_view::npos) return false;  // the name is still being written
  name_ = markup_name(buffer_.view().substr(0, end));
  pairs_ = 0;
  writer_.start_call({}, name_);
  advance(end, State::Body);
  return true;
}

bool KeyValueCallParser::step_body() {
  const auto hit =
      buffer_.find_first({syntax_.key_begin, syntax_.call_end, syntax_.section_end, syntax_.call_begin});
  if (!hit) {
    buffer_.drop_all_but_partial({syntax_.key_begin, syntax_.call_end, syntax_.section_end, syntax_.call_begin});
    return false;
  }
  if (hit->marker == 0) {
    advance(hit->position + syntax_.key_begin.size(), State::Key);
  } else {
    end_call_at(hit->position, hit->marker - 1);
  }
  return true;
}

bool KeyValueCallParser::step_key() {
  const auto hit = buffer_.find_first({syntax_.key_end, syntax_.call_end});
  if (!hit) return false;  // the key is still being written
  if (hit->marker == 1) {
    end_call_at(hit->position, 0);
    return true;
  }
  key_ = markup_name(buffer_.view().substr(0, hit->position));
  advance(hit->position + syntax_.key_end.size(), syntax_.value_begin.empty() ? State::Value : State::BeforeValue);
  return true;
}

bool KeyValueCallParser::step_before_value() {
  const auto hit = buffer_.find_first({syntax_.value_begin, syntax_.key_begin, syntax_.call_end});
  if (!hit) {
    buffer_.drop_all_but_partial({syntax_.value_begin, syntax_.key_begin, syntax_.call_end});
    return false;
  }
  if (hit->marker == 0) {
    advance(hit->position + syntax_.value_begin.size(), State::Value);
  } else if (hit->marker == 1) {  // a key without a value: dropped
    advance(hit->position + syntax_.key_begin.size(), State::Key);
  } else {
    end_call_at(hit->position, 0);
  }
  return true;
}

bool KeyValueCallParser::step_value() {
  const auto hit = buffer_.find_first({syntax_.value_end});
  if (!hit) return false;  // the value is still being written
  std::string pair = pairs_ == 0 ? "{" : ", ";
  pair += json_string(key_);
  pair += ": ";
  pair += types_.value_json(name_, key_, buffer_.view().substr(0, hit->position));
  writer_.arguments(pair);
  ++pairs_;
  advance(hit->position + syntax_.value_end.size(), State::Body);
  return true;
}

void KeyValueCallParser::end_call_at(size_t position, size_t marker) {
  writer_.arguments(pairs_ == 0 ? "{}" : "}");
  writer_.end_call();
  if (marker == 0) {
    if (outside_call() == State::Content) writer_.end_markup();
    advance(position + syntax_.call_end.size(), outside_call());
  } else if (marker == 1) {
    writer_.end_markup();
    advance(position + syntax_.section_end.size(), State::Content);
  } else {
    advance(position + syntax_.call_begin.size(), State::Name);
  }
}

}  // namespace rackserve::text
