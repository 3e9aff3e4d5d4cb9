// Reading the committed tokenizer fixtures (tests/data/tokenizers/, written by
// tests/reference/make_tokenizer_fixtures.py and make_js_tiktoken_fixtures.mjs):
// whole files and JSON Lines records.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "text/token_id.h"

namespace rackserve::text::testing {

inline std::filesystem::path tokenizer_data_dir() {
  return std::filesystem::path(RACKSERVE_TEST_DATA_DIR) / "tokenizers";
}

inline std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) ADD_FAILURE() << "cannot open " << path;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
  std::vector<nlohmann::json> records;
  std::istringstream lines(read_text_file(path));
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty()) records.push_back(nlohmann::json::parse(line));
  }
  return records;
}

inline std::vector<TokenId> ids_of(const nlohmann::json& array) { return array.get<std::vector<TokenId>>(); }

// The held-out corpus every fixture encodes.
inline std::vector<std::string> read_corpus() {
  std::vector<std::string> texts;
  for (const auto& record : read_jsonl(tokenizer_data_dir() / "corpus.jsonl")) texts.push_back(record["text"]);
  return texts;
}

}  // namespace rackserve::text::testing
