// Strict JSON: a UTF-8 and NUL scan before parsing, and a parser callback that remembers
// the keys of every open object to catch repeats nlohmann would otherwise merge.
#include "weights/strict_json.h"

#include <cstdint>
#include <set>
#include <vector>

#include "core/error.h"

namespace rackserve {

namespace {

using nlohmann::json;

// Follows nlohmann's parse events; records the first repeated key with its path.
class DuplicateKeyDetector {
 public:
  bool on_event(json::parse_event_t event, const json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects_.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects_.empty()) open_objects_.pop_back();
        break;
      case json::parse_event_t::key:
        record_key(parsed.get_ref<const json::string_t&>());
        break;
      default:
        break;
    }
    return true;  // keep every value; we only observe
  }

  // "\"w\"" at the top level, "\"dtype\" inside \"/w\"" deeper down.
  const std::optional<std::string>& duplicate() const { return duplicate_; }

 private:
  struct OpenObject {
    std::set<std::string> keys;
    std::string last_key;
  };

  void record_key(const std::string& key) {
    if (open_objects_.empty()) return;
    OpenObject& object = open_objects_.back();
    if (!object.keys.insert(key).second && !duplicate_) duplicate_ = describe_path(key);
    object.last_key = key;
  }

  std::string describe_path(const std::string& key) const {
    std::string enclosing;
    for (size_t i = 0; i + 1 < open_objects_.size(); ++i) enclosing += "/" + open_objects_[i].last_key;
    if (enclosing.empty()) return fmt::format("\"{}\"", key);
    return fmt::format("\"{}\" inside \"{}\"", key, enclosing);
  }

  std::vector<OpenObject> open_objects_;
  std::optional<std::string> duplicate_;
};

}  // namespace

std::optional<size_t> first_invalid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    size_t length = 0;
    uint32_t code_point = 0;
    uint32_t smallest = 0;  // below this, the encoding is overlong
    if ((lead & 0xe0) == 0xc0) {
      length = 2, code_point = lead & 0x1f, smallest = 0x80;
    } else if ((lead & 0xf0) == 0xe0) {
      length = 3, code_point = lead & 0x0f, smallest = 0x800;
    } else if ((lead & 0xf8) == 0xf0) {
      length = 4, code_point = lead & 0x07, smallest = 0x10000;
    } else {
      return i;
    }
    if (text.size() - i < length) return i;
    for (size_t k = 1; k < length; ++k) {
      const auto continuation = static_cast<unsigned char>(text[i + k]);
      if ((continuation & 0xc0) != 0x80) return i;
      code_point = (code_point << 6) | (continuation & 0x3f);
    }
    if (code_point < smallest || code_point > 0x10ffff || (code_point >= 0xd800 && code_point <= 0xdfff)) return i;
    i += length;
  }
  return std::nullopt;
}

json parse_strict_json(std::string_view text, std::string_view label) {
  if (auto bad = first_invalid_utf8(text)) RS_FAIL("{} is not valid UTF-8 (ill-formed byte at offset {})", label, *bad);
  // nlohmann stops at a raw NUL as if the input ended there, so "{}\0<anything>" would
  // parse as "{}". JSON never allows a raw NUL (control characters in strings must be
  // escaped), so any NUL means the text is not JSON.
  if (auto nul = text.find('\0'); nul != std::string_view::npos) {
    RS_FAIL("{} is not valid JSON: raw NUL byte at offset {}", label, nul);
  }
  DuplicateKeyDetector detector;
  json value;
  try {
    value = json::parse(text.begin(), text.end(),
                        [&detector](int, json::parse_event_t event, json& parsed) { return detector.on_event(event, parsed); });
  } catch (const json::exception& error) {
    RS_FAIL("{} is not valid JSON: {}", label, error.what());
  }
  RS_CHECK(!detector.duplicate(), "{} repeats the key {} (duplicate keys are not allowed)", label, *detector.duplicate());
  return value;
}

std::string describe_json(const json& value) {
  constexpr size_t kMaxShown = 40;
  if (value.is_number_unsigned()) return std::to_string(value.get<uint64_t>());
  if (value.is_number_integer()) return std::to_string(value.get<int64_t>());
  if (value.is_number_float()) return fmt::format("{}", value.get<double>());
  if (value.is_string()) {
    const auto& text = value.get_ref<const json::string_t&>();
    if (text.size() <= kMaxShown) return fmt::format("\"{}\"", text);
    return fmt::format("a string of {} bytes", text.size());
  }
  return fmt::format("a JSON {}", value.type_name());
}

}  // namespace rackserve
