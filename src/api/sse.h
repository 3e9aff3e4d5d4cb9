// Server-sent events framing. OpenAI streams each event as one "data: <json>" line
// followed by a blank line and ends with "data: [DONE]"; Anthropic names each event
// ("event: <type>" before the data line) and ends with its message_stop event. No ids.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace rackserve::api {

// "data: <compact json>\n\n". The JSON is written on one line (no raw newlines can
// appear: JSON escapes them), invalid UTF-8 replaced by U+FFFD; never throws.
std::string sse_event(const nlohmann::json& payload);

// "event: <name>\ndata: <compact json>\n\n", same JSON policy as sse_event.
std::string sse_named_event(const std::string& name, const nlohmann::json& payload);

inline constexpr const char* kSseDone = "data: [DONE]\n\n";

// Compact JSON for HTTP bodies with the same never-throw UTF-8 policy.
std::string to_json_text(const nlohmann::json& value);

}  // namespace rackserve::api
