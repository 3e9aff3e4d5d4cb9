#include "engine/sampling_params.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace rackserve {

namespace {

using nlohmann::json;

std::optional<float> read_float(const json& object, const char* key, const std::string& source) {
  auto found = object.find(key);
  if (found == object.end() || found->is_null()) return std::nullopt;
  RS_CHECK(found->is_number(), "{}: \"{}\" must be a number", source, key);
  return found->get<float>();
}

std::optional<int32_t> read_int(const json& object, const char* key, const std::string& source) {
  auto found = object.find(key);
  if (found == object.end() || found->is_null()) return std::nullopt;
  RS_CHECK(found->is_number_integer(), "{}: \"{}\" must be an integer", source, key);
  return found->get<int32_t>();
}

}  // namespace

GenerationConfig GenerationConfig::from_json_text(const std::string& text, const std::string& source) {
  json object;
  try {
    object = json::parse(text);
  } catch (const json::parse_error& error) {
    RS_FAIL("{}: invalid JSON: {}", source, error.what());
  }
  RS_CHECK(object.is_object(), "{}: expected a JSON object", source);
  GenerationConfig config;
  config.temperature = read_float(object, "temperature", source);
  config.top_p = read_float(object, "top_p", source);
  config.min_p = read_float(object, "min_p", source);
  config.repetition_penalty = read_float(object, "repetition_penalty", source);
  config.top_k = read_int(object, "top_k", source);
  config.max_new_tokens = read_int(object, "max_new_tokens", source);
  config.bos_token_id = read_int(object, "bos_token_id", source);
  if (auto eos = object.find("eos_token_id"); eos != object.end() && !eos->is_null()) {
    if (eos->is_number_integer()) {
      config.eos_token_ids.push_back(eos->get<int32_t>());
    } else {
      RS_CHECK(eos->is_array(), "{}: \"eos_token_id\" must be an integer or a list of integers", source);
      for (const json& id : *eos) {
        RS_CHECK(id.is_number_integer(), "{}: \"eos_token_id\" must be an integer or a list of integers", source);
        config.eos_token_ids.push_back(id.get<int32_t>());
      }
    }
  }
  return config;
}

GenerationConfig GenerationConfig::load(const std::string& model_directory) {
  std::filesystem::path path = std::filesystem::path(model_directory) / "generation_config.json";
  if (!std::filesystem::exists(path)) return {};
  std::ifstream file(path);
  RS_CHECK(file, "cannot read {}", path.string());
  std::stringstream text;
  text << file.rdbuf();
  return from_json_text(text.str(), path.string());
}

SamplingParams GenerationConfig::apply(SamplingParams params) const {
  if (!params.temperature) params.temperature = temperature.value_or(1.0f);
  if (!params.top_p) params.top_p = top_p.value_or(1.0f);
  if (!params.top_k) params.top_k = top_k.value_or(0);
  if (!params.min_p) params.min_p = min_p.value_or(0.0f);
  if (!params.repetition_penalty) params.repetition_penalty = repetition_penalty.value_or(1.0f);
  if (!params.max_tokens && max_new_tokens) params.max_tokens = max_new_tokens;
  return params;
}

}  // namespace rackserve
