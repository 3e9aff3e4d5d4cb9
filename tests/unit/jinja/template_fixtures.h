// The per-template fixtures under tests/data/chat_templates/templates (written by
// tests/reference/make_template_fixtures.py): which templates there are, each one's text
// loaded as the generator read it, and the ChatTemplate the fixture's outputs come from.
#pragma once

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fixture_support.h"
#include "text/chat_template.h"

namespace rackserve::text::testing {

// "<model dir>__<file>[__<template name>]", sorted.
inline std::vector<std::string> template_ids() {
  std::vector<std::string> ids;
  for (const auto& entry : std::filesystem::directory_iterator(jinja::testing::fixture_dir() + "/templates")) {
    ids.push_back(entry.path().stem().string());
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

inline nlohmann::ordered_json read_template_fixture(const std::string& id) {
  return jinja::testing::read_json(jinja::testing::fixture_dir() + "/templates/" + id + ".json");
}

// The template text exactly as the fixture generator read it.
inline ChatTemplateSource load_template_source(const nlohmann::ordered_json& fixture) {
  const std::filesystem::path shared(RACKSERVE_SHARED_MODELS_DIR);
  const std::filesystem::path file = shared / fixture["file"].get<std::string>();
  if (fixture["field"].is_null()) return find_chat_template(file.parent_path(), file);
  if (file.filename() == "tokenizer_config.json") {
    std::optional<std::string> name;
    if (!fixture["name"].is_null()) name = fixture["name"].get<std::string>();
    return find_chat_template(file.parent_path(), std::nullopt, name);
  }
  const auto config = nlohmann::ordered_json::parse(jinja::testing::read_text(file.string()));
  return {config["chat_template"].get<std::string>(), file.string()};
}

// The template with the fixture's special tokens and strftime_now.
inline std::shared_ptr<const ChatTemplate> load_fixture_template(const nlohmann::ordered_json& fixture) {
  SpecialTokens tokens;
  tokens.bos_token = fixture["bos_token"].get<std::string>();
  tokens.eos_token = fixture["eos_token"].get<std::string>();
  return std::make_shared<const ChatTemplate>(load_template_source(fixture), tokens,
                                              jinja::testing::pinned_options(fixture["strftime_now"].get<std::string>()));
}

}  // namespace rackserve::text::testing
