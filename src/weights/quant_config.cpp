#include "weights/quant_config.h"

#include <cctype>
#include <fstream>
#include <optional>
#include <regex>

#include <fmt/format.h>

#include "core/error.h"

namespace rackserve {

using nlohmann::json;

namespace {

// Shell glob over the whole string: '*' any run, '?' one character (fnmatch without classes).
bool glob_matches(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0, star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p, ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++, resume = t;
    } else if (star != std::string_view::npos) {
      p = star + 1, t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::vector<std::string> string_list(const json& object, const char* key, const std::string& source) {
  std::vector<std::string> entries;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return entries;
  RS_CHECK(it->is_array(), "{}: field \"{}\" must be a list of module names", source, key);
  for (const json& entry : *it) {
    RS_CHECK(entry.is_string(), "{}: field \"{}\" must be a list of module names, got {}", source, key, entry.dump());
    entries.push_back(entry.get<std::string>());
  }
  return entries;
}

// GLM-5's FP8 modules_to_not_convert says "self_attn.indexers_proj" for the tensor the
// checkpoint (and every loader) names "self_attn.indexer.weights_proj"; honour both.
std::vector<std::string> with_checkpoint_aliases(std::vector<std::string> entries) {
  size_t count = entries.size();
  for (size_t i = 0; i < count; ++i)
    if (auto at = entries[i].find("indexers_proj"); at != std::string::npos)
      entries.push_back(entries[i].substr(0, at) + "indexer.weights_proj" + entries[i].substr(at + 13));
  return entries;
}

std::string string_field(const json& object, const char* key, const std::string& source, const std::string& fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  RS_CHECK(it->is_string(), "{}: field \"{}\" must be a string, got {}", source, key, it->dump());
  return it->get<std::string>();
}

int64_t integer_field(const json& object, const char* key, const std::string& source, int64_t fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  RS_CHECK(it->is_number_integer() && it->get<int64_t>() > 0, "{}: field \"{}\" must be a positive integer, got {}",
           source, key, it->dump());
  return it->get<int64_t>();
}

json read_json(const std::filesystem::path& file) {
  std::ifstream stream(file);
  RS_CHECK(stream.good(), "cannot open {}", file.string());
  json parsed = json::parse(stream, nullptr, /*allow_exceptions=*/false);
  RS_CHECK(!parsed.is_discarded(), "{}: not valid JSON", file.string());
  return parsed;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string scale_dtype_name(DType dtype) {
  std::string name(dtype_name(dtype));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

}  // namespace

std::string_view weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::Dense: return "bf16";
    case WeightFormat::Fp8Block: return "fp8-block";
    case WeightFormat::Fp8Channel: return "fp8-channel";
    case WeightFormat::Fp8Tensor: return "fp8-tensor";
    case WeightFormat::Int4Group: return "int4-group";
    case WeightFormat::Nvfp4: return "nvfp4";
  }
  return "?";
}

std::string LinearScheme::describe() const {
  switch (format) {
    case WeightFormat::Dense: return "bf16";
    case WeightFormat::Fp8Block:
      return fmt::format("fp8-block [{}, {}] e4m3 + {} {}", block_out, block_in, scale_dtype_name(scale_dtype),
                         scale_name);
    case WeightFormat::Fp8Channel:
      return fmt::format("fp8-channel e4m3 + {} weight_scale per row{}", scale_dtype_name(scale_dtype),
                         static_input_scale ? " + static input_scale" : "");
    case WeightFormat::Fp8Tensor:
      return fmt::format("fp8-tensor e4m3 + {} weight_scale{}", scale_dtype_name(scale_dtype),
                         static_input_scale ? " + static input_scale" : "");
    case WeightFormat::Int4Group:
      return fmt::format("int4-group{} symmetric, int32 weight_packed + {} weight_scale", group_size,
                         scale_dtype_name(scale_dtype));
    case WeightFormat::Nvfp4:
      return fmt::format("nvfp4 e2m1 + e4m3 weight_scale per {} + f32 weight_scale_2 + f32 input_scale", group_size);
  }
  return "?";
}

std::vector<LinearTensor> quantized_linear_tensors(const LinearScheme& scheme, int64_t out_features,
                                                   int64_t in_features, DType dense_dtype) {
  const int64_t values = out_features * in_features;
  switch (scheme.format) {
    case WeightFormat::Dense:
      return {{"weight", dense_dtype, {out_features, in_features}, values}};
    case WeightFormat::Fp8Block:
      return {{"weight", DType::F8_E4M3, {out_features, in_features}, values},
              {scheme.scale_name, scheme.scale_dtype,
               {ceil_div(out_features, scheme.block_out), ceil_div(in_features, scheme.block_in)}, 0}};
    case WeightFormat::Fp8Channel: {
      std::vector<LinearTensor> tensors{{"weight", DType::F8_E4M3, {out_features, in_features}, values},
                                        {"weight_scale", scheme.scale_dtype, {out_features, 1}, 0}};
      if (scheme.static_input_scale) tensors.push_back({"input_scale", scheme.scale_dtype, {1}, 0});
      return tensors;
    }
    case WeightFormat::Fp8Tensor: {
      Shape scalar = scheme.rank0_scalars ? Shape{} : Shape{1};
      std::vector<LinearTensor> tensors{{"weight", DType::F8_E4M3, {out_features, in_features}, values},
                                        {"weight_scale", scheme.scale_dtype, scalar, 0}};
      if (scheme.static_input_scale) tensors.push_back({"input_scale", scheme.scale_dtype, scalar, 0});
      return tensors;
    }
    case WeightFormat::Int4Group:
      RS_CHECK(in_features % scheme.group_size == 0 && in_features % 8 == 0,
               "int4 group-{} linear [{}, {}]: inputs must be a multiple of the group and of 8", scheme.group_size,
               out_features, in_features);
      return {{"weight_packed", DType::I32, {out_features, in_features / 8}, values},
              {"weight_scale", scheme.scale_dtype, {out_features, in_features / scheme.group_size}, 0},
              {"weight_shape", DType::I32, {2}, 0}};
    case WeightFormat::Nvfp4:
      RS_CHECK(in_features % scheme.group_size == 0, "nvfp4 linear [{}, {}]: inputs must be a multiple of {}",
               out_features, in_features, scheme.group_size);
      return {{"weight", DType::U8, {out_features, in_features / 2}, values},
              {"weight_scale", DType::F8_E4M3, {out_features, in_features / scheme.group_size}, 0},
              {"weight_scale_2", DType::F32, {}, 0},
              {"input_scale", DType::F32, {}, 0}};
  }
  RS_FAIL("unknown weight format");
}

// ---------------------------------------------------------------------------------------
// Module patterns

struct ModulePatterns::Compiled {
  std::string glob;  // when not a regex
  std::optional<std::regex> regex;
  std::string literal;  // every match contains it (regex) or starts with it (glob): a cheap first test
};

namespace {

// The longest run of plain characters the regex requires at its top level ("self_attn" in
// ".*self_attn.*", "mlp." in "mlp\.(gate|up)_proj"); empty when it has a top-level
// alternation. Characters inside groups or classes, or made optional by a quantifier, end
// a run. std::regex costs microseconds per name; the manifest asks ~100k names per model.
std::string required_literal(std::string_view regex) {
  std::string best, run;
  auto end_run = [&] {
    if (run.size() > best.size()) best = run;
    run.clear();
  };
  auto skip_to = [&](size_t i, char close) {  // index of the unescaped `close` after i
    while (++i < regex.size() && regex[i] != close)
      if (regex[i] == '\\') ++i;
    return i;
  };
  int depth = 0;
  for (size_t i = 0; i < regex.size(); ++i) {
    const char c = regex[i];
    if (c == '[') {  // a class: one of several characters
      end_run();
      size_t first = i + 1 < regex.size() && regex[i + 1] == '^' ? i + 1 : i;
      i = skip_to(first + 1 < regex.size() && regex[first + 1] == ']' ? first + 1 : first, ']');
    } else if (c == '{') {  // a {n,m} quantifier
      end_run();
      i = skip_to(i, '}');
    } else if (c == '(' || c == ')') {
      depth += c == '(' ? 1 : -1;
      end_run();
    } else if (c == '|' && depth == 0) {
      return "";
    } else {
      const bool escaped = c == '\\' && i + 1 < regex.size();
      const char literal = escaped ? regex[++i] : c;
      const bool quantified = i + 1 < regex.size() && std::string_view("*+?{").find(regex[i + 1]) != std::string_view::npos;
      const bool meta = escaped ? std::isalnum(static_cast<unsigned char>(literal)) != 0  // \d \w \b ...
                                : std::string_view(".^$*+?|}").find(c) != std::string_view::npos;
      if (depth > 0 || meta || quantified)
        end_run();
      else
        run += literal;
    }
  }
  end_run();
  return best;
}

}  // namespace

ModulePatterns::ModulePatterns(const std::vector<std::string>& entries) {
  for (const auto& entry : entries) add(entry);
}

void ModulePatterns::add(const std::string& entry) {
  ++size_;
  if (entry.rfind("re:", 0) == 0) {
    auto compiled = std::make_shared<Compiled>();
    try {
      compiled->regex.emplace(entry.substr(3), std::regex::ECMAScript | std::regex::optimize);
      compiled->literal = required_literal(std::string_view(entry).substr(3));
    } catch (const std::regex_error& error) {
      RS_FAIL("module pattern \"{}\" is not a valid regular expression: {}", entry, error.what());
    }
    compiled_.push_back(std::move(compiled));
  } else if (entry.find_first_of("*?") != std::string::npos) {
    auto compiled = std::make_shared<Compiled>();
    compiled->glob = entry;
    compiled->literal = entry.substr(0, entry.find_first_of("*?"));  // the glob's fixed prefix
    compiled_.push_back(std::move(compiled));
  } else {
    plain_.insert(entry);
  }
}

bool ModulePatterns::matches(const std::string& name) const {
  if (!plain_.empty()) {
    // The name, each parent module ("a.b" of "a.b.c") and each trailing path ("b.c", "c").
    if (plain_.count(name)) return true;
    for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1))
      if (plain_.count(name.substr(0, dot)) || plain_.count(name.substr(dot + 1))) return true;
  }
  for (const auto& compiled : compiled_) {
    if (compiled->regex) {
      if (name.find(compiled->literal) != std::string::npos &&
          std::regex_search(name, *compiled->regex, std::regex_constants::match_continuous))
        return true;
    } else if (name.compare(0, compiled->literal.size(), compiled->literal) == 0 && glob_matches(compiled->glob, name)) {
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Parsing

QuantConfig::QuantConfig() { dense_.format = WeightFormat::Dense; }

const LinearScheme& QuantConfig::linear(const std::string& module) const {
  // Never quantized whatever the lists say: the MoE router ("<...>.mlp.gate": its logits pick
  // experts, and every loader builds it unquantized), embeddings and norms.
  const std::string_view last = std::string_view(module).substr(module.rfind('.') + 1);  // npos + 1 == 0
  const bool never = last == "gate" || last == "embed_tokens" || last.ends_with("norm");
  if (groups_.empty() || never || keep_dense_.matches(module)) return dense_;
  for (const auto& group : groups_)  // groups naming modules win over class-wide ones
    if (!group.all_linear && group.targets.matches(module)) return group.scheme;
  for (const auto& group : groups_)
    if (group.all_linear) return group.scheme;
  return dense_;
}

std::string QuantConfig::describe() const {
  if (groups_.empty()) return "none (bf16 checkpoint)";
  std::string text = fmt::format("{}: ", method_);
  for (size_t i = 0; i < groups_.size(); ++i)
    text += (i ? "; " : "") + groups_[i].scheme.describe();
  if (keep_dense_.size()) text += fmt::format("; {} module patterns kept bf16", keep_dense_.size());
  if (!kv_cache_hint_.empty()) text += fmt::format("; KV cache calibrated for {}", kv_cache_hint_);
  return text;
}

QuantConfig QuantConfig::from_config_json(const json& file, const std::string& source) {
  RS_CHECK(file.is_object(), "{}: expected a JSON object", source);
  const json* config = nullptr;
  std::string scope = source + " quantization_config";
  if (auto it = file.find("quantization_config"); it != file.end() && !it->is_null()) {
    config = &*it;
  } else if (auto text = file.find("text_config"); text != file.end() && text->is_object()) {
    if (auto inner = text->find("quantization_config"); inner != text->end() && !inner->is_null()) {
      config = &*inner;
      scope = source + " text_config.quantization_config";
    }
  }
  if (!config) return QuantConfig{};
  RS_CHECK(config->is_object(), "{}: expected a JSON object", scope);
  std::string method = string_field(*config, "quant_method", scope, "");
  RS_CHECK(!method.empty(), "{}: required field \"quant_method\" is missing", scope);
  if (method == "fp8") return parse_fp8(*config, scope);
  if (method == "compressed-tensors") return parse_compressed_tensors(*config, scope);
  if (method == "modelopt") {
    std::string algorithm = string_field(*config, "quant_algo", scope, "");
    RS_CHECK(!algorithm.empty(), "{}: required field \"quant_algo\" is missing", scope);
    int64_t group_size = 16;
    if (auto groups = config->find("config_groups"); groups != config->end() && groups->is_object())
      for (const auto& [name, group] : groups->items())
        if (auto weights = group.find("weights"); weights != group.end() && weights->is_object())
          group_size = integer_field(*weights, "group_size", scope + " config_groups." + name + ".weights", group_size);
    std::string kv;
    if (auto scheme = config->find("kv_cache_scheme"); scheme != config->end() && scheme->is_object())
      if (scheme->value("type", "") == "float" && scheme->value("num_bits", 0) == 8) kv = "FP8";
    return parse_modelopt(algorithm, group_size, string_list(*config, "ignore", scope), kv, scope);
  }
  RS_FAIL("{}: quant_method \"{}\" is not supported (fp8, compressed-tensors, modelopt)", scope, method);
}

QuantConfig QuantConfig::from_hf_quant_config(const json& file, const std::string& source) {
  RS_CHECK(file.is_object(), "{}: expected a JSON object", source);
  auto it = file.find("quantization");
  RS_CHECK(it != file.end() && it->is_object(), "{}: required object \"quantization\" is missing", source);
  std::string scope = source + " quantization";
  std::string algorithm = string_field(*it, "quant_algo", scope, "");
  RS_CHECK(!algorithm.empty(), "{}: required field \"quant_algo\" is missing", scope);
  return parse_modelopt(algorithm, integer_field(*it, "group_size", scope, 16),
                        string_list(*it, "exclude_modules", scope), string_field(*it, "kv_cache_quant_algo", scope, ""),
                        scope);
}

QuantConfig QuantConfig::load(const std::filesystem::path& path) {
  if (path.filename() == "hf_quant_config.json") return from_hf_quant_config(read_json(path), path.string());
  bool directory = std::filesystem::is_directory(path);
  std::filesystem::path config_file = directory ? path / "config.json" : path;
  std::filesystem::path hf_quant_file = (directory ? path : path.parent_path()) / "hf_quant_config.json";
  if (std::filesystem::exists(config_file)) {
    QuantConfig config = from_config_json(read_json(config_file), config_file.string());
    if (config.method_ != "none") return config;
  }
  if (std::filesystem::exists(hf_quant_file)) return from_hf_quant_config(read_json(hf_quant_file), hf_quant_file.string());
  return QuantConfig{};
}

QuantConfig QuantConfig::parse_fp8(const json& config, const std::string& source) {
  // MiniMax-M2.x spell it with torch's dtype name.
  std::string format = string_field(config, "fmt", source, "e4m3");
  RS_CHECK(format == "e4m3" || format == "float8_e4m3fn", "{}: fmt \"{}\" is not supported (e4m3, float8_e4m3fn)",
           source, format);
  std::string activations = string_field(config, "activation_scheme", source, "dynamic");
  RS_CHECK(activations == "dynamic", "{}: activation_scheme \"{}\" is not supported (dynamic)", source, activations);
  LinearScheme scheme;
  scheme.format = WeightFormat::Fp8Block;
  scheme.scale_dtype = DType::F32;  // ue8m0 scale_fmt (V3.1+) still stores f32 powers of two
  scheme.scale_name = "weight_scale_inv";
  scheme.block_out = scheme.block_in = 128;  // transformers' default when weight_block_size is absent
  if (auto it = config.find("weight_block_size"); it != config.end() && !it->is_null()) {
    RS_CHECK(it->is_array() && it->size() == 2 && (*it)[0].is_number_integer() && (*it)[1].is_number_integer() &&
                 (*it)[0].get<int64_t>() > 0 && (*it)[1].get<int64_t>() > 0,
             "{}: field \"weight_block_size\" must be two positive integers, got {}", source, it->dump());
    scheme.block_out = (*it)[0].get<int64_t>();
    scheme.block_in = (*it)[1].get<int64_t>();
  }
  QuantConfig result;
  result.method_ = "fp8";
  result.source_ = source;
  result.groups_.push_back({scheme, true, {}});
  result.keep_dense_ = ModulePatterns(with_checkpoint_aliases(string_list(config, "modules_to_not_convert", source)));
  // DeepSeek's own checkpoints list nothing, yet keep these linears in bf16 (loaders build
  // them unquantized): the output heads, the MTP input projection and the indexer's head weights.
  for (const char* kept : {"lm_head", "*.eh_proj", "*.shared_head.head", "*.indexer.weights_proj"})
    result.keep_dense_.add(kept);
  return result;
}

QuantConfig QuantConfig::parse_compressed_tensors(const json& config, const std::string& source) {
  QuantConfig result;
  result.method_ = "compressed-tensors";
  result.source_ = source;
  std::string format = string_field(config, "format", source, "");
  auto groups = config.find("config_groups");
  RS_CHECK(groups != config.end() && groups->is_object() && !groups->empty(),
           "{}: required object \"config_groups\" is missing", source);
  for (const auto& [name, group] : groups->items()) {
    std::string scope = source + " config_groups." + name;
    RS_CHECK(group.is_object(), "{}: expected a JSON object", scope);
    std::string group_format = string_field(group, "format", scope, format);
    auto weights = group.find("weights");
    RS_CHECK(weights != group.end() && weights->is_object(), "{}: required object \"weights\" is missing", scope);
    std::string weights_scope = scope + ".weights";
    int64_t bits = integer_field(*weights, "num_bits", weights_scope, 0);
    std::string type = string_field(*weights, "type", weights_scope, "int");
    std::string strategy = string_field(*weights, "strategy", weights_scope, "tensor");
    bool symmetric = weights->value("symmetric", true);
    RS_CHECK(symmetric, "{}: asymmetric weights (symmetric false) are not supported", weights_scope);

    LinearScheme scheme;
    // compressed-tensors stores scales in the weight's own dtype: bf16 for every target model.
    scheme.scale_dtype = DType::BF16;
    if (type == "int" && bits == 4 && group_format == "pack-quantized") {
      RS_CHECK(strategy == "group", "{}: int4 strategy \"{}\" is not supported (group)", weights_scope, strategy);
      scheme.format = WeightFormat::Int4Group;
      scheme.group_size = integer_field(*weights, "group_size", weights_scope, 0);
      RS_CHECK(scheme.group_size > 0, "{}: required field \"group_size\" is missing", weights_scope);
    } else if (type == "float" && bits == 8 &&
               (group_format == "float-quantized" || group_format == "naive-quantized")) {
      if (strategy == "channel") {
        scheme.format = WeightFormat::Fp8Channel;
      } else if (strategy == "tensor") {
        scheme.format = WeightFormat::Fp8Tensor;
      } else if (strategy == "block") {
        scheme.format = WeightFormat::Fp8Block;
        auto block = weights->find("block_structure");
        RS_CHECK(block != weights->end() && block->is_array() && block->size() == 2,
                 "{}: strategy block needs \"block_structure\" [rows, columns]", weights_scope);
        scheme.block_out = (*block)[0].get<int64_t>();
        scheme.block_in = (*block)[1].get<int64_t>();
      } else {
        RS_FAIL("{}: fp8 strategy \"{}\" is not supported (channel, tensor, block)", weights_scope, strategy);
      }
      if (auto inputs = group.find("input_activations"); inputs != group.end() && inputs->is_object())
        scheme.static_input_scale = !inputs->value("dynamic", false);
    } else {
      RS_FAIL("{}: {}-bit {} weights in format \"{}\" are not supported (int4 pack-quantized, fp8 float-quantized)",
              weights_scope, bits, type, group_format);
    }

    Group parsed{scheme, false, {}};
    for (const auto& target : string_list(group, "targets", scope)) {
      if (target == "Linear")
        parsed.all_linear = true;
      else
        parsed.targets.add(target);
    }
    RS_CHECK(parsed.all_linear || parsed.targets.size() > 0, "{}: field \"targets\" is empty", scope);
    result.groups_.push_back(std::move(parsed));
  }
  result.keep_dense_ = ModulePatterns(with_checkpoint_aliases(string_list(config, "ignore", source)));
  if (auto kv = config.find("kv_cache_scheme"); kv != config.end() && kv->is_object())
    if (kv->value("type", "") == "float" && kv->value("num_bits", 0) == 8) result.kv_cache_hint_ = "FP8";
  return result;
}

QuantConfig QuantConfig::parse_modelopt(const std::string& algorithm, int64_t group_size,
                                        const std::vector<std::string>& exclude, const std::string& kv_algorithm,
                                        const std::string& source) {
  LinearScheme scheme;
  if (algorithm == "NVFP4") {
    scheme.format = WeightFormat::Nvfp4;
    scheme.group_size = group_size;
    scheme.scale_dtype = DType::F8_E4M3;
    scheme.static_input_scale = true;
    RS_CHECK(group_size == 16, "{}: NVFP4 group_size must be 16, got {}", source, group_size);
  } else if (algorithm == "FP8") {
    scheme.format = WeightFormat::Fp8Tensor;
    scheme.scale_dtype = DType::F32;
    scheme.static_input_scale = true;
    scheme.rank0_scalars = true;
  } else {
    RS_FAIL("{}: modelopt quant_algo \"{}\" is not supported (NVFP4, FP8)", source, algorithm);
  }
  QuantConfig result;
  result.method_ = "modelopt";
  result.source_ = source;
  result.groups_.push_back({scheme, true, {}});
  result.keep_dense_ = ModulePatterns(with_checkpoint_aliases(exclude));
  if (!kv_algorithm.empty() && kv_algorithm != "null") result.kv_cache_hint_ = kv_algorithm;
  return result;
}

}  // namespace rackserve
