#include "api/ordered_json_parser.h"

#include <iterator>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rackserve::api {
namespace {

using Json = nlohmann::ordered_json;

// Builds the tree from nlohmann's SAX events. An object's members are collected with an
// index of their keys and handed to ordered_json in one piece, so no key is compared with
// all the keys before it.
class TreeBuilder {
 public:
  explicit TreeBuilder(int max_depth) : max_depth_(max_depth) {}

  bool null() { return add(Json(nullptr)); }
  bool boolean(bool value) { return add(Json(value)); }
  bool number_integer(Json::number_integer_t value) { return add(Json(value)); }
  bool number_unsigned(Json::number_unsigned_t value) { return add(Json(value)); }
  bool number_float(Json::number_float_t value, const Json::string_t& /*text*/) { return add(Json(value)); }
  bool string(Json::string_t& value) { return add(Json(std::move(value))); }
  bool binary(Json::binary_t& value) { return add(Json::binary(std::move(value))); }
  bool start_object(std::size_t /*size*/) { return open(true); }
  bool key(Json::string_t& key) {
    open_.back().key = std::move(key);
    return true;
  }
  bool end_object() {
    Open object = std::move(open_.back());
    open_.pop_back();
    return add(Json(Json::object_t(std::make_move_iterator(object.members.begin()),
                                   std::make_move_iterator(object.members.end()))));
  }
  bool start_array(std::size_t /*size*/) { return open(false); }
  bool end_array() {
    Json array = std::move(open_.back().items);
    open_.pop_back();
    return add(std::move(array));
  }
  bool parse_error(std::size_t /*position*/, const std::string& /*token*/, const nlohmann::detail::exception& /*error*/) {
    return false;
  }

  Json take_root() { return std::move(root_); }

 private:
  // Objects index their keys once they have this many; below, a scan is cheaper.
  static constexpr size_t kIndexFrom = 16;

  struct Open {
    bool is_object = false;
    Json items;                                          // an array's values
    std::vector<std::pair<std::string, Json>> members;  // an object's, in first-seen order
    std::unordered_map<std::string, size_t> positions;  // key -> members index, once indexed
    std::string key;                                     // the key of the value that comes next
  };

  bool open(bool is_object) {
    if (static_cast<int>(open_.size()) >= max_depth_) return false;
    Open& opened = open_.emplace_back();
    opened.is_object = is_object;
    if (!is_object) opened.items = Json::array();
    return true;
  }

  bool add(Json value) {
    if (open_.empty()) {
      root_ = std::move(value);
    } else if (!open_.back().is_object) {
      open_.back().items.push_back(std::move(value));
    } else {
      add_member(open_.back(), std::move(value));
    }
    return true;
  }

  static void add_member(Open& object, Json value) {
    auto& members = object.members;
    if (object.positions.empty() && members.size() >= kIndexFrom) {
      for (size_t i = 0; i < members.size(); ++i) object.positions.emplace(members[i].first, i);
    }
    size_t found = members.size();
    if (object.positions.empty()) {
      for (size_t i = 0; i < members.size() && found == members.size(); ++i)
        if (members[i].first == object.key) found = i;
    } else if (auto it = object.positions.find(object.key); it != object.positions.end()) {
      found = it->second;
    }
    if (found < members.size()) {
      members[found].second = std::move(value);
      return;
    }
    if (!object.positions.empty()) object.positions.emplace(object.key, members.size());
    members.emplace_back(std::move(object.key), std::move(value));
  }

  int max_depth_;
  std::vector<Open> open_;
  Json root_;
};

}  // namespace

std::optional<nlohmann::ordered_json> parse_ordered_json(std::string_view text, int max_depth) {
  TreeBuilder builder(max_depth);
  if (!Json::sax_parse(text, &builder)) return std::nullopt;
  return builder.take_root();
}

}  // namespace rackserve::api
