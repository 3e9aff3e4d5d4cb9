#include "api/anthropic_content_blocks.h"

#include "api/openai_format.h"
#include "api/ordered_json_parser.h"

namespace rackserve::api {
namespace {

// Arguments nested deeper than a request body may be (parse_json_body's cap) read as not
// an object: the model writes them, and copying or serializing the parsed input recurses
// once per level (100,000 levels of "[" overflowed the stack).
constexpr int kMaxInputDepth = 256;

nlohmann::json block_delta(size_t index, nlohmann::json delta) {
  return {{"type", "content_block_delta"}, {"index", index}, {"delta", std::move(delta)}};
}

}  // namespace

size_t AnthropicContentBlocks::open(Kind kind, const text::ToolCallDelta* call, std::vector<nlohmann::json>& events) {
  if (open_) {
    const Block& last = blocks_.back();
    if (last.kind == kind && (kind != Kind::ToolUse || last.call_index == call->index)) return blocks_.size() - 1;
    stop_open(events);
  }
  Block block{.kind = kind, .text = {}, .id = {}, .name = {}, .call_index = 0};
  nlohmann::json start;
  switch (kind) {
    case Kind::Thinking: start = {{"type", "thinking"}, {"thinking", ""}, {"signature", ""}}; break;
    case Kind::Text: start = {{"type", "text"}, {"text", ""}}; break;
    case Kind::ToolUse:
      block.id = call->id.empty() ? make_response_id("toolu_") : call->id;
      block.name = call->name;
      block.call_index = call->index;
      start = {{"type", "tool_use"}, {"id", block.id}, {"name", block.name}, {"input", nlohmann::json::object()}};
      break;
  }
  blocks_.push_back(std::move(block));
  open_ = true;
  events.push_back({{"type", "content_block_start"}, {"index", blocks_.size() - 1}, {"content_block", std::move(start)}});
  return blocks_.size() - 1;
}

void AnthropicContentBlocks::stop_open(std::vector<nlohmann::json>& events) {
  if (!open_) return;
  const size_t index = blocks_.size() - 1;
  if (blocks_.back().kind == Kind::Thinking)
    events.push_back(block_delta(index, {{"type", "signature_delta"}, {"signature", ""}}));
  events.push_back({{"type", "content_block_stop"}, {"index", index}});
  open_ = false;
}

std::vector<nlohmann::json> AnthropicContentBlocks::append(const AssistantDelta& delta) {
  std::vector<nlohmann::json> events;
  if (!delta.reasoning.empty()) {
    size_t index = open(Kind::Thinking, nullptr, events);
    blocks_[index].text += delta.reasoning;
    events.push_back(block_delta(index, {{"type", "thinking_delta"}, {"thinking", delta.reasoning}}));
  }
  // One delta does not say how its content and calls interleave. The end of the call
  // being written comes first (a call's text is whole before what follows it), then the
  // content, then new calls (models write their text before the calls).
  auto add_arguments = [&](const text::ToolCallDelta& call) {
    size_t index = open(Kind::ToolUse, &call, events);
    blocks_[index].text += call.arguments;
    if (!call.arguments.empty())
      events.push_back(block_delta(index, {{"type", "input_json_delta"}, {"partial_json", call.arguments}}));
  };
  auto continues_open_call = [&](const text::ToolCallDelta& call) {
    return open_ && blocks_.back().kind == Kind::ToolUse && blocks_.back().call_index == call.index;
  };
  size_t next_call = 0;
  for (; next_call < delta.tool_calls.size() && continues_open_call(delta.tool_calls[next_call]); ++next_call)
    add_arguments(delta.tool_calls[next_call]);
  if (!delta.content.empty()) {
    size_t index = open(Kind::Text, nullptr, events);
    blocks_[index].text += delta.content;
    events.push_back(block_delta(index, {{"type", "text_delta"}, {"text", delta.content}}));
  }
  for (; next_call < delta.tool_calls.size(); ++next_call) add_arguments(delta.tool_calls[next_call]);
  return events;
}

std::vector<nlohmann::json> AnthropicContentBlocks::finish() {
  std::vector<nlohmann::json> events;
  stop_open(events);
  return events;
}

nlohmann::json AnthropicContentBlocks::content() const {
  nlohmann::json content = nlohmann::json::array();
  for (const Block& block : blocks_) {
    switch (block.kind) {
      case Kind::Thinking:
        content.push_back({{"type", "thinking"}, {"thinking", block.text}, {"signature", ""}});
        break;
      case Kind::Text: content.push_back({{"type", "text"}, {"text", block.text}}); break;
      case Kind::ToolUse: {
        const auto parsed = parse_ordered_json(block.text, kMaxInputDepth);
        nlohmann::json input = parsed && parsed->is_object() ? nlohmann::json(*parsed) : nlohmann::json::object();
        content.push_back({{"type", "tool_use"}, {"id", block.id}, {"name", block.name}, {"input", std::move(input)}});
        break;
      }
    }
  }
  return content;
}

}  // namespace rackserve::api
