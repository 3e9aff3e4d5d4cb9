// The tiny reference models under tests/data/models: the BF16 ones written by
// tests/reference/make_fixtures.py (reference logits in prompt_<i>.logits), their FP8
// versions written by make_fp8_fixtures.py (prompt_<i>.w8a16 / .w8a8) and INT4 versions
// written by make_int4_fixtures.py (prompt_<i>.w4a16). A fixture is BF16 when its config.json
// carries no quantization_config; otherwise its kind is the format of its routed experts
// (fixture_kind).
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "weights/quant_config.h"
#include "weights/safetensors.h"

namespace rackserve::testing {

enum class FixtureKind { Bf16, Fp8, Int4 };

inline std::filesystem::path fixture_directory(const std::string& name) {
  return std::filesystem::path(RACKSERVE_TEST_DATA_DIR) / "models" / name;
}

// The kind of the fixture in `directory`, told by how its QuantConfig stores a routed expert's
// projection: the FP8 fixtures quantize every projection (the experts among them), the INT4
// ones (Kimi-K2.5's quantization_config) only the routed experts. Throws for any other format,
// so a new kind of fixture is not silently counted as one of these.
inline FixtureKind fixture_kind(const std::filesystem::path& directory) {
  const QuantConfig quant = QuantConfig::load(directory);
  if (quant.method() == "none") return FixtureKind::Bf16;
  const WeightFormat format = quant.linear("model.layers.0.mlp.experts.0.down_proj").format;
  switch (format) {
    case WeightFormat::Fp8Block:
    case WeightFormat::Fp8Channel:
    case WeightFormat::Fp8Tensor:
      return FixtureKind::Fp8;
    case WeightFormat::Int4Group:
      return FixtureKind::Int4;
    default:
      throw std::runtime_error(directory.string() + ": routed experts stored as " +
                               std::string(weight_format_name(format)) + ", not a fixture kind of support/fixtures.h");
  }
}

// Names of the fixtures of `kind` that have reference outputs, sorted.
inline std::vector<std::string> fixture_names(FixtureKind kind) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(RACKSERVE_TEST_DATA_DIR) / "models")) {
    if (!std::filesystem::exists(entry.path() / "reference.safetensors")) continue;
    if (fixture_kind(entry.path()) == kind) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The tensor `name` of a reference file as a flat vector of T (T must be its dtype's type).
template <typename T>
std::vector<T> read_reference_vector(const WeightStore& store, const std::string& name) {
  const TensorRecord& record = store.get(name);
  const T* data = reinterpret_cast<const T*>(record.data);
  return std::vector<T>(data, data + record.bytes / sizeof(T));
}

// The token ids of every prompt_<i>.tokens in a fixture's reference.safetensors, in order.
inline std::vector<std::vector<int32_t>> fixture_prompts(const std::filesystem::path& directory) {
  WeightStore reference = WeightStore::open(directory / "reference.safetensors");
  std::vector<std::vector<int32_t>> prompts;
  for (int p = 0; reference.contains("prompt_" + std::to_string(p) + ".tokens"); ++p)
    prompts.push_back(read_reference_vector<int32_t>(reference, "prompt_" + std::to_string(p) + ".tokens"));
  return prompts;
}

// A gtest parameter name for a fixture ("dsv3-plain" -> "dsv3_plain").
inline std::string fixture_test_name(std::string name) {
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

}  // namespace rackserve::testing
