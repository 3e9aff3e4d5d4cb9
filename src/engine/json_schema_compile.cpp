#include "engine/json_schema_compile.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace rackserve {
namespace {

using Json = nlohmann::ordered_json;

constexpr size_t kMaxNodes = 8192;
constexpr int kMaxSchemaNesting = 64;  // schemas inside schemas, as written (not $ref depth)

// Keywords that constrain nothing here: allowed anywhere and skipped.
constexpr std::string_view kIgnored[] = {"description", "title", "default", "examples", "$comment", "$schema", "$id",
                                         "$defs", "definitions", "format", "pattern"};
constexpr std::string_view kConstraining[] = {"type",      "properties", "required", "additionalProperties",
                                              "items",     "minItems",   "maxItems", "enum",
                                              "const",     "anyOf",      "$ref",     "minLength",
                                              "maxLength", "minimum",    "maximum",  "exclusiveMinimum",
                                              "exclusiveMaximum"};
constexpr std::string_view kNumericBounds[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};

// Code points of valid UTF-8 text (what JSON Schema's length keywords count).
uint32_t code_points(const std::string& text) {
  uint32_t count = 0;
  for (char byte : text) count += (static_cast<uint8_t>(byte) & 0xC0) != 0x80;
  return count;
}

// Whether a const / enum value meets the schema's length and numeric keywords (each applies
// to its own kind of value only, as in JSON Schema).
bool meets_keywords(const Json& value, const Json& schema) {
  if (value.is_string()) {
    const uint32_t length = code_points(value.get<std::string>());
    if (schema.contains("minLength") && schema["minLength"].is_number() && length < schema["minLength"].get<double>())
      return false;
    if (schema.contains("maxLength") && schema["maxLength"].is_number() && length > schema["maxLength"].get<double>())
      return false;
  }
  if (value.is_number()) {
    const double number = value.get<double>();
    auto bound = [&](const char* key) {
      return schema.contains(key) && schema[key].is_number() ? std::optional<double>(schema[key].get<double>())
                                                              : std::nullopt;
    };
    if (auto low = bound("minimum"); low && number < *low) return false;
    if (auto high = bound("maximum"); high && number > *high) return false;
    if (auto low = bound("exclusiveMinimum"); low && number <= *low) return false;
    if (auto high = bound("exclusiveMaximum"); high && number >= *high) return false;
  }
  return true;
}

bool one_of(std::string_view key, std::span<const std::string_view> keys) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

std::string pointer_token(const std::string& key) {
  std::string escaped;
  for (char c : key) escaped += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
  return escaped;
}

bool matches_type(const Json& value, std::string_view type) {
  if (type == "string") return value.is_string();
  if (type == "boolean") return value.is_boolean();
  if (type == "null") return value.is_null();
  if (type == "number") return value.is_number();
  if (type == "integer") {
    if (value.is_number_integer()) return true;
    if (!value.is_number_float()) return false;
    const double number = value.get<double>();
    return number == static_cast<double>(static_cast<long long>(number));
  }
  return false;
}

class Compiler {
 public:
  Compiler(const Json& root, const JsonSchemaOptions& options) : root_(root), options_(options) {}

  std::shared_ptr<const JsonSchema> run() {
    SchemaNodeId root = compile(root_, "", 0);
    for (SchemaNodeId id = 0; id < nodes_.size(); ++id) resolve(id);
    if (nodes_[root].kind == SchemaKind::Choice) root = nodes_[root].dispatch[options_.top_level == TopLevel::Array ? '[' : '{'];
    const SchemaKind wanted = options_.top_level == TopLevel::Array ? SchemaKind::Array : SchemaKind::Object;
    if (root == kNoSchemaNode || (nodes_[root].kind != wanted && !(wanted == SchemaKind::Object && nodes_[root].kind == SchemaKind::Union)))
      fail("", fmt::format("the top-level schema must be of type {}", options_.top_level == TopLevel::Array ? "array" : "object"));
    return std::make_shared<const JsonSchema>(std::move(nodes_), root, std::clamp(options_.max_whitespace_run, 0, 255));
  }

 private:
  [[noreturn]] static void fail(const std::string& where, const std::string& what) {
    throw JsonSchemaError(fmt::format("{} (at '{}')", what, where.empty() ? "/" : where));
  }

  SchemaNodeId add(SchemaNode node, const std::string& where) {
    if (nodes_.size() >= kMaxNodes) fail(where, fmt::format("the schema is too large (over {} nodes)", kMaxNodes));
    nodes_.push_back(std::move(node));
    return static_cast<SchemaNodeId>(nodes_.size() - 1);
  }

  SchemaNodeId compile(const Json& schema, const std::string& where, int nesting) {
    if (nesting > kMaxSchemaNesting) fail(where, "the schema nests too deeply");
    if (!schema.is_object()) fail(where, "a schema must be an object (boolean schemas are not supported)");
    for (const auto& [key, value] : schema.items()) {
      if (!one_of(key, kIgnored) && !one_of(key, kConstraining))
        fail(where, fmt::format("JSON Schema keyword '{}' is not supported", key));
      if ((key == "$defs" || key == "definitions") && !where.empty())
        fail(where, fmt::format("'{}' is supported only in the top-level schema", key));
    }
    if (schema.contains("$ref")) {
      for (const auto& [key, value] : schema.items())
        if (key != "$ref" && one_of(key, kConstraining))
          fail(where, fmt::format("'$ref' next to '{}' is not supported", key));
      return reference(schema["$ref"], where + "/$ref", nesting);
    }
    if (schema.contains("anyOf")) {
      for (const char* key : {"type", "enum", "const"})
        if (schema.contains(key)) fail(where, fmt::format("'anyOf' next to '{}' is not supported", key));
      const Json& branches = schema["anyOf"];
      if (!branches.is_array() || branches.empty()) fail(where + "/anyOf", "'anyOf' must be a non-empty array");
      SchemaNode choice;
      choice.kind = SchemaKind::Choice;
      for (size_t i = 0; i < branches.size(); ++i)
        choice.branches.push_back(compile(branches[i], fmt::format("{}/anyOf/{}", where, i), nesting + 1));
      return add(std::move(choice), where);
    }
    const std::vector<std::string> types = read_types(schema, where);
    if (schema.contains("enum") || schema.contains("const")) return literals(schema, types, where);
    if (types.empty()) fail(where, "a schema needs 'type', 'enum', 'const', 'anyOf' or '$ref'");
    if (types.size() == 1) return typed(schema, types[0], where, nesting);
    SchemaNode choice;
    choice.kind = SchemaKind::Choice;
    for (const std::string& type : types) choice.branches.push_back(typed(schema, type, where, nesting));
    return add(std::move(choice), where);
  }

  // The names in 'type', distinct; "integer" is dropped next to "number", which holds it.
  static std::vector<std::string> read_types(const Json& schema, const std::string& where) {
    std::vector<std::string> types;
    if (!schema.contains("type")) return types;
    const Json& type = schema["type"];
    if (type.is_string()) {
      types.push_back(type.get<std::string>());
    } else if (type.is_array() && !type.empty()) {
      for (const Json& name : type) {
        if (!name.is_string()) fail(where + "/type", "'type' must be a string or an array of strings");
        if (std::find(types.begin(), types.end(), name.get<std::string>()) == types.end())
          types.push_back(name.get<std::string>());
      }
    } else {
      fail(where + "/type", "'type' must be a string or a non-empty array of strings");
    }
    if (std::find(types.begin(), types.end(), "number") != types.end())
      std::erase(types, std::string("integer"));
    return types;
  }

  SchemaNodeId literals(const Json& schema, const std::vector<std::string>& types, const std::string& where) {
    Json values = Json::array();
    if (schema.contains("const")) values.push_back(schema["const"]);
    if (schema.contains("enum")) {
      if (!schema["enum"].is_array() || schema["enum"].empty())
        fail(where + "/enum", "'enum' must be a non-empty array");
      for (const Json& value : schema["enum"]) values.push_back(value);
    }
    SchemaNode node;
    node.kind = SchemaKind::Literals;
    for (const Json& value : values) {
      if (value.is_object() || value.is_array())
        fail(where, "'enum' and 'const' values that are objects or arrays are not supported");
      const bool typed_ok = types.empty() || std::any_of(types.begin(), types.end(), [&](const std::string& type) {
                              return matches_type(value, type);
                            });
      // With both enum and const, a value must be the const (and in the enum).
      const bool const_ok = !schema.contains("const") || value == schema["const"];
      const bool enum_ok = !schema.contains("enum") ||
                           std::find(schema["enum"].begin(), schema["enum"].end(), value) != schema["enum"].end();
      if (!typed_ok || !const_ok || !enum_ok || !meets_keywords(value, schema)) continue;
      std::string text = value.dump();
      if (text.size() >= UINT16_MAX) fail(where, "an 'enum' or 'const' value is too long");
      if (std::find(node.literals.begin(), node.literals.end(), text) == node.literals.end())
        node.literals.push_back(std::move(text));
    }
    if (node.literals.empty()) fail(where, "no value satisfies 'enum'/'const' together with 'type'");
    if (node.literals.size() >= UINT16_MAX) fail(where, "'enum' has too many values");
    return add(std::move(node), where);
  }

  SchemaNodeId typed(const Json& schema, const std::string& type, const std::string& where, int nesting) {
    SchemaNode node;
    if (type == "string") {
      node.kind = SchemaKind::String;
      node.min_length = count(schema, "minLength", 0, where);
      node.max_length = count(schema, "maxLength", UINT32_MAX, where);
      if (node.min_length > node.max_length) fail(where, "'minLength' is above 'maxLength'");
    } else if (type == "number") {
      node.kind = SchemaKind::Number;
      for (std::string_view key : kNumericBounds)
        if (schema.contains(key))
          fail(where, fmt::format("'{}' is supported for \"integer\" values, not \"number\"", key));
    } else if (type == "integer") {
      node.kind = SchemaKind::Integer;
      integer_bounds(schema, where, node);
    } else if (type == "boolean") {
      node.kind = SchemaKind::Literals;
      node.literals = {"true", "false"};
    } else if (type == "null") {
      node.kind = SchemaKind::Literals;
      node.literals = {"null"};
    } else if (type == "object") {
      object(schema, where, nesting, node);
    } else if (type == "array") {
      array(schema, where, nesting, node);
    } else {
      fail(where + "/type", fmt::format("unknown type \"{}\"", type));
    }
    return add(std::move(node), where);
  }

  void object(const Json& schema, const std::string& where, int nesting, SchemaNode& node) {
    node.kind = SchemaKind::Object;
    if (schema.contains("additionalProperties") && !schema["additionalProperties"].is_boolean())
      fail(where + "/additionalProperties", "'additionalProperties' other than false or true is not supported");
    if (schema.contains("properties")) {
      const Json& properties = schema["properties"];
      if (!properties.is_object()) fail(where + "/properties", "'properties' must be an object");
      if (properties.size() >= UINT16_MAX) fail(where + "/properties", "too many properties");
      for (const auto& [key, value] : properties.items()) {
        const std::string at = where + "/properties/" + pointer_token(key);
        node.properties.push_back({Json(key).dump(), compile(value, at, nesting + 1), false});
      }
    }
    if (schema.contains("required")) {
      const Json& required = schema["required"];
      if (!required.is_array()) fail(where + "/required", "'required' must be an array of strings");
      for (const Json& name : required) {
        if (!name.is_string()) fail(where + "/required", "'required' must be an array of strings");
        const std::string key_text = name.dump();
        auto property = std::find_if(node.properties.begin(), node.properties.end(),
                                     [&](const SchemaProperty& p) { return p.key_text == key_text; });
        if (property == node.properties.end())
          fail(where + "/required",
               fmt::format("required property {} is not in 'properties' (only declared properties are generated)",
                           key_text));
        property->required = true;
      }
    }
    const auto count = static_cast<uint16_t>(node.properties.size());
    node.next_required.assign(count + 1, count);
    for (int i = count - 1; i >= 0; --i)
      node.next_required[i] = node.properties[i].required ? static_cast<uint16_t>(i) : node.next_required[i + 1];
  }

  // A non-negative integer keyword ("minLength", "minItems", ...), or `fallback` when absent.
  static uint32_t count(const Json& schema, const char* key, uint32_t fallback, const std::string& where) {
    if (!schema.contains(key)) return fallback;
    const Json& value = schema[key];
    if (!value.is_number_unsigned()) fail(where + "/" + key, fmt::format("'{}' must be a non-negative integer", key));
    return static_cast<uint32_t>(std::min<uint64_t>(value.get<uint64_t>(), UINT32_MAX));
  }

  // minimum / maximum / exclusiveMinimum / exclusiveMaximum (numbers, Draft 2020-12) as the
  // integers they allow, within int64.
  static void integer_bounds(const Json& schema, const std::string& where, SchemaNode& node) {
    auto read = [&](const char* key) -> std::optional<long double> {
      if (!schema.contains(key)) return std::nullopt;
      if (!schema[key].is_number()) fail(where + "/" + key, fmt::format("'{}' must be a number", key));
      return static_cast<long double>(schema[key].get<double>());
    };
    long double low = static_cast<long double>(INT64_MIN), high = static_cast<long double>(INT64_MAX);
    if (auto value = read("minimum")) low = std::max(low, std::ceil(*value));
    if (auto value = read("exclusiveMinimum")) low = std::max(low, std::floor(*value) + 1);
    if (auto value = read("maximum")) high = std::min(high, std::floor(*value));
    if (auto value = read("exclusiveMaximum")) high = std::min(high, std::ceil(*value) - 1);
    if (low > high) fail(where, "no integer satisfies its 'minimum' / 'maximum' bounds");
    node.minimum = low <= static_cast<long double>(INT64_MIN) ? INT64_MIN : static_cast<int64_t>(low);
    node.maximum = high >= static_cast<long double>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(high);
  }

  void array(const Json& schema, const std::string& where, int nesting, SchemaNode& node) {
    node.kind = SchemaKind::Array;
    if (!schema.contains("items")) fail(where, "an array schema needs 'items'");
    node.items = compile(schema["items"], where + "/items", nesting + 1);
    node.min_items = count(schema, "minItems", 0, where);
    node.max_items = count(schema, "maxItems", UINT32_MAX, where);
    if (node.min_items >= JsonSchema::kUnboundedItems)
      fail(where + "/minItems", fmt::format("'minItems' must be below {}", JsonSchema::kUnboundedItems));
    if (node.min_items > node.max_items) fail(where, "'minItems' is above 'maxItems'");
  }

  // "#/$defs/NAME" or "#/definitions/NAME": a one-branch Choice reserved before the target
  // compiles, so the target may refer to itself.
  SchemaNodeId reference(const Json& ref, const std::string& where, int nesting) {
    if (!ref.is_string()) fail(where, "'$ref' must be a string");
    const std::string& text = ref.get_ref<const std::string&>();
    std::string section;
    for (const char* prefix : {"#/$defs/", "#/definitions/"})
      if (text.starts_with(prefix)) section = std::string(prefix).substr(2, std::string(prefix).size() - 3);
    if (section.empty())
      fail(where, fmt::format("'$ref' \"{}\" is not supported (only \"#/$defs/NAME\" and \"#/definitions/NAME\")", text));
    if (auto known = references_.find(text); known != references_.end()) return known->second;
    const std::string token = text.substr(section.size() + 3);
    if (token.find('/') != std::string::npos) fail(where, fmt::format("'$ref' \"{}\" is not supported", text));
    std::string name;
    for (size_t i = 0; i < token.size(); ++i) {
      if (token[i] == '~' && i + 1 < token.size() && (token[i + 1] == '0' || token[i + 1] == '1')) {
        name += token[++i] == '0' ? '~' : '/';
      } else {
        name += token[i];
      }
    }
    if (!root_.contains(section) || !root_[section].is_object() || !root_[section].contains(name))
      fail(where, fmt::format("'$ref' \"{}\" names no schema", text));
    SchemaNode alias;
    alias.kind = SchemaKind::Choice;
    const SchemaNodeId id = add(std::move(alias), where);
    references_[text] = id;
    const SchemaNodeId target = compile(root_[section][name], "/" + section + "/" + token, nesting + 1);
    nodes_[id].branches = {target};
    return id;
  }

  // Fills first_bytes of every node and the dispatch table of every Choice (nodes_ no longer
  // grows, so references into it stay valid through the recursion).
  void resolve(SchemaNodeId id) {
    if (state_.size() < nodes_.size()) state_.resize(nodes_.size(), 0);
    if (state_[id] == 2) return;
    if (state_[id] == 1) fail("", "a '$ref' or 'anyOf' that refers back to itself before any object or array");
    state_[id] = 1;
    SchemaNode& node = nodes_[id];
    switch (node.kind) {
      case SchemaKind::Object: node.first_bytes.set('{'); break;
      case SchemaKind::Array: node.first_bytes.set('['); break;
      case SchemaKind::String: node.first_bytes.set('"'); break;
      case SchemaKind::Number:
      case SchemaKind::Integer:
        node.first_bytes.set('-');
        for (int digit = '0'; digit <= '9'; ++digit) node.first_bytes.set(digit);
        break;
      case SchemaKind::Literals:
        for (const std::string& text : node.literals) node.first_bytes.set(static_cast<uint8_t>(text[0]));
        break;
      case SchemaKind::Union:
        break;  // made complete by tagged_union
      case SchemaKind::Choice: {
        // resolve() and tagged_union() may add nodes: nodes_ is indexed afresh after each.
        const std::vector<SchemaNodeId> branches = node.branches;
        std::array<SchemaNodeId, 256> dispatch;
        dispatch.fill(kNoSchemaNode);
        std::bitset<256> first_bytes;
        std::vector<SchemaNodeId> objects;  // the distinct alternatives starting with '{'
        for (SchemaNodeId branch : branches) {
          resolve(branch);
          const SchemaNode& target_node = nodes_[branch];
          for (int byte = 0; byte < 256; ++byte) {
            if (!target_node.first_bytes.test(byte)) continue;
            const SchemaNodeId target = target_node.kind == SchemaKind::Choice ? target_node.dispatch[byte] : branch;
            first_bytes.set(byte);
            if (byte == '{') {
              if (std::find(objects.begin(), objects.end(), target) == objects.end()) objects.push_back(target);
              continue;
            }
            if (dispatch[byte] != kNoSchemaNode && dispatch[byte] != target)
              fail("", fmt::format("alternatives (anyOf or a list of types) that may both start with '{}' are not "
                                   "supported",
                                   static_cast<char>(byte)));
            dispatch[byte] = target;
          }
        }
        if (!objects.empty()) dispatch['{'] = objects.size() == 1 ? objects[0] : tagged_union(objects);
        nodes_[id].dispatch = dispatch;
        nodes_[id].first_bytes = first_bytes;
        break;
      }
    }
    state_[id] = 2;
  }

  // The node a property's value is read under, through $ref aliases (one-branch Choices).
  SchemaNodeId through_aliases(SchemaNodeId id) const {
    for (size_t hops = 0; hops < nodes_.size() && nodes_[id].kind == SchemaKind::Choice && nodes_[id].branches.size() == 1;
         ++hops)
      id = nodes_[id].branches[0];
    return id;
  }

  // One Union node for alternatives that all start with '{' (Objects, or Unions made for an
  // inner anyOf): each object's first property must be required, under the same key in all,
  // with const/enum values (a Literals node) that no two objects share. Adds the Union and
  // the Literals of all the tags, both resolved.
  SchemaNodeId tagged_union(const std::vector<SchemaNodeId>& alternatives) {
    std::vector<SchemaNodeId> objects;
    for (SchemaNodeId id : alternatives) {
      const std::vector<SchemaNodeId> flat =
          nodes_[id].kind == SchemaKind::Union ? nodes_[id].branches : std::vector<SchemaNodeId>{id};
      for (SchemaNodeId object : flat)
        if (std::find(objects.begin(), objects.end(), object) == objects.end()) objects.push_back(object);
    }
    const std::string why =
        "alternatives (anyOf) that are objects are supported when each starts with the same required property "
        "whose 'const' or 'enum' values tell them apart";
    std::string key;
    SchemaNode tags;
    tags.kind = SchemaKind::Literals;
    std::vector<SchemaNodeId> variants;  // [i]: the object of tags.literals[i]
    for (SchemaNodeId object : objects) {
      const SchemaNode& candidate = nodes_[object];
      if (candidate.properties.empty() || !candidate.properties[0].required)
        fail("", why + " (one has no required first property)");
      if (key.empty()) key = candidate.properties[0].key_text;
      if (candidate.properties[0].key_text != key)
        fail("", fmt::format("{} (first properties {} and {})", why, key, candidate.properties[0].key_text));
      const SchemaNode& values = nodes_[through_aliases(candidate.properties[0].value)];
      if (values.kind != SchemaKind::Literals) fail("", fmt::format("{} ({} is not a const or enum)", why, key));
      for (const std::string& text : values.literals) {
        if (std::find(tags.literals.begin(), tags.literals.end(), text) != tags.literals.end())
          fail("", fmt::format("{} ({} is {} in two of them)", why, key, text));
        tags.literals.push_back(text);
        tags.first_bytes.set(static_cast<uint8_t>(text[0]));
        variants.push_back(object);
      }
    }
    if (tags.literals.size() >= UINT16_MAX) fail("", "too many alternatives");
    const SchemaNodeId tags_id = add(std::move(tags), "");
    SchemaNode tagged;
    tagged.kind = SchemaKind::Union;
    tagged.properties.push_back({key, tags_id, true});
    tagged.next_required = {0, 1};
    tagged.branches = std::move(variants);
    tagged.first_bytes.set('{');
    const SchemaNodeId id = add(std::move(tagged), "");
    state_.resize(nodes_.size(), 2);
    return id;
  }

  const Json& root_;
  JsonSchemaOptions options_;
  std::vector<SchemaNode> nodes_;
  std::map<std::string, SchemaNodeId> references_;
  std::vector<uint8_t> state_;  // resolve(): 0 not yet, 1 in progress, 2 done
};

}  // namespace

std::shared_ptr<const JsonSchema> compile_json_schema(const nlohmann::ordered_json& schema,
                                                      const JsonSchemaOptions& options) {
  return Compiler(schema, options).run();
}

}  // namespace rackserve
