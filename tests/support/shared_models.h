// Helpers for tests that read the real model files under RACKSERVE_SHARED_MODELS_DIR
// (the repository's ../shared/models) and check rackserve::Error messages.
#pragma once

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace rackserve::testing {

inline const std::filesystem::path kSharedModels = RACKSERVE_SHARED_MODELS_DIR;

// The JSON file at `relative` below the shared models directory (a test failure if absent).
inline nlohmann::json read_shared_json(const std::string& relative) {
  std::ifstream stream(kSharedModels / relative);
  EXPECT_TRUE(stream.good()) << relative;
  return nlohmann::json::parse(stream);
}

// The message of the rackserve::Error `run` throws ("" when it does not throw).
inline std::string error_of(const std::function<void()>& run) {
  try {
    run();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

}  // namespace rackserve::testing
