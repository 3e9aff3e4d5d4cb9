// ServerConfig: YAML reading (unknown keys and wrong types rejected), validation ranges,
// and the printed config reading back to the same values.
#include <gtest/gtest.h>

#include "config/server_config.h"
#include "core/error.h"

namespace rackserve {
namespace {

TEST(ServerConfig, ReadsEveryKindOfField) {
  ServerConfig config = ServerConfig::from_yaml_text(
      "model: /models/tiny\nport: 9001\nmax_request_body_bytes: 4096\nthreads: 3\nenable_prefix_cache: false\n"
      "host: 0.0.0.0\ngpu_memory_utilization: 0.85\n",
      "test.yaml");
  EXPECT_EQ(config.model, "/models/tiny");
  EXPECT_EQ(config.port, 9001);
  EXPECT_EQ(config.max_request_body_bytes, 4096);
  EXPECT_EQ(config.threads, 3u);
  EXPECT_FALSE(config.enable_prefix_cache);
  EXPECT_EQ(config.host, "0.0.0.0");
  EXPECT_DOUBLE_EQ(config.gpu_memory_utilization, 0.85);
  EXPECT_EQ(config.max_running_requests, ServerConfig{}.max_running_requests);
}

TEST(ServerConfig, DefaultsListenOnLoopbackOnly) { EXPECT_EQ(ServerConfig{}.host, "127.0.0.1"); }

TEST(ServerConfig, EmptyFileGivesDefaults) {
  ServerConfig config = ServerConfig::from_yaml_text("", "empty.yaml");
  EXPECT_EQ(config.port, 8000);
}

TEST(ServerConfig, RejectsUnknownKeysWrongTypesAndNonMappings) {
  EXPECT_THROW(ServerConfig::from_yaml_text("prot: 80\n", "t"), Error);
  EXPECT_THROW(ServerConfig::from_yaml_text("port: eighty\n", "t"), Error);
  EXPECT_THROW(ServerConfig::from_yaml_text("port: 80.5\n", "t"), Error);
  EXPECT_THROW(ServerConfig::from_yaml_text("enable_prefix_cache: maybe\n", "t"), Error);
  EXPECT_THROW(ServerConfig::from_yaml_text("model: [a, b]\n", "t"), Error);
  EXPECT_THROW(ServerConfig::from_yaml_text("- model\n", "t"), Error);
  EXPECT_THROW(ServerConfig::from_yaml_text("model: {\n", "t"), Error);
}

TEST(ServerConfig, ValidateNamesTheFieldOutOfRange) {
  ServerConfig config;
  config.model = "m";
  EXPECT_NO_THROW(config.validate());
  ServerConfig no_model;
  EXPECT_THROW(no_model.validate(), Error);
  auto expect_invalid = [&](auto mutate, const std::string& name) {
    ServerConfig bad = config;
    mutate(bad);
    try {
      bad.validate();
      ADD_FAILURE() << name << " accepted";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find(name), std::string::npos) << error.what();
    }
  };
  expect_invalid([](ServerConfig& c) { c.port = 70000; }, "port");
  expect_invalid([](ServerConfig& c) { c.max_running_requests = 0; }, "max_running_requests");
  expect_invalid([](ServerConfig& c) { c.kv_cache_dtype = "int3"; }, "kv_cache_dtype");
  expect_invalid([](ServerConfig& c) { c.device = "tpu"; }, "device");
  expect_invalid([](ServerConfig& c) { c.max_n = 0; }, "max_n");
  expect_invalid([](ServerConfig& c) { c.reasoning_parser = "x"; }, "reasoning_parser");
  expect_invalid([](ServerConfig& c) { c.custom_all_reduce_max_kib = 8193; }, "custom_all_reduce_max_kib");
  expect_invalid([](ServerConfig& c) { c.custom_all_reduce_max_kib = -1; }, "custom_all_reduce_max_kib");
  expect_invalid([](ServerConfig& c) { c.gpu_memory_utilization = 0.0; }, "gpu_memory_utilization");
  expect_invalid([](ServerConfig& c) { c.gpu_memory_utilization = 1.5; }, "gpu_memory_utilization");
  expect_invalid([](ServerConfig& c) { c.activation_reserve_gib = -1.0; }, "activation_reserve_gib");
}

TEST(ServerConfig, PrintedConfigReadsBackAndMasksTheKey) {
  ServerConfig config;
  config.model = "dir with: colon";
  config.port = 1234;
  config.api_key = "secret-value";
  std::string yaml = config.to_yaml();
  EXPECT_EQ(yaml.find("secret-value"), std::string::npos);
  ServerConfig back = ServerConfig::from_yaml_text(yaml, "printed");
  EXPECT_EQ(back.model, config.model);
  EXPECT_EQ(back.port, 1234);
  EXPECT_EQ(back.max_num_batched_tokens, config.max_num_batched_tokens);
  EXPECT_DOUBLE_EQ(back.gpu_memory_utilization, config.gpu_memory_utilization);
}

TEST(ServerConfig, ModelNameDefaultsToTheDirectoryName) {
  ServerConfig config;
  config.model = "/models/GLM-4.7-FP8/";
  EXPECT_EQ(config.effective_model_name(), "GLM-4.7-FP8");
  config.served_model_name = "glm";
  EXPECT_EQ(config.effective_model_name(), "glm");
}

}  // namespace
}  // namespace rackserve
