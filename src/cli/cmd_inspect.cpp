// `rackserve inspect`: reads config.json (+ hf_quant_config.json) and answers "how big is
// this model, does it fit on N GPUs, how much KV is left" without touching any weights.
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "config/model_config.h"
#include "core/error.h"
#include "models/footprint.h"
#include "models/weight_manifest.h"
#include "weights/quant_config.h"

namespace rackserve::cli {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr int64_t kTpCandidates[] = {1, 2, 4, 8};  // the box sizes rackserve targets

struct InspectArguments {
  std::string model;
  MemoryPlanOptions plan;
  bool json = false;
};

std::string with_commas(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value), result;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) result += ',';
    result += digits[i];
  }
  return value < 0 ? "-" + result : result;
}

// Bytes in GiB, or MiB / KiB / B when that would print 0.00 GiB.
std::string gib(double bytes) {
  double magnitude = bytes < 0 ? -bytes : bytes;
  if (magnitude >= kGiB / 100 || magnitude == 0) return fmt::format("{:.2f} GiB", bytes / kGiB);
  if (magnitude >= 1024.0 * 1024.0) return fmt::format("{:.2f} MiB", bytes / (1024.0 * 1024.0));
  if (magnitude >= 1024.0) return fmt::format("{:.2f} KiB", bytes / 1024.0);
  return fmt::format("{} B", static_cast<int64_t>(bytes));
}

std::string parameters(int64_t count) {
  return count >= 1'000'000'000'000 ? fmt::format("{:.3f} T", count / 1e12) : fmt::format("{:.2f} B", count / 1e9);
}

// Returns nullopt after printing --help.
std::optional<InspectArguments> parse_arguments(const Arguments& args) {
  cxxopts::Options options("rackserve inspect",
                           "Parameters, checkpoint bytes, weight bytes per GPU and KV capacity of a model, "
                           "from its config.json (and hf_quant_config.json) alone.");
  // clang-format off
  options.add_options()
      ("model", "model directory (config.json, optional hf_quant_config.json) or a config file", cxxopts::value<std::string>())
      ("tp", "tensor-parallel size (GPUs)", cxxopts::value<int64_t>()->default_value("1"))
      ("kv-cache-dtype", "KV cache dtype: bf16 or fp8", cxxopts::value<std::string>()->default_value("bf16"))
      ("gpu-memory-gib", "memory of one GPU in GiB", cxxopts::value<double>()->default_value("96"))
      ("gpu-memory-utilization", "fraction of GPU memory rackserve may use", cxxopts::value<double>()->default_value("0.9"))
      ("activation-reserve-gib", "memory per GPU kept for activations, CUDA graphs and NCCL", cxxopts::value<double>()->default_value("4"))
      ("context", "tokens per sequence for the concurrency count (default: max_position_embeddings)", cxxopts::value<int64_t>())
      ("mtp", "also load the MTP layers (weights and one more KV layer)")
      ("json", "print JSON instead of tables")
      ("h,help", "show this help");
  // clang-format on
  cxxopts::ParseResult result;
  if (!parse_or_help(options, args, result)) return std::nullopt;
  RS_CHECK(result.count("model"), "--model DIR|config.json is required (see rackserve inspect --help)");

  InspectArguments parsed;
  try {
    parsed.model = result["model"].as<std::string>();
    parsed.plan.tp = result["tp"].as<int64_t>();
    parsed.plan.kv_dtype = parse_kv_cache_dtype(result["kv-cache-dtype"].as<std::string>());
    parsed.plan.gpu_memory_gib = result["gpu-memory-gib"].as<double>();
    parsed.plan.gpu_memory_utilization = result["gpu-memory-utilization"].as<double>();
    parsed.plan.activation_reserve_gib = result["activation-reserve-gib"].as<double>();
    parsed.plan.context_tokens = result.count("context") ? result["context"].as<int64_t>() : -1;
    parsed.plan.include_mtp = result.count("mtp") > 0;
    parsed.json = result.count("json") > 0;
  } catch (const cxxopts::exceptions::exception& error) {
    RS_FAIL("{} (see rackserve inspect --help)", error.what());
  }
  RS_CHECK(parsed.plan.tp >= 1, "--tp must be >= 1, got {}", parsed.plan.tp);
  RS_CHECK(parsed.plan.context_tokens == -1 || parsed.plan.context_tokens >= 1, "--context must be >= 1, got {}",
           parsed.plan.context_tokens);
  return parsed;
}

// A plan for another TP size, or nullopt when that size cannot split the model.
std::optional<MemoryPlan> plan_for(const ModelConfig& config, const WeightManifest& manifest, MemoryPlanOptions options,
                                   int64_t tp) {
  options.tp = tp;
  try {
    return plan_memory(config, manifest, options);
  } catch (const Error&) {
    return std::nullopt;
  }
}

nlohmann::json totals_json(const WeightTotals& totals) {
  return {{"parameters", totals.parameters}, {"bytes", totals.bytes}, {"bytes_by_storage", totals.bytes_by_storage}};
}

nlohmann::json plan_json(const MemoryPlan& plan, const MemoryPlanOptions& options) {
  return {{"tp", options.tp},
          {"weight_bytes_per_gpu", plan.weight_bytes},
          {"kv_budget_bytes_per_gpu", plan.kv_budget_bytes},
          {"kv_tokens", plan.kv_tokens},
          {"sequences_at_context", plan.sequences_at_context},
          {"weights_fit", plan.weights_fit()},
          {"context_fits", plan.sequences_at_context >= 1}};
}

void print_json(const std::string& path, const ModelConfig& config, const QuantConfig& quant,
                const WeightTotals& main, const WeightTotals& with_mtp, const MemoryPlan& plan,
                const MemoryPlanOptions& options, const WeightManifest& manifest) {
  nlohmann::json out;
  out["model"] = {{"path", path},
                  {"model_type", config.model_type},
                  {"architecture", config.architecture},
                  {"layers", config.num_layers},
                  {"mtp_layers", config.num_mtp_layers},
                  {"hidden_size", config.hidden_size},
                  {"vocab_size", config.vocab_size},
                  {"attention", config.is_mla() ? "mla" : "gqa"},
                  {"attention_heads", config.num_attention_heads()},
                  {"routed_experts", config.moe.num_routed_experts},
                  {"max_position_embeddings", config.max_position_embeddings}};
  out["quantization"] = {{"method", quant.method()}, {"description", quant.describe()},
                         {"kv_cache_hint", quant.kv_cache_hint()}};
  out["main_model"] = totals_json(main);
  out["with_mtp"] = totals_json(with_mtp);
  nlohmann::json kv = {{"dtype", kv_cache_dtype_name(options.kv_dtype)},
                       {"layers", plan.kv.layers},
                       {"entry_values", plan.kv.entry_values},
                       {"entry_bytes_per_layer", plan.kv.entry_bytes},
                       {"split_by_heads", plan.kv.split_by_heads},
                       {"indexer_values", plan.kv.indexer_values},
                       {"indexer_bytes_per_layer", plan.kv.indexer_bytes},
                       {"bytes_per_token_per_gpu", plan.kv.bytes_per_token()}};
  nlohmann::json plan_out = plan_json(plan, options);
  plan_out.update({{"include_mtp", options.include_mtp},
                   {"gpu_memory_bytes", plan.gpu_bytes},
                   {"gpu_memory_utilization", options.gpu_memory_utilization},
                   {"usable_bytes", plan.usable_bytes},
                   {"activation_reserve_bytes", plan.activation_reserve_bytes},
                   {"page_tokens", options.page_tokens},
                   {"context_tokens", options.context_tokens},
                   {"kv_cache", kv}});
  out["plan"] = plan_out;
  out["tp_table"] = nlohmann::json::array();
  for (int64_t tp : kTpCandidates)
    if (auto other = plan_for(config, manifest, options, tp)) {
      MemoryPlanOptions other_options = options;
      other_options.tp = tp;
      out["tp_table"].push_back(plan_json(*other, other_options));
    }
  std::cout << out.dump(2) << "\n";
}

void print_attention(const ModelConfig& config) {
  if (config.is_mla()) {
    const MlaConfig& mla = config.mla;
    fmt::print("attention      MLA {} heads, q_lora {}, kv_lora {}, qk {}+{}, v {}", mla.num_heads, mla.q_lora_rank,
               mla.kv_lora_rank, mla.qk_nope_head_dim, mla.qk_rope_head_dim, mla.v_head_dim);
    return;
  }
  const GqaConfig& gqa = config.gqa;
  const char* qk_norm = gqa.qk_norm == GqaConfig::QkNorm::PerHead    ? ", q/k norm per head"
                        : gqa.qk_norm == GqaConfig::QkNorm::AllHeads ? ", q/k norm over all heads"
                                                                     : "";
  fmt::print("attention      GQA {} heads, {} KV heads, head {} (rotary {}){}{}", gqa.num_heads, gqa.num_kv_heads,
             gqa.head_dim, gqa.rotary_dim, qk_norm, gqa.qkv_bias ? ", q/k/v bias" : "");
}

void print_table(const std::string& path, const ModelConfig& config, const QuantConfig& quant,
                 const WeightTotals& main, const WeightTotals& with_mtp, const MemoryPlan& plan,
                 const MemoryPlanOptions& options, const WeightManifest& manifest) {
  const MoeConfig& moe = config.moe;
  fmt::print("model          {} ({}, {})\n", path, config.model_type, config.architecture);
  fmt::print("layers         {} ({} dense) + {} MTP; hidden {}, vocab {}, max positions {}\n", config.num_layers,
             std::min(moe.first_dense_layers, config.num_layers), config.num_mtp_layers, config.hidden_size,
             config.vocab_size, with_commas(config.max_position_embeddings));
  print_attention(config);
  if (config.indexer)
    fmt::print("; DSA indexer {} heads × {}, top-{}", config.indexer->num_heads, config.indexer->head_dim,
               config.indexer->top_k);
  fmt::print("\nexperts        {} routed ({} per token) + {} shared, intermediate {}\n", moe.num_routed_experts,
             moe.experts_per_token, moe.num_shared_experts, moe.expert_intermediate_size);
  fmt::print("quantization   {}\n", quant.describe());
  fmt::print("parameters     {} main model, {} with MTP\n\n", parameters(main.parameters),
             parameters(with_mtp.parameters));

  fmt::print("{:<28}{:>16}{:>16}\n", "checkpoint bytes", "main model", "with MTP");
  for (const auto& [storage, bytes] : with_mtp.bytes_by_storage) {
    auto it = main.bytes_by_storage.find(storage);
    fmt::print("  {:<26}{:>16}{:>16}\n", storage, gib(it == main.bytes_by_storage.end() ? 0 : it->second), gib(bytes));
  }
  fmt::print("  {:<26}{:>16}{:>16}\n\n", "total", gib(main.bytes), gib(with_mtp.bytes));

  const KvCacheLayout& kv = plan.kv;
  fmt::print("per GPU at TP={}{}, KV cache {}\n", options.tp, options.include_mtp ? " with MTP" : "",
             kv_cache_dtype_name(options.kv_dtype));
  fmt::print("  usable memory            {} = {:.2f} GiB × {:.2f}\n", gib(plan.usable_bytes), plan.gpu_bytes / kGiB,
             options.gpu_memory_utilization);
  fmt::print("  weights                  {}\n", gib(plan.weight_bytes));
  fmt::print("  activation reserve       {}\n", gib(plan.activation_reserve_bytes));
  fmt::print("  KV budget                {}\n", gib(static_cast<double>(plan.kv_budget_bytes)));
  fmt::print("  KV bytes per token       {} = {} layers × ({} {} values → {} B", with_commas(kv.bytes_per_token()),
             kv.layers, kv.entry_values, kv.split_by_heads ? "key/value" : "latent", kv.entry_bytes);
  if (kv.indexer_values) fmt::print(" + {} indexer key values → {} B", kv.indexer_values, kv.indexer_bytes);
  fmt::print("), {}\n", kv.split_by_heads ? "this GPU's KV heads" : "replicated on every GPU");
  if (plan.weights_fit()) {
    fmt::print("  KV capacity              {} tokens (pages of {})\n", with_commas(plan.kv_tokens), options.page_tokens);
    fmt::print("  sequences of {:<11} {}\n", with_commas(options.context_tokens) + ":",
               with_commas(plan.sequences_at_context));
  }
  if (!plan.weights_fit())
    fmt::print("  verdict                  DOES NOT FIT: weights + reserve exceed the usable memory by {}\n",
               gib(static_cast<double>(-plan.kv_budget_bytes)));
  else if (plan.sequences_at_context < 1)
    fmt::print("  verdict                  weights fit, but not one sequence of {} tokens\n",
               with_commas(options.context_tokens));
  else
    fmt::print("  verdict                  fits: {} concurrent sequences of {} tokens\n",
               with_commas(plan.sequences_at_context), with_commas(options.context_tokens));

  fmt::print("\n{:<6}{:>16}{:>16}{:>16}{:>20}\n", "TP", "weights/GPU", "KV budget/GPU", "KV tokens",
             fmt::format("seqs of {}", with_commas(options.context_tokens)));
  std::optional<int64_t> smallest;
  for (int64_t tp : kTpCandidates) {
    auto other = plan_for(config, manifest, options, tp);
    if (!other) {
      fmt::print("{:<6}{:>16}\n", tp, "cannot split");
      continue;
    }
    if (!smallest && other->sequences_at_context >= 1) smallest = tp;
    fmt::print("{:<6}{:>16}{:>16}{:>16}{:>20}\n", tp, gib(other->weight_bytes),
               other->weights_fit() ? gib(static_cast<double>(other->kv_budget_bytes)) : "does not fit",
               with_commas(other->kv_tokens), with_commas(other->sequences_at_context));
  }
  if (smallest)
    fmt::print("smallest TP holding one {}-token sequence: {}\n", with_commas(options.context_tokens), *smallest);
  else
    fmt::print("no TP up to {} holds one {}-token sequence on {:.2f} GiB GPUs\n", kTpCandidates[std::size(kTpCandidates) - 1],
               with_commas(options.context_tokens), options.gpu_memory_gib);
}

}  // namespace

int run_inspect(const Arguments& args) {
  auto parsed = parse_arguments(args);
  if (!parsed) return 0;
  ModelConfig config = ModelConfig::load(parsed->model);
  QuantConfig quant = QuantConfig::load(parsed->model);
  WeightManifest manifest = WeightManifest::build(config, quant);
  MemoryPlanOptions& options = parsed->plan;
  if (options.context_tokens < 0) options.context_tokens = config.max_position_embeddings;

  WeightTotals main = weight_totals(manifest, false);
  WeightTotals with_mtp = weight_totals(manifest, true);
  MemoryPlan plan = plan_memory(config, manifest, options);
  if (parsed->json)
    print_json(parsed->model, config, quant, main, with_mtp, plan, options, manifest);
  else
    print_table(parsed->model, config, quant, main, with_mtp, plan, options, manifest);
  return 0;
}

}  // namespace rackserve::cli
