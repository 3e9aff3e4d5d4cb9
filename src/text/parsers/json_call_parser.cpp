#include "text/parsers/json_call_parser.h"

namespace rackserve::text {

ToolCallParse JsonCallParser::append(std::string_view text) {
  buffer_.append(text);
  while (step()) {
  }
  return writer_.take();
}

ToolCallParse JsonCallParser::finish() {
  while (step()) {
  }
  // Held text is content only outside markup; inside, it is a marker cut short.
  if (state_ == State::Content) writer_.content(buffer_.view());
  buffer_.consume(buffer_.view().size());
  writer_.finish();
  return writer_.take();
}

bool JsonCallParser::step() {
  switch (state_) {
    case State::Content: return step_content();
    case State::Section: return step_section();
    case State::Head: return step_head();
    case State::BeforeArguments: return step_before_arguments();
    case State::Arguments: return step_arguments();
    case State::AfterArguments: return step_after_arguments();
  }
  return false;
}

void JsonCallParser::advance(size_t consumed, State next) {
  buffer_.consume(consumed);
  state_ = next;
}

bool JsonCallParser::step_content() {
  const auto hit = buffer_.find_first({syntax_.section_begin});
  if (!hit) {
    const size_t keep = buffer_.partial_length({syntax_.section_begin});
    writer_.content(buffer_.take(buffer_.view().size() - keep));
    return false;
  }
  writer_.content(buffer_.view().substr(0, hit->position));
  writer_.begin_markup();
  advance(hit->position + syntax_.section_begin.size(), State::Section);
  return true;
}

bool JsonCallParser::step_section() {
  const auto hit = buffer_.find_first({syntax_.call_begin, syntax_.section_end});
  if (!hit) {
    buffer_.drop_all_but_partial({syntax_.call_begin, syntax_.section_end});
    return false;
  }
  if (hit->marker == 0) {
    advance(hit->position + syntax_.call_begin.size(), State::Head);
  } else {
    writer_.end_markup();
    advance(hit->position + syntax_.section_end.size(), State::Content);
  }
  return true;
}

bool JsonCallParser::step_head() {
  const auto hit = buffer_.find_first({syntax_.head_end, syntax_.call_end, syntax_.section_end, syntax_.call_begin});
  if (!hit) return false;  // the head is still being written
  CallHead head = syntax_.read_head(buffer_.view().substr(0, hit->position));
  writer_.start_call(std::move(head.id), std::move(head.name));
  if (hit->marker == 0) {
    advance(hit->position + syntax_.head_end.size(), State::BeforeArguments);
  } else {
    writer_.arguments("{}");
    end_call_at(hit->position, hit->marker - 1);
  }
  return true;
}

bool JsonCallParser::step_before_arguments() {
  const auto hit = buffer_.find_first({"{", syntax_.call_end, syntax_.section_end, syntax_.call_begin});
  if (!hit) {
    buffer_.drop_all_but_partial({syntax_.call_end, syntax_.section_end, syntax_.call_begin});
    return false;
  }
  if (hit->marker == 0) {
    depth_ = 0;
    string_.reset();
    advance(hit->position, State::Arguments);
  } else {
    writer_.arguments("{}");
    end_call_at(hit->position, hit->marker - 1);
  }
  return true;
}

bool JsonCallParser::step_arguments() {
  const std::string_view text = buffer_.view();
  const std::string_view terminators[] = {syntax_.call_end, syntax_.section_end, syntax_.call_begin};
  for (size_t at = 0; at < text.size(); ++at) {
    const char byte = text[at];
    if (string_.in_string()) {
      string_.step(byte);
      continue;
    }
    for (size_t marker = 0; marker < std::size(terminators); ++marker) {
      const std::string_view terminator = terminators[marker];
      if (byte != terminator.front()) continue;
      const std::string_view rest = text.substr(at);
      if (rest.starts_with(terminator)) {  // the arguments never closed
        writer_.arguments(text.substr(0, at));
        end_call_at(at, marker);
        return true;
      }
      if (terminator.starts_with(rest)) {  // wait: this may become the marker
        writer_.arguments(text.substr(0, at));
        buffer_.consume(at);
        return false;
      }
    }
    if (byte == '"') {
      string_.open();
    } else if (byte == '{' || byte == '[') {
      ++depth_;
    } else if ((byte == '}' || byte == ']') && depth_ > 0 && --depth_ == 0) {
      writer_.arguments(text.substr(0, at + 1));
      writer_.end_call();
      advance(at + 1, State::AfterArguments);
      return true;
    }
  }
  writer_.arguments(text);
  buffer_.consume(text.size());
  return false;
}

bool JsonCallParser::step_after_arguments() {
  const auto hit = buffer_.find_first({syntax_.call_end, syntax_.section_end, syntax_.call_begin});
  if (!hit) {
    buffer_.drop_all_but_partial({syntax_.call_end, syntax_.section_end, syntax_.call_begin});
    return false;
  }
  end_call_at(hit->position, hit->marker);
  return true;
}

void JsonCallParser::end_call_at(size_t position, size_t marker) {
  writer_.end_call();
  if (marker == 0) {
    advance(position + syntax_.call_end.size(), State::Section);
  } else if (marker == 1) {
    writer_.end_markup();
    advance(position + syntax_.section_end.size(), State::Content);
  } else {
    advance(position + syntax_.call_begin.size(), State::Head);
  }
}

}  // namespace rackserve::text
