// JsonTokenMask: which tokens of a vocabulary may come next under a grammar state (JsonGrammar
// for response_format {"type": "json_object"}, JsonSchemaGrammar for "json_schema",
// ChoiceGrammar for structured_outputs "choice"), for constrained decoding. Built once per tokenizer from each token's raw bytes; the sampler
// takes banned() as SamplingRow::banned.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/choice_grammar.h"
#include "engine/json_grammar.h"
#include "engine/json_schema_grammar.h"

namespace rackserve {

// A token is allowed from a state when the grammar accepts its whole byte string from there
// (Grammar::accept(std::string_view)). Tokens whose bytes are empty (special and control
// tokens) are never allowed, except the EOS ids, which are allowed exactly when the state is
// complete(), whatever bytes they decode to.
//
// Cost: the token strings live in a byte trie (about one node per byte of the vocabulary,
// 20 bytes each). allowed() walks it depth-first, copying the grammar state (~24 bytes for
// JsonGrammar, ~144 for JsonSchemaGrammar, 24 for ChoiceGrammar) once per trie edge it
// tries and pruning a subtree at the first refused byte: cheap between structural tokens. Inside a string the subtrees
// of plain string content (nearly every token) are added as whole id ranges, and only the
// paths to tokens holding a quote, a backslash or a control byte are walked. The ids come
// out of a flag per vocabulary entry, in order, with no sort. The token strings
// are also kept by id (token_bytes()), to advance a state by the sampled token. Immutable
// after construction; safe to share between threads.
class JsonTokenMask {
 public:
  // token_bytes[id]: the raw bytes token `id` decodes to (empty for special tokens). Every EOS
  // id must be in [0, token_bytes.size()); throws rackserve::Error otherwise.
  JsonTokenMask(std::vector<std::string> token_bytes, std::vector<int32_t> eos_ids);

  // The sorted ids of the tokens allowed from `state`. Grammar: JsonGrammar, JsonSchemaGrammar
  // or ChoiceGrammar (instantiated in token_mask.cpp): accept(uint8_t), complete() and
  // plain_string_room() (json_grammar.h).
  template <class Grammar>
  std::vector<int32_t> allowed(const Grammar& state) const;
  // The sorted ids in [0, vocab_size()) that allowed() leaves out.
  template <class Grammar>
  std::vector<int32_t> banned(const Grammar& state) const;

  int32_t vocab_size() const { return vocab_size_; }
  // The bytes the constructor was given for `id`, in [0, vocab_size()): what a state
  // advances by when the token is sampled (EOS ids excepted: see is_eos()).
  const std::string& token_bytes(int32_t id) const { return token_bytes_[id]; }
  // `id` ends the document rather than adding to it: it never advances a state.
  bool is_eos(int32_t id) const;

 private:
  // A trie node: the byte on the edge from its parent, its children (contiguous in nodes_,
  // sorted by byte) and its tokens in ids_ (sorted by bytes, so the tokens below a node are
  // contiguous): [first_id, first_id + id_count) end here, [first_id + id_count,
  // subtree_end) below.
  struct Node {
    uint32_t first_child = 0;
    uint32_t first_id = 0;
    uint32_t id_count = 0;
    uint32_t subtree_end = 0;
    uint16_t child_count = 0;  // at most 256
    uint8_t byte = 0;
    // Every byte string from this node down, read from a character boundary, is plain string
    // content (json_bytes: well-formed UTF-8 prefixes, no control bytes, '"' or '\'): from a
    // grammar state whose plain_string_room() holds the longest token here, every token below
    // is allowed.
    bool plain_below = false;
  };
  void build();
  void mark_plain_subtrees();
  // flags[id] = 1 for the tokens allowed from `state`, 0 for the rest.
  template <class Grammar>
  std::vector<uint8_t> allowed_flags(const Grammar& state) const;

  std::vector<std::string> token_bytes_;  // by id
  std::vector<Node> nodes_;       // nodes_[0] is the root (the empty string)
  std::vector<int32_t> ids_;      // token ids sorted by their bytes (node ranges: Node)
  std::vector<int32_t> eos_ids_;  // sorted, distinct
  int32_t vocab_size_ = 0;
  uint32_t max_token_bytes_ = 0;  // the longest token's bytes
};

}  // namespace rackserve
