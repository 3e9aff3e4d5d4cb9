// ServerConfig: every knob of `rackserve serve`, read from a YAML file (yaml-cpp) and then
// overridden by command-line flags (src/cli/cmd_serve.cpp). validate() runs once at start;
// after it the config is passed around by const reference and never changes.
// configs/serve.example.yaml documents each field under the same snake_case name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace rackserve {

struct ServerConfig {
  // What to serve.
  std::string model;               // model directory: config.json, *.safetensors, tokenizer files
  std::string served_model_name;   // name clients send as "model"; empty: the model directory's name
  std::string chat_template;       // Jinja file overriding tokenizer_config.json's; empty: the model's own
  std::string reasoning_parser = "auto";  // auto (on when the vocabulary has </think>), think, none
  // auto (the format the chat template renders tool calls in), none, or a format name
  // (deepseek_v3, deepseek_v31, kimi_k2, glm45, minimax_m2); checked at start by serve.
  std::string tool_call_parser = "auto";
  std::string device = "auto";     // cpu, cuda or auto
  uint32_t threads = 0;            // CPU backend threads per rank; 0: all cores / tensor_parallel_size
  int32_t tensor_parallel_size = 1;  // --tp: ranks splitting the model (CUDA: GPUs 0..N-1)
  int32_t tp_timeout_seconds = 600;  // a tensor-parallel step longer than this aborts the server; 0: none
  int32_t custom_all_reduce_max_kib = 512;  // all-reduces up to this size take the one-shot peer kernel; 0: NCCL only

  // HTTP.
  std::string host = "127.0.0.1";  // listen address; 0.0.0.0 exposes the server to the network
  int32_t port = 8000;
  std::string api_key;             // when set, every /v1 and /tokenize call needs "Authorization: Bearer KEY" or "x-api-key: KEY"
  int64_t max_request_body_bytes = 8 << 20;  // larger bodies get 413
  int32_t http_threads = 0;        // 0: max_running_requests + 16 (a streaming response holds one thread)
  int32_t stats_interval_seconds = 10;  // periodic stats line; 0 disables it

  // Engine and KV cache.
  int32_t max_model_len = 0;            // prompt + completion tokens; 0: the model's max_position_embeddings
  int32_t max_running_requests = 64;    // sequences holding KV pages at once
  int32_t max_num_batched_tokens = 2048;  // tokens per engine step (decodes + prefill chunks)
  int32_t max_queued_requests = 1024;   // accepted, unfinished requests; more get 503 + Retry-After
  std::string kv_cache_dtype = "auto";  // auto (the backend's native KV type), bf16, fp8
  int32_t page_size = 64;               // tokens per KV page
  int32_t num_kv_pages = 0;             // 0: on a GPU, what its memory holds (below); on the CPU, enough for
                                        // max_running_requests full-length sequences
  // On a GPU the KV cache takes what the weights and activation_reserve_gib leave of
  // gpu_memory_utilization x its memory (vLLM's --gpu-memory-utilization), at most enough for
  // max_running_requests full-length sequences.
  double gpu_memory_utilization = 0.9;
  double activation_reserve_gib = 4.0;  // activations, CUDA graphs, NCCL buffers
  bool enable_prefix_cache = true;
  int32_t max_n = 16;                   // largest accepted "n"
  int32_t max_logprobs = 20;            // largest accepted top_logprobs / logprobs

  // Reads `path` (YAML mapping, keys as above). Unknown keys and wrong types throw
  // rackserve::Error naming the key, so a typo never silently falls back to a default.
  static ServerConfig from_yaml_file(const std::filesystem::path& path);
  static ServerConfig from_yaml_text(const std::string& text, const std::string& origin);
  // Throws rackserve::Error naming the first field out of range.
  void validate() const;
  // The effective configuration as YAML (what --print-config prints); the api key is masked.
  std::string to_yaml() const;
  // served_model_name, or the model directory's last component.
  std::string effective_model_name() const;
};

}  // namespace rackserve
