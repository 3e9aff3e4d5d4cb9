// JsonSchema: a JSON Schema compiled (json_schema_compile.h) into an immutable table of nodes
// that JsonSchemaGrammar walks byte by byte. Nodes refer to each other by index, so $ref
// recursion is a cycle in the table; the table is shared by pointer between the sequences of
// a request and never changes after compilation.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rackserve {

using SchemaNodeId = uint16_t;
constexpr SchemaNodeId kNoSchemaNode = UINT16_MAX;

enum class SchemaKind : uint8_t {
  Object,    // the declared properties in declaration order, required ones mandatory
  Array,     // items, between min_items and max_items of them
  String,    // any JSON string
  Number,    // any JSON number
  Integer,   // a JSON number without fraction or exponent
  Literals,  // one of `literals` (enum, const, boolean and null)
  Choice,    // one of `branches` (anyOf, a list of types, a $ref alias), told apart by the first byte
  // Objects that all start with the same required property whose values (Literals) tell them
  // apart: a discriminated anyOf. Read as an object of that one property (`properties[0]`, its
  // value a Literals node of every variant's tags); once its value is read, the object goes on
  // as `branches[i]` (an Object) from its second property, i the tag's index in the Literals.
  Union,
};

struct SchemaProperty {
  std::string key_text;  // the key as JSON writes it, quotes included
  SchemaNodeId value = kNoSchemaNode;
  bool required = false;
};

struct SchemaNode {
  SchemaKind kind = SchemaKind::String;
  // Object.
  std::vector<SchemaProperty> properties;
  // Object: [i] is the index of the first required property at or after i (properties.size()
  // when none), so from property i the keys up to and including that one may come next.
  std::vector<uint16_t> next_required;
  // Array. A max_items of kUnboundedItems or more means no bound.
  SchemaNodeId items = kNoSchemaNode;
  uint32_t min_items = 0;
  uint32_t max_items = UINT32_MAX;
  // String: how many characters (code points) the value holds, [min_length, max_length].
  uint32_t min_length = 0;
  uint32_t max_length = UINT32_MAX;
  // Integer: the values allowed, [minimum, maximum] (exclusive bounds folded in).
  int64_t minimum = INT64_MIN;
  int64_t maximum = INT64_MAX;
  // Literals: the canonical JSON texts (nlohmann's dump) of the allowed values; non-empty.
  std::vector<std::string> literals;
  // Choice: the alternatives; `dispatch[b]` is the non-Choice node a value starting with
  // byte b is read under (kNoSchemaNode: no alternative starts with b). Union: the variant of
  // each tag.
  std::vector<SchemaNodeId> branches;
  std::array<SchemaNodeId, 256> dispatch{};
  // Every kind: the bytes a value of this node may start with.
  std::bitset<256> first_bytes;
};

class JsonSchema {
 public:
  // Array counts saturate here: a bound at or above it is no bound.
  static constexpr uint32_t kUnboundedItems = UINT16_MAX;

  // Whitespace runs a document may hold by default (JsonSchemaGrammar).
  static constexpr int kDefaultMaxWhitespaceRun = 8;

  JsonSchema(std::vector<SchemaNode> nodes, SchemaNodeId root, int max_whitespace_run = kDefaultMaxWhitespaceRun)
      : nodes_(std::move(nodes)), root_(root), max_whitespace_run_(max_whitespace_run) {}

  const SchemaNode& node(SchemaNodeId id) const { return nodes_[id]; }
  // An Object or Union node (the document is one object, as for json_object), or an Array
  // node (compile_json_schema's TopLevel::Array).
  SchemaNodeId root() const { return root_; }
  size_t size() const { return nodes_.size(); }
  // The longest run of whitespace bytes allowed between tokens (and after the document).
  int max_whitespace_run() const { return max_whitespace_run_; }

 private:
  std::vector<SchemaNode> nodes_;
  SchemaNodeId root_;
  int max_whitespace_run_;
};

}  // namespace rackserve
