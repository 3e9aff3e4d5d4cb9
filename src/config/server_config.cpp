// ServerConfig I/O. One table lists every field once, so YAML reading, printing and the
// unknown-key check cannot drift apart.
#include "config/server_config.h"

#include <array>
#include <fstream>
#include <limits>
#include <sstream>
#include <variant>

#include <yaml-cpp/yaml.h>

#include "core/error.h"

namespace rackserve {
namespace {

using FieldPointer = std::variant<std::string ServerConfig::*, int32_t ServerConfig::*, int64_t ServerConfig::*,
                                  uint32_t ServerConfig::*, bool ServerConfig::*, double ServerConfig::*>;

struct Field {
  const char* name;
  FieldPointer member;
};

const std::array kFields = {
    Field{"model", &ServerConfig::model},
    Field{"served_model_name", &ServerConfig::served_model_name},
    Field{"chat_template", &ServerConfig::chat_template},
    Field{"reasoning_parser", &ServerConfig::reasoning_parser},
    Field{"tool_call_parser", &ServerConfig::tool_call_parser},
    Field{"device", &ServerConfig::device},
    Field{"threads", &ServerConfig::threads},
    Field{"tensor_parallel_size", &ServerConfig::tensor_parallel_size},
    Field{"tp_timeout_seconds", &ServerConfig::tp_timeout_seconds},
    Field{"custom_all_reduce_max_kib", &ServerConfig::custom_all_reduce_max_kib},
    Field{"host", &ServerConfig::host},
    Field{"port", &ServerConfig::port},
    Field{"api_key", &ServerConfig::api_key},
    Field{"max_request_body_bytes", &ServerConfig::max_request_body_bytes},
    Field{"http_threads", &ServerConfig::http_threads},
    Field{"stats_interval_seconds", &ServerConfig::stats_interval_seconds},
    Field{"max_model_len", &ServerConfig::max_model_len},
    Field{"max_running_requests", &ServerConfig::max_running_requests},
    Field{"max_num_batched_tokens", &ServerConfig::max_num_batched_tokens},
    Field{"max_queued_requests", &ServerConfig::max_queued_requests},
    Field{"kv_cache_dtype", &ServerConfig::kv_cache_dtype},
    Field{"page_size", &ServerConfig::page_size},
    Field{"num_kv_pages", &ServerConfig::num_kv_pages},
    Field{"gpu_memory_utilization", &ServerConfig::gpu_memory_utilization},
    Field{"activation_reserve_gib", &ServerConfig::activation_reserve_gib},
    Field{"enable_prefix_cache", &ServerConfig::enable_prefix_cache},
    Field{"max_n", &ServerConfig::max_n},
    Field{"max_logprobs", &ServerConfig::max_logprobs},
};

template <typename T>
T read_scalar(const YAML::Node& node, const std::string& key, const std::string& origin) {
  RS_CHECK(node.IsScalar(), "{}: \"{}\" must be a scalar", origin, key);
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    RS_FAIL("{}: \"{}\" has the wrong type (value \"{}\")", origin, key, node.Scalar());
  }
}

void check_range(int64_t value, int64_t low, int64_t high, const char* name) {
  RS_CHECK(value >= low && value <= high, "{} must be in [{}, {}], got {}", name, low, high, value);
}

bool one_of(const std::string& value, std::initializer_list<const char*> allowed) {
  for (const char* option : allowed)
    if (value == option) return true;
  return false;
}

}  // namespace

ServerConfig ServerConfig::from_yaml_text(const std::string& text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& error) {
    RS_FAIL("{}: invalid YAML: {}", origin, error.what());
  }
  ServerConfig config;
  if (root.IsNull()) return config;
  RS_CHECK(root.IsMap(), "{}: the top level must be a mapping of option names to values", origin);
  for (const auto& entry : root) {
    const std::string key = entry.first.as<std::string>();
    const Field* field = nullptr;
    for (const auto& candidate : kFields)
      if (key == candidate.name) field = &candidate;
    RS_CHECK(field != nullptr, "{}: unknown option \"{}\"", origin, key);
    std::visit([&](auto member) {
      using T = std::remove_reference_t<decltype(config.*member)>;
      config.*member = read_scalar<T>(entry.second, key, origin);
    }, field->member);
  }
  return config;
}

ServerConfig ServerConfig::from_yaml_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  RS_CHECK(file.good(), "cannot open config file {}", path.string());
  std::stringstream text;
  text << file.rdbuf();
  return from_yaml_text(text.str(), path.string());
}

void ServerConfig::validate() const {
  RS_CHECK(!model.empty(), "model is required (--model DIR)");
  RS_CHECK(one_of(device, {"cpu", "cuda", "auto"}), "device must be cpu, cuda or auto, got \"{}\"", device);
  RS_CHECK(one_of(reasoning_parser, {"auto", "think", "none"}), "reasoning_parser must be auto, think or none, got \"{}\"",
           reasoning_parser);
  RS_CHECK(!tool_call_parser.empty(), "tool_call_parser must be auto, none or a format name");
  RS_CHECK(one_of(kv_cache_dtype, {"auto", "bf16", "fp8"}), "kv_cache_dtype must be auto, bf16 or fp8, got \"{}\"",
           kv_cache_dtype);
  RS_CHECK(!host.empty(), "host must not be empty");
  check_range(port, 0, 65535, "port");
  check_range(tensor_parallel_size, 1, 64, "tensor_parallel_size");
  check_range(tp_timeout_seconds, 0, 86400, "tp_timeout_seconds");
  check_range(custom_all_reduce_max_kib, 0, 8192, "custom_all_reduce_max_kib");
  check_range(max_request_body_bytes, 1024, int64_t{1} << 32, "max_request_body_bytes");
  check_range(http_threads, 0, 4096, "http_threads");
  check_range(stats_interval_seconds, 0, 86400, "stats_interval_seconds");
  check_range(max_model_len, 0, std::numeric_limits<int32_t>::max(), "max_model_len");
  check_range(max_running_requests, 1, 65536, "max_running_requests");
  check_range(max_num_batched_tokens, 1, std::numeric_limits<int32_t>::max(), "max_num_batched_tokens");
  check_range(max_queued_requests, 1, 1 << 24, "max_queued_requests");
  check_range(page_size, 1, 4096, "page_size");
  check_range(num_kv_pages, 0, std::numeric_limits<int32_t>::max(), "num_kv_pages");
  RS_CHECK(gpu_memory_utilization > 0.0 && gpu_memory_utilization <= 1.0,
           "gpu_memory_utilization must be in (0, 1], got {}", gpu_memory_utilization);
  RS_CHECK(activation_reserve_gib >= 0.0 && activation_reserve_gib <= 1024.0,
           "activation_reserve_gib must be in [0, 1024], got {}", activation_reserve_gib);
  check_range(max_n, 1, 128, "max_n");
  check_range(max_logprobs, 0, 1024, "max_logprobs");
}

std::string ServerConfig::to_yaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const auto& field : kFields) {
    out << YAML::Key << field.name << YAML::Value;
    std::visit([&](auto member) {
      const auto& value = this->*member;
      using T = std::remove_cvref_t<decltype(value)>;
      if constexpr (std::is_same_v<T, std::string>) {
        if (field.member == FieldPointer(&ServerConfig::api_key) && !value.empty())
          out << YAML::DoubleQuoted << "<set>";
        else
          out << YAML::DoubleQuoted << value;
      } else {
        out << value;
      }
    }, field.member);
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string ServerConfig::effective_model_name() const {
  if (!served_model_name.empty()) return served_model_name;
  std::filesystem::path path(model);
  if (!path.has_filename()) path = path.parent_path();  // "dir/" -> "dir"
  return path.filename().string();
}

}  // namespace rackserve
