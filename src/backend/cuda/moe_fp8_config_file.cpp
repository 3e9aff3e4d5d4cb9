// The fused-MoE config files: JSON format, naming, nearest M, the fallback chain and the
// defaults written for cards not yet tuned. See moe_fp8_config_file.h for the rules.
#include "backend/cuda/moe_fp8_config_file.h"

#include <algorithm>
#include <fstream>
#include <system_error>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/error.h"

namespace rackserve {

namespace {

using nlohmann::json;

constexpr const char* kKernelName = "moe_fp8_experts";
constexpr const char* kConfigFields[] = {"block_m", "block_n", "block_k", "stages", "warps"};

int64_t positive_integer(const json& object, const char* field, const std::string& where) {
  RS_CHECK(object.contains(field), "{}: missing field \"{}\"", where, field);
  const json& value = object.at(field);
  RS_CHECK(value.is_number_integer() && value.get<int64_t>() >= 1, "{}: \"{}\" must be a positive integer, got {}",
           where, field, value.dump());
  return value.get<int64_t>();
}

std::string string_field(const json& object, const char* field, const std::string& where) {
  RS_CHECK(object.contains(field) && object.at(field).is_string(), "{}: field \"{}\" must be a string", where, field);
  return object.at(field).get<std::string>();
}

MoeFp8Config config_from_json(const json& entry, const std::string& where) {
  RS_CHECK(entry.is_object(), "{}: must be an object of {}", where, fmt::join(kConfigFields, ", "));
  for (const auto& [key, value] : entry.items())
    RS_CHECK(std::find(std::begin(kConfigFields), std::end(kConfigFields), key) != std::end(kConfigFields) ||
                 key == "time_us" || key == "small_m",
             "{}: unknown field \"{}\"", where, key);
  auto field = [&](const char* name) {
    const int64_t value = positive_integer(entry, name, where);
    RS_CHECK(value <= 1024, "{}: \"{}\" = {} is out of range", where, name, value);
    return static_cast<int>(value);
  };
  MoeFp8Config config{field("block_m"), field("block_n"), field("block_k"), field("stages"), field("warps")};
  if (entry.contains("small_m")) {  // optional, false when absent
    RS_CHECK(entry.at("small_m").is_boolean(), "{}: \"small_m\" must be true or false", where);
    config.small_m = entry.at("small_m").get<bool>();
  }
  return config;
}

int64_t batch_size_key(const std::string& key, const std::string& where) {
  int64_t m = 0;
  size_t used = 0;
  try {
    m = std::stoll(key, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  RS_CHECK(used == key.size() && used > 0 && m >= 1 && key[0] >= '1' && key[0] <= '9',
           "{}: key \"{}\" of \"configs\" must be a batch size (an integer >= 1)", where, key);
  return m;
}

// Another device's file for the same shape (fallback step 2).
struct FamilyCandidate {
  std::filesystem::path path;
  MoeFp8ConfigFile file;
};

}  // namespace

std::string_view moe_fp8_dtype_name(MoeFp8Dtype dtype) { return dtype == MoeFp8Dtype::Block ? "fp8_block" : "fp8_channel"; }

MoeFp8Dtype parse_moe_fp8_dtype(std::string_view name) {
  if (name == "fp8_block") return MoeFp8Dtype::Block;
  if (name == "fp8_channel") return MoeFp8Dtype::Channel;
  RS_FAIL("unknown MoE FP8 dtype \"{}\" (expected fp8_block or fp8_channel)", name);
}

std::string describe(const MoeFp8Shape& shape) {
  return fmt::format("E={} N={} hidden={} top_k={} {}", shape.experts, shape.inter, shape.hidden, shape.top_k,
                     moe_fp8_dtype_name(shape.dtype));
}

std::string describe(const MoeFp8Config& config) {
  return fmt::format("block_m={} block_n={} block_k={} stages={} warps={}{}", config.block_m, config.block_n,
                     config.block_k, config.stages, config.warps, config.small_m ? " small_m" : "");
}

std::string device_directory_name(std::string_view device_name) {
  std::string name(device_name);
  std::replace(name.begin(), name.end(), ' ', '_');
  return name;
}

std::string moe_fp8_config_file_name(const MoeFp8Shape& shape) {
  return fmt::format("moe,E={},N={},dtype={}.json", shape.experts, shape.inter, moe_fp8_dtype_name(shape.dtype));
}

MoeFp8ConfigFile moe_fp8_config_file_from_json(const json& document, const std::string& origin) {
  RS_CHECK(document.is_object(), "{}: a MoE config file is a JSON object", origin);
  static constexpr const char* kTopFields[] = {"kernel", "device", "sm", "tuned", "note", "experts",
                                               "inter",  "hidden", "top_k", "dtype", "configs"};
  for (const auto& [key, value] : document.items())
    RS_CHECK(std::find(std::begin(kTopFields), std::end(kTopFields), key) != std::end(kTopFields),
             "{}: unknown field \"{}\"", origin, key);
  RS_CHECK(string_field(document, "kernel", origin) == kKernelName, "{}: \"kernel\" must be \"{}\"", origin,
           kKernelName);
  MoeFp8ConfigFile file;
  file.device = string_field(document, "device", origin);
  file.sm = static_cast<int>(positive_integer(document, "sm", origin));
  RS_CHECK(document.contains("tuned") && document.at("tuned").is_boolean(), "{}: field \"tuned\" must be true or false",
           origin);
  file.tuned = document.at("tuned").get<bool>();
  if (document.contains("note")) file.note = string_field(document, "note", origin);
  file.shape.experts = positive_integer(document, "experts", origin);
  file.shape.inter = positive_integer(document, "inter", origin);
  file.shape.hidden = positive_integer(document, "hidden", origin);
  file.shape.top_k = positive_integer(document, "top_k", origin);
  try {
    file.shape.dtype = parse_moe_fp8_dtype(string_field(document, "dtype", origin));
  } catch (const Error& error) {
    RS_FAIL("{}: {}", origin, error.what());
  }
  RS_CHECK(document.contains("configs") && document.at("configs").is_object() && !document.at("configs").empty(),
           "{}: \"configs\" must be a non-empty object of batch size -> config", origin);
  for (const auto& [key, entry] : document.at("configs").items()) {
    const int64_t m = batch_size_key(key, origin);
    RS_CHECK(!file.configs.count(m), "{}: batch size {} appears twice in \"configs\"", origin, m);
    const std::string where = fmt::format("{}: configs[\"{}\"]", origin, key);
    file.configs[m] = config_from_json(entry, where);
    if (entry.contains("time_us")) {
      RS_CHECK(entry.at("time_us").is_number() && entry.at("time_us").get<double>() >= 0,
               "{}: \"time_us\" must be a number >= 0", where);
      file.time_us[m] = entry.at("time_us").get<double>();
    }
  }
  return file;
}

json to_json(const MoeFp8ConfigFile& file) {
  json configs = json::object();
  for (const auto& [m, config] : file.configs) {
    json& entry = configs[std::to_string(m)];
    entry = {{"block_m", config.block_m},
             {"block_n", config.block_n},
             {"block_k", config.block_k},
             {"stages", config.stages},
             {"warps", config.warps}};
    if (config.small_m) entry["small_m"] = true;
    if (auto time = file.time_us.find(m); time != file.time_us.end()) entry["time_us"] = time->second;
  }
  return {{"kernel", kKernelName},
          {"device", file.device},
          {"sm", file.sm},
          {"tuned", file.tuned},
          {"note", file.note},
          {"experts", file.shape.experts},
          {"inter", file.shape.inter},
          {"hidden", file.shape.hidden},
          {"top_k", file.shape.top_k},
          {"dtype", moe_fp8_dtype_name(file.shape.dtype)},
          {"configs", configs}};
}

MoeFp8ConfigFile read_moe_fp8_config_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  RS_CHECK(in, "cannot open MoE config file {}", path.string());
  json document;
  try {
    document = json::parse(in);
  } catch (const json::parse_error& error) {
    RS_FAIL("{}: not valid JSON: {}", path.string(), error.what());
  }
  return moe_fp8_config_file_from_json(document, path.string());
}

void write_moe_fp8_config_file(const std::filesystem::path& path, const MoeFp8ConfigFile& file) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  // Written line by line: batch sizes in numeric order, one entry per line, fields in MoeFp8Config's order.
  const json document = to_json(file);
  std::string text = "{\n";
  for (const char* key : {"kernel", "device", "sm", "tuned", "note", "experts", "inter", "hidden", "top_k", "dtype"})
    text += fmt::format("  \"{}\": {},\n", key, document.at(key).dump());
  text += "  \"configs\": {\n";
  size_t index = 0;
  for (const auto& [m, config] : file.configs) {
    text += fmt::format("    \"{}\": {{\"block_m\": {}, \"block_n\": {}, \"block_k\": {}, \"stages\": {}, \"warps\": {}", m,
                        config.block_m, config.block_n, config.block_k, config.stages, config.warps);
    if (config.small_m) text += ", \"small_m\": true";
    if (auto time = file.time_us.find(m); time != file.time_us.end()) text += fmt::format(", \"time_us\": {}", time->second);
    text += ++index == file.configs.size() ? "}\n" : "},\n";
  }
  text += "  }\n}\n";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  RS_CHECK(out, "cannot write {}", path.string());
  out << text;
  RS_CHECK(out.good(), "writing {} failed", path.string());
}

const MoeFp8Config& nearest_batch_config(const std::map<int64_t, MoeFp8Config>& configs, int64_t m) {
  RS_CHECK(!configs.empty(), "nearest_batch_config: no configs");
  auto above = configs.lower_bound(m);  // first M >= m
  if (above == configs.begin()) return above->second;
  auto below = std::prev(above);
  if (above == configs.end()) return below->second;
  return (m - below->first <= above->first - m) ? below->second : above->second;  // tie: the smaller M
}

std::string moe_fp8_config_problem(const MoeFp8Config& config, const MoeFp8ConfigChecks& checks) {
  if (checks.supported && !checks.supported(config)) return "not an instantiated config of the kernel";
  const size_t bytes = kernels::moe_fp8_shared_bytes(config);
  if (bytes > checks.max_shared_bytes)
    return fmt::format("needs {} bytes of shared memory, the device allows {}", bytes, checks.max_shared_bytes);
  return {};
}

std::string MoeFp8ConfigResolution::log_line(const MoeDeviceInfo& device, const MoeFp8Shape& shape) const {
  std::string line;
  switch (source) {
    case MoeFp8ConfigSource::ExactDevice:
      line = fmt::format("fused MoE FP8 configs for {} on {}: {} ({})", describe(shape), device.name, path.string(),
                         tuned ? "tuned" : "not yet tuned on this card");
      break;
    case MoeFp8ConfigSource::SameSmFamily:
      line = fmt::format("fused MoE FP8 configs for {} on {}: none for this device, using {} of the same SM family ({})",
                         describe(shape), device.name, path.string(), tuned ? "tuned" : "not tuned");
      break;
    case MoeFp8ConfigSource::Default:
      line = fmt::format("fused MoE FP8 configs for {} on {}: no usable file, using the kernel's default config",
                         describe(shape), device.name);
      break;
  }
  if (!passed_over.empty()) {  // the first few reasons keep it one readable line
    const size_t shown = std::min<size_t>(passed_over.size(), 3);
    line += fmt::format(" ({} passed over: {}{})", passed_over.size(),
                        fmt::join(passed_over.begin(), passed_over.begin() + shown, "; "),
                        shown < passed_over.size() ? "; ..." : "");
  }
  return line;
}

MoeFp8ConfigResolution resolve_moe_fp8_configs(const std::filesystem::path& root, const MoeDeviceInfo& device,
                                               const MoeFp8Shape& shape, const MoeFp8ConfigChecks& checks) {
  MoeFp8ConfigResolution result;
  const std::string file_name = moe_fp8_config_file_name(shape);
  const std::string own_directory = device_directory_name(device.name);

  // Reads `path`, keeps the entries that pass `checks`; true when any is left.
  auto try_file = [&](const std::filesystem::path& path, const MoeFp8ConfigFile& file, MoeFp8ConfigSource source) {
    RS_CHECK(file.shape.experts == shape.experts && file.shape.inter == shape.inter && file.shape.dtype == shape.dtype,
             "{}: holds E={} N={} {}, its name says otherwise", path.string(), file.shape.experts, file.shape.inter,
             moe_fp8_dtype_name(file.shape.dtype));
    std::map<int64_t, MoeFp8Config> usable;
    for (const auto& [m, config] : file.configs) {
      const std::string problem = moe_fp8_config_problem(config, checks);
      if (problem.empty())
        usable[m] = config;
      else
        result.passed_over.push_back(fmt::format("{} M={}: {}", path.filename().string(), m, problem));
    }
    if (usable.empty()) {
      result.passed_over.push_back(fmt::format("{}: no entry fits this device", path.string()));
      return false;
    }
    result.source = source;
    result.path = path;
    result.tuned = file.tuned;
    result.configs = std::move(usable);
    return true;
  };

  std::error_code error;
  if (root.empty() || !std::filesystem::is_directory(root, error)) return result;
  const std::filesystem::path own = root / own_directory / file_name;
  if (std::filesystem::is_regular_file(own, error) &&
      try_file(own, read_moe_fp8_config_file(own), MoeFp8ConfigSource::ExactDevice))
    return result;

  std::vector<FamilyCandidate> family;
  for (const auto& entry : std::filesystem::directory_iterator(root, error)) {
    if (!entry.is_directory(error) || entry.path().filename() == own_directory) continue;
    const std::filesystem::path path = entry.path() / file_name;
    if (!std::filesystem::is_regular_file(path, error)) continue;
    MoeFp8ConfigFile file = read_moe_fp8_config_file(path);
    if (file.sm / 10 == device.sm / 10) family.push_back({path, std::move(file)});
  }
  auto rank = [&](const FamilyCandidate& c) {
    return std::make_tuple(!c.file.tuned, c.file.sm != device.sm, c.path.parent_path().filename().string());
  };
  std::sort(family.begin(), family.end(), [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  for (const auto& candidate : family)
    if (try_file(candidate.path, candidate.file, MoeFp8ConfigSource::SameSmFamily)) return result;
  return result;
}

MoeFp8ConfigSelector::MoeFp8ConfigSelector(std::filesystem::path root, MoeDeviceInfo device, MoeFp8ConfigChecks checks,
                                           DefaultConfig default_config)
    : root_(std::move(root)), device_(std::move(device)), checks_(checks), default_config_(default_config) {
  RS_CHECK(default_config_, "MoeFp8ConfigSelector needs a default config");
}

const MoeFp8ConfigResolution& MoeFp8ConfigSelector::resolution(const MoeFp8Shape& shape) {
  const ShapeKey key{shape.experts, shape.inter, shape.hidden, shape.top_k, shape.dtype};
  auto found = resolved_.find(key);
  if (found != resolved_.end()) return found->second;
  MoeFp8ConfigResolution resolution = resolve_moe_fp8_configs(root_, device_, shape, checks_);
  spdlog::info("{}", resolution.log_line(device_, shape));
  return resolved_.emplace(key, std::move(resolution)).first->second;
}

MoeFp8Config MoeFp8ConfigSelector::select(const MoeFp8Shape& shape, int64_t tokens) {
  const MoeFp8ConfigResolution& resolved = resolution(shape);
  if (!resolved.configs.empty()) return nearest_batch_config(resolved.configs, tokens);
  const MoeFp8Config config = default_config_(tokens, shape.top_k, shape.experts);
  const std::string problem = moe_fp8_config_problem(config, checks_);
  RS_CHECK(problem.empty(), "the default fused MoE FP8 config ({}) for {} M={} cannot run on {}: {}", describe(config),
           describe(shape), tokens, device_.name, problem);
  return config;
}

std::filesystem::path default_kernel_config_root() {
  std::vector<std::filesystem::path> candidates;
  std::error_code error;
  const std::filesystem::path binary = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    candidates.push_back(binary.parent_path() / "configs" / "kernels");
    candidates.push_back(binary.parent_path().parent_path() / "share" / "rackserve" / "configs" / "kernels");
  }
#ifdef RACKSERVE_SOURCE_KERNEL_CONFIGS
  candidates.emplace_back(RACKSERVE_SOURCE_KERNEL_CONFIGS);
#endif
  for (const auto& candidate : candidates)
    if (std::filesystem::is_directory(candidate, error)) return candidate;
  return {};
}

std::vector<int64_t> default_tuning_batch_sizes() {
  return {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 1536, 2048, 3072, 4096};
}

MoeFp8ConfigFile untuned_moe_fp8_defaults(const MoeFp8Shape& shape, std::string device, int sm,
                                          const std::vector<int64_t>& batch_sizes) {
  RS_CHECK(shape.experts >= 1 && shape.inter >= 1 && shape.top_k >= 1 && !batch_sizes.empty(),
           "untuned_moe_fp8_defaults: bad shape {} or no batch sizes", describe(shape));
  MoeFp8ConfigFile file;
  file.device = std::move(device);
  file.sm = sm;
  file.tuned = false;
  file.note = "not yet tuned on a real card: the kernel's default rule (default_moe_fp8_config, every entry within "
              "99 KB of shared memory) written by rackserve tune-moe --untuned-defaults; replace with a tune-moe run";
  file.shape = shape;
  for (const int64_t m : batch_sizes) {
    RS_CHECK(m >= 1, "batch size {} must be >= 1", m);
    const MoeFp8Config config = kernels::default_moe_fp8_config(m, shape.top_k, shape.experts);
    RS_CHECK(kernels::moe_fp8_shared_bytes(config) <= kSm120SharedBytes, "default {} does not fit 99 KB",
             describe(config));
    file.configs[m] = config;
  }
  return file;
}

}  // namespace rackserve
