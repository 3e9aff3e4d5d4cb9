// Server-sent events framing as OpenAI streams it: each event is one "data: <json>" line
// followed by a blank line; the stream ends with "data: [DONE]". No event names, no ids.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace rackserve::api {

// "data: <compact json>\n\n". The JSON is written on one line (no raw newlines can
// appear: JSON escapes them), invalid UTF-8 replaced by U+FFFD; never throws.
std::string sse_event(const nlohmann::json& payload);

inline constexpr const char* kSseDone = "data: [DONE]\n\n";

// Compact JSON for HTTP bodies with the same never-throw UTF-8 policy.
std::string to_json_text(const nlohmann::json& value);

}  // namespace rackserve::api
