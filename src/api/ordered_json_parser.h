// Request JSON parsed into nlohmann::ordered_json, whose objects keep the client's key
// order: chat templates render tool schemas with tojson and iterate argument mappings with
// .items(), and Hugging Face renders both in the order the client wrote them.
// ordered_json::parse itself compares each key of an object with every key before it,
// quadratic in the object's size (an 8 MiB body of one object would hold a thread for
// minutes); this parser takes time linear in the text.
#pragma once

#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace rackserve::api {

// `text` as JSON; nullopt when it is not valid JSON or nests arrays and objects deeper
// than `max_depth`. A key repeated within one object keeps its first position and its last
// value, as Python's json.loads does.
std::optional<nlohmann::ordered_json> parse_ordered_json(std::string_view text, int max_depth);

}  // namespace rackserve::api
