// rackserve serve: loads the model, tokenizer and chat template, starts the Engine thread
// and serves the OpenAI-compatible API until SIGINT/SIGTERM. Configuration: defaults,
// then --config FILE.yaml, then flags (flags win); validated once, then const.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <ctime>
#include <limits>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include "api/http_server.h"
#include "api/json_object_mask.h"
#include "api/reasoning_splitter.h"
#include "api/stats_reporter.h"
#include "api/template_renderer.h"
#include "api/tokenizer_detokenizer.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "config/server_config.h"
#include "core/dtype.h"
#include "core/error.h"
#include "engine/engine.h"
#include "models/footprint.h"
#include "parallel/gpu_topology.h"
#include "parallel/nccl_advice.h"
#include "text/chat_template.h"
#include "text/parsers/tool_call_special_tokens.h"
#include "text/tokenizer.h"

namespace rackserve::cli {
namespace {

void add_serve_options(cxxopts::Options& options) {
  options.add_options()("config", "YAML file with any of the options below (snake_case keys); flags override it",
                        cxxopts::value<std::string>())(
      "model", "model directory: config.json, *.safetensors, tokenizer.json, tokenizer_config.json",
      cxxopts::value<std::string>())("served-model-name", "the model name clients use (default: the directory name)",
                                     cxxopts::value<std::string>())(
      "host", "listen address (default 127.0.0.1; 0.0.0.0 for all interfaces)", cxxopts::value<std::string>())(
      "port", "listen port (0: any free port, printed at start)", cxxopts::value<int32_t>())(
      "max-model-len", "prompt + completion tokens (default: the model's max_position_embeddings)",
      cxxopts::value<int32_t>())("max-running-requests", "sequences holding KV pages at once", cxxopts::value<int32_t>())(
      "max-num-batched-tokens", "tokens per engine step (decodes + prefill chunks)", cxxopts::value<int32_t>())(
      "max-queued-requests", "unfinished requests accepted before answering 503", cxxopts::value<int32_t>())(
      "num-kv-pages", "KV pages (0: on a GPU what its memory holds, on the CPU enough for max-running-requests "
      "full-length sequences)", cxxopts::value<int32_t>())(
      "gpu-memory-utilization", "fraction of each GPU's memory for weights, activations and the KV cache",
      cxxopts::value<double>())(
      "activation-reserve-gib", "GPU memory kept for activations, CUDA graphs and NCCL when sizing the KV cache",
      cxxopts::value<double>())(
      "kv-cache-dtype", "auto, bf16 or fp8", cxxopts::value<std::string>())(
      "api-key", "require \"Authorization: Bearer KEY\" or \"x-api-key: KEY\" on /v1/*, /tokenize, /detokenize", cxxopts::value<std::string>())(
      "chat-template", "Jinja file replacing the model's chat template", cxxopts::value<std::string>())(
      "reasoning-parser", "auto, think or none: move <think>…</think> text to reasoning_content",
      cxxopts::value<std::string>())(
      "tool-call-parser", "auto (the chat template's format), none, deepseek_v3, deepseek_v31, kimi_k2, glm45 or "
                          "minimax_m2: tool calls in the answer become tool_calls",
      cxxopts::value<std::string>())("device", "cpu, cuda or auto", cxxopts::value<std::string>())(
      "threads", "CPU backend threads per rank (0: all cores / --tp)", cxxopts::value<uint32_t>())(
      "tp", "tensor-parallel size: ranks splitting the model (CUDA: GPUs 0..N-1, NCCL; cpu: N backends in this "
            "process)", cxxopts::value<int32_t>())(
      "tp-timeout", "seconds a tensor-parallel step may take before the server aborts and exits (0: no deadline)",
      cxxopts::value<int32_t>())("custom-all-reduce-max-kib", kCustomAllReduceMaxKibHelp, cxxopts::value<int32_t>())(
      "stats-interval", "seconds between stats lines (0: off)", cxxopts::value<int32_t>())(
      "print-config", "print the effective configuration as YAML and exit")("h,help", "show this help");
}

ServerConfig config_from(const cxxopts::ParseResult& result) {
  ServerConfig config;
  if (result.count("config")) config = ServerConfig::from_yaml_file(result["config"].as<std::string>());
  auto override_with = [&](const char* flag, auto& field) {
    using T = std::remove_reference_t<decltype(field)>;
    if (result.count(flag)) field = result[flag].as<T>();
  };
  override_with("model", config.model);
  override_with("served-model-name", config.served_model_name);
  override_with("host", config.host);
  override_with("port", config.port);
  override_with("max-model-len", config.max_model_len);
  override_with("max-running-requests", config.max_running_requests);
  override_with("max-num-batched-tokens", config.max_num_batched_tokens);
  override_with("max-queued-requests", config.max_queued_requests);
  override_with("num-kv-pages", config.num_kv_pages);
  override_with("gpu-memory-utilization", config.gpu_memory_utilization);
  override_with("activation-reserve-gib", config.activation_reserve_gib);
  override_with("kv-cache-dtype", config.kv_cache_dtype);
  override_with("api-key", config.api_key);
  override_with("chat-template", config.chat_template);
  override_with("reasoning-parser", config.reasoning_parser);
  override_with("tool-call-parser", config.tool_call_parser);
  override_with("device", config.device);
  override_with("threads", config.threads);
  override_with("tp", config.tensor_parallel_size);
  override_with("tp-timeout", config.tp_timeout_seconds);
  override_with("custom-all-reduce-max-kib", config.custom_all_reduce_max_kib);
  override_with("stats-interval", config.stats_interval_seconds);
  config.validate();
  return config;
}

Placement placement_of(const ServerConfig& config) {
  Placement placement;
  placement.device = config.device;
  placement.threads = config.threads;
  placement.tp = config.tensor_parallel_size;
  placement.tp_step_timeout = std::chrono::seconds(config.tp_timeout_seconds);
  placement.custom_all_reduce_max_bytes = custom_all_reduce_max_bytes(config.custom_all_reduce_max_kib);
  return placement;
}

// Tensor parallelism on CUDA: before NCCL starts, set the NCCL variables `rackserve doctor`
// advises for this box (only those the user has not set) and log them.
void apply_nccl_advice(const Placement& placement) {
  const bool cuda = placement.device == "cuda" || (placement.device == "auto" && cuda_device_available());
  if (placement.tp <= 1 || !cuda) return;
  parallel::ProbeOptions probe;
  probe.measure_peers = true;  // the PCIe advice depends on measured peer bandwidth
  const parallel::Advice advice = parallel::advise(parallel::probe_gpu_topology(probe), placement.tp);
  const std::vector<parallel::Advice::Setting> applied = parallel::apply_advice(advice);
  for (const auto& setting : applied) spdlog::info("NCCL: set {}={} ({})", setting.name, setting.value, setting.reason);
  if (applied.empty()) spdlog::info("NCCL: no environment change advised (see `rackserve doctor --tp {}`)", placement.tp);
  for (const auto& warning : advice.warnings) spdlog::warn("NCCL: {}", warning);
}

// The chat template of the model directory or --chat-template; without one, chat
// requests answer 422 and completions still work.
// --tool-call-parser: auto takes the format the chat template renders tool calls in.
std::optional<text::ToolCallFormat> tool_call_format_for(const ServerConfig& config, const text::ChatTemplate* chat) {
  if (config.tool_call_parser == "none") return std::nullopt;
  if (config.tool_call_parser == "auto") return chat ? chat->tool_call_format() : std::nullopt;
  auto format = text::tool_call_format_named(config.tool_call_parser);
  RS_CHECK(format.has_value(),
           "tool_call_parser must be auto, none, deepseek_v3, deepseek_v31, kimi_k2, glm45 or minimax_m2, got \"{}\"",
           config.tool_call_parser);
  return format;
}

// The chat template, and the formats its answers are read in (reasoning, tool calls).
void load_chat(const ServerConfig& config, const text::Tokenizer& tokenizer, api::ServedModel& served) {
  std::optional<std::filesystem::path> override_file;
  if (!config.chat_template.empty()) override_file = config.chat_template;
  std::shared_ptr<const text::ChatTemplate> chat_template;
  try {
    chat_template = std::make_shared<text::ChatTemplate>(text::ChatTemplate::from_model_dir(config.model, override_file));
    spdlog::info("chat template: {}", chat_template->origin());
    served.chat = api::make_template_renderer(chat_template);
  } catch (const Error& error) {
    if (override_file) throw;
    spdlog::warn("no chat template ({}); /v1/chat/completions is disabled", error.what());
  }
  served.split_reasoning = config.reasoning_parser == "think" ||
                           (config.reasoning_parser == "auto" && tokenizer.token_to_id("</think>").has_value());
  spdlog::info("reasoning parser: {}", served.split_reasoning ? "<think> -> reasoning_content" : "off");
  served.tool_call_format = tool_call_format_for(config, chat_template.get());
  served.tool_call_markup_is_special =
      served.tool_call_format && text::tool_call_markup_is_special(tokenizer, *served.tool_call_format);
  spdlog::info("tool-call parser: {}{}", served.tool_call_format
                                           ? std::string(text::tool_call_format_name(*served.tool_call_format))
                                           : std::string("off (tool calls stay in the answer text)"),
               served.tool_call_markup_is_special ? " (its markup is special tokens: kept in the text of such requests)" : "");
}

// Blocks SIGINT/SIGTERM in every thread (call before starting any) and returns a thread
// that waits for one and then calls `on_signal`.
std::thread start_signal_waiter(std::function<void()> on_signal, sigset_t& signals) {
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // sent by run_serve itself to end the waiter
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return std::thread([signals, on_signal = std::move(on_signal)] {
    int received = 0;
    sigwait(&signals, &received);
    if (received == SIGUSR1) return;  // the server ended by itself; see run_serve
    spdlog::info("signal {} received, shutting down", received);
    on_signal();
  });
}

// auto: the backend's native cache (bf16 on CUDA, f32 on the CPU oracle); bf16 needs a bf16
// backend; fp8 (e4m3 + one f32 scale per token per layer) works on both. Checked before the
// model loads, so a wrong choice fails in a second.
std::optional<KvCacheDtype> kv_cache_dtype_for(const std::string& requested, const Backend& backend) {
  const std::optional<KvCacheDtype> dtype = parse_kv_cache_dtype_option(requested);
  kv_cache_value_dtype(backend, dtype);  // throws naming the dtypes this backend can cache
  return dtype;
}

}  // namespace

// The memory of the rank with the least free (every rank holds the same share of weights and
// cache, so the fullest GPU decides); nullopt without device memory to plan against (the CPU).
std::optional<Backend::DeviceMemory> tightest_memory(const std::vector<Backend*>& backends) {
  std::optional<Backend::DeviceMemory> tightest;
  for (const Backend* backend : backends)
    if (const std::optional<Backend::DeviceMemory> memory = backend->device_memory())
      if (!tightest || memory->free_bytes < tightest->free_bytes) tightest = memory;
  return tightest;
}

// With num_kv_pages 0 on GPUs: the pages the tightest rank's memory holds now that the weights
// are loaded (footprint.h's kv_pages_that_fit), at most enough for max_running_requests
// full-length sequences. 0 (the engine's default) on the CPU.
int32_t kv_pages_for_gpu_memory(const ServerConfig& config, const ModelConfig& model,
                                const std::vector<Backend*>& backends, int64_t tp,
                                std::optional<KvCacheDtype> kv_dtype) {
  const std::optional<Backend::DeviceMemory> memory = tightest_memory(backends);
  if (!memory) return 0;
  const int64_t max_model_len = config.max_model_len > 0 ? config.max_model_len : model.max_position_embeddings;
  const int64_t pages_per_sequence = (max_model_len + config.page_size - 1) / config.page_size;
  const KvCacheLayout layout = kv_cache_layout(model, kv_dtype.value_or(KvCacheDtype::Bf16), false, tp);
  KvPagesRequest request;
  request.free_bytes = memory->free_bytes;
  request.total_bytes = memory->total_bytes;
  request.utilization = config.gpu_memory_utilization;
  request.reserve_bytes = static_cast<uint64_t>(config.activation_reserve_gib * 1024.0 * 1024.0 * 1024.0);
  request.bytes_per_page = layout.bytes_per_token() * config.page_size;
  request.max_pages = std::min<int64_t>(int64_t{config.max_running_requests} * pages_per_sequence,
                                        std::numeric_limits<int32_t>::max());
  const int64_t pages = kv_pages_that_fit(request);
  spdlog::info("KV cache from GPU memory: {:.2f} of {:.2f} GiB free after loading, gpu_memory_utilization {}, "
               "activation reserve {:.2f} GiB: {} pages of {} tokens ({} B per token per GPU){}",
               memory->free_bytes / 1073741824.0, memory->total_bytes / 1073741824.0, config.gpu_memory_utilization,
               config.activation_reserve_gib, pages, config.page_size, layout.bytes_per_token(),
               pages < pages_per_sequence
                   ? fmt::format("; fewer tokens than max_model_len {}: longer requests are refused", max_model_len)
                   : std::string());
  return static_cast<int32_t>(pages);
}

int run_serve(const Arguments& args) {
  cxxopts::Options options("rackserve serve", "Serve the OpenAI-compatible HTTP API for one model.");
  add_serve_options(options);
  add_load_options(options);  // not in ServerConfig/YAML: flags only
  cxxopts::ParseResult result;
  if (!parse_or_help(options, args, result)) return 0;
  const ServerConfig config = config_from(result);
  if (result.count("print-config")) {
    fmt::print("{}", config.to_yaml());
    return 0;
  }
  auto tokenizer = std::make_shared<const text::Tokenizer>(text::Tokenizer::from_directory(config.model));
  spdlog::info("tokenizer: {} ids from {}", tokenizer->vocab_size(), config.model);
  api::ServedModel served;
  load_chat(config, *tokenizer, served);  // before the weights: a bad template or parser fails fast
  const Placement placement = placement_of(config);
  apply_nccl_advice(placement);
  const RankGroup ranks = make_ranks(placement, config.model);
  Backend* backend = ranks.backends.front().get();  // rank 0: sampling runs there
  const std::optional<KvCacheDtype> kv_dtype = kv_cache_dtype_for(config.kv_cache_dtype, *backend);
  std::unique_ptr<CausalLM> model = load_model_on(ranks, placement, config.model, load_options_from(result));
  const ModelConfig& model_config = model->config();
  spdlog::info("model: {} ({} layers, hidden {}, {} routed experts, vocab {}, {} positions) on {}{}", config.model,
               model_config.num_layers, model_config.hidden_size, model_config.moe.num_routed_experts,
               model_config.vocab_size, model_config.max_position_embeddings, backend->name(),
               placement.tp > 1 ? fmt::format(" x {} tensor-parallel ranks", placement.tp) : std::string());
  RS_CHECK(tokenizer->vocab_size() <= static_cast<size_t>(model_config.vocab_size),
           "the tokenizer has {} ids but the model only {}: they do not belong together", tokenizer->vocab_size(),
           model_config.vocab_size);

  EngineConfig engine_config;
  engine_config.scheduler.num_pages = config.num_kv_pages > 0 ? config.num_kv_pages
                                                              : kv_pages_for_gpu_memory(config, model_config, ranks.backend_pointers(),
                                                                                        placement.tp, kv_dtype);
  engine_config.scheduler.page_size = config.page_size;
  engine_config.scheduler.max_num_batched_tokens = config.max_num_batched_tokens;
  engine_config.scheduler.max_running_requests = config.max_running_requests;
  engine_config.scheduler.enable_prefix_cache = config.enable_prefix_cache;
  engine_config.max_model_len = config.max_model_len;
  engine_config.max_queued_requests = config.max_queued_requests;
  engine_config.max_n = config.max_n;
  engine_config.max_logprobs = config.max_logprobs;
  engine_config.kv_cache_dtype = kv_dtype;
  // A failed tensor-parallel rank leaves nothing to serve with: stop, and exit non-zero below.
  std::function<void()> stop_server;
  engine_config.on_model_failure = [&stop_server](const std::string& message) {
    spdlog::error("the model failed, shutting down: {}", message);
    if (stop_server) stop_server();
  };
  RS_CHECK(config.max_model_len <= model_config.max_position_embeddings,
           "--max-model-len {} exceeds the model's {} positions", config.max_model_len,
           model_config.max_position_embeddings);
  GenerationConfig generation = GenerationConfig::load(config.model);
  Engine engine(*model, engine_config, generation, api::make_detokenizer_factory(tokenizer));
  const EngineConfig& resolved = engine.config();
  const int64_t kv_tokens = int64_t{resolved.scheduler.num_pages} * resolved.scheduler.page_size;
  spdlog::info("memory plan: KV cache {} pages x {} tokens = {} tokens ({} cached values per token per layer{} in {}, "
               "{} layers); max_model_len {}, max {} running sequences, {} tokens per step",
               resolved.scheduler.num_pages, resolved.scheduler.page_size, kv_tokens, model_config.kv_cache_values(),
               model_config.is_mla() ? " on every GPU" : ", split over the GPUs by KV heads",
               kv_dtype == KvCacheDtype::Fp8 ? "fp8 e4m3 + an f32 scale"
                                             : dtype_name(kv_cache_value_dtype(*backend, kv_dtype)),
               model_config.num_layers, resolved.max_model_len, resolved.scheduler.max_running_requests,
               resolved.scheduler.max_num_batched_tokens);

  served.name = config.effective_model_name();
  served.max_model_len = resolved.max_model_len;
  served.vocab_size = static_cast<int32_t>(model_config.vocab_size);
  served.created = static_cast<int64_t>(std::time(nullptr));
  served.tokenizer = tokenizer;
  const auto mask_start = std::chrono::steady_clock::now();
  served.json_mask =
      api::make_json_object_mask(*tokenizer, served.vocab_size, engine.generation_config().eos_token_ids);
  if (served.json_mask)
    spdlog::info("response_format json_object: token mask of {} ids built in {} ms", served.vocab_size,
                 std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - mask_start).count());
  else
    spdlog::info("response_format json_object: off (the tokenizer's decoder is not byte-level)");
  if (served.json_mask && served.split_reasoning) {
    served.reasoning_end_token = api::reasoning_end_token(*tokenizer, served.vocab_size);
    spdlog::info("constrained decoding after reasoning: {}",
                 served.reasoning_end_token ? fmt::format("from the \"</think>\" token ({})", *served.reasoning_end_token)
                                            : std::string("off (\"</think>\" is not one token; no thinking then)"));
  }

  sigset_t signals;
  api::HttpServer server(config, engine, served);
  stop_server = [&server] { server.stop(); };
  std::thread signal_waiter = start_signal_waiter([&server] { server.stop(); }, signals);
  engine.start();
  int port = 0;
  try {
    port = server.bind();
  } catch (...) {
    pthread_kill(signal_waiter.native_handle(), SIGUSR1);
    signal_waiter.join();
    throw;
  }
  api::StatsReporter reporter(engine, std::chrono::seconds(config.stats_interval_seconds));
  spdlog::info("serving '{}' on http://{}:{} (OpenAI and Anthropic APIs under /v1{})", served.name, config.host, port,
               config.api_key.empty() ? "" : ", API key required");
  server.serve();
  engine.stop();
  // Wake the signal thread if serve() returned for another reason than a signal.
  pthread_kill(signal_waiter.native_handle(), SIGUSR1);
  signal_waiter.join();
  if (const std::string failure = engine.model_failure(); !failure.empty()) RS_FAIL("{}", failure);
  spdlog::info("stopped");
  return 0;
}

}  // namespace rackserve::cli
