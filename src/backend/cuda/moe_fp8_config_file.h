// Tuned launch configs of the fused FP8 MoE experts (kernels/moe, moe_fp8_params.h): the JSON
// files under configs/kernels/<device>/, their names, the nearest-M rule and the fallback chain
// exact device -> same SM family -> the kernel's default. Plain C++ without CUDA (the shared
// memory formula and the default rule are constexpr in moe_fp8_params.h; the device's limit and
// the kernels' instantiation list arrive as MoeFp8ConfigChecks), so CPU-only builds and unit
// tests use all of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "rackserve/kernels/moe_fp8_params.h"

namespace rackserve {

using kernels::MoeFp8Config;

// SM120's opt-in shared memory per block (99 KB): every shipped default must fit it.
constexpr size_t kSm120SharedBytes = 99 * 1024;

enum class MoeFp8Dtype { Block, Channel };
std::string_view moe_fp8_dtype_name(MoeFp8Dtype dtype);  // "fp8_block" / "fp8_channel"
MoeFp8Dtype parse_moe_fp8_dtype(std::string_view name);  // throws rackserve::Error on other names

// The problem, per GPU (tensor parallelism splits `inter`). The routed tokens of a step (M)
// are the key inside a file; files are named by experts, inter and dtype only (vLLM's rule),
// hidden and top_k are recorded for information.
struct MoeFp8Shape {
  int64_t experts = 0;
  int64_t inter = 0;  // per-GPU moe_intermediate_size ("N" in the file name)
  int64_t hidden = 0;
  int64_t top_k = 0;
  MoeFp8Dtype dtype = MoeFp8Dtype::Block;
};

std::string describe(const MoeFp8Shape& shape);    // "E=256 N=256 hidden=7168 top_k=8 fp8_block"
std::string describe(const MoeFp8Config& config);  // "block_m=16 block_n=64 block_k=128 stages=3 warps=4"

// The device a lookup is for.
struct MoeDeviceInfo {
  std::string name;             // cudaDeviceProp::name, e.g. "NVIDIA H200"
  int sm = 0;                   // compute capability as major * 10 + minor: 90, 120
  size_t max_shared_bytes = 0;  // cudaDevAttrMaxSharedMemoryPerBlockOptin
};

// "NVIDIA RTX PRO 6000 Blackwell Server Edition" -> "NVIDIA_RTX_PRO_6000_Blackwell_Server_Edition"
// (spaces to underscores, as vLLM names its config directories).
std::string device_directory_name(std::string_view device_name);
// "moe,E=256,N=256,dtype=fp8_block.json"
std::string moe_fp8_config_file_name(const MoeFp8Shape& shape);

// One file: batch size M -> launch config, for one device and one shape.
struct MoeFp8ConfigFile {
  std::string device;  // directory name of the device it was made for
  int sm = 0;          // that device's compute capability, major * 10 + minor
  bool tuned = false;  // true: measured on that device by tune-moe; false: defaults not yet run there
  std::string note;    // how it was made
  MoeFp8Shape shape;
  std::map<int64_t, MoeFp8Config> configs;  // M >= 1 -> config; never empty
  std::map<int64_t, double> time_us;        // M -> measured microseconds of its config (tuned files; optional)
};

// Throw rackserve::Error naming `origin` (or the path) and the field at fault.
MoeFp8ConfigFile moe_fp8_config_file_from_json(const nlohmann::json& json, const std::string& origin);
nlohmann::json to_json(const MoeFp8ConfigFile& file);
MoeFp8ConfigFile read_moe_fp8_config_file(const std::filesystem::path& path);
void write_moe_fp8_config_file(const std::filesystem::path& path, const MoeFp8ConfigFile& file);  // makes parent dirs

// The entry whose M is nearest `m` (absolute distance; a tie goes to the smaller M, as in vLLM).
// `configs` must not be empty.
const MoeFp8Config& nearest_batch_config(const std::map<int64_t, MoeFp8Config>& configs, int64_t m);

// What the device and the kernels accept, passed in so this file needs no CUDA: the CUDA
// backend gives the device's limit and kernels::moe_fp8_config_supported. Shared memory is
// kernels::moe_fp8_shared_bytes (moe_fp8_params.h), the kernels' own formula.
struct MoeFp8ConfigChecks {
  size_t max_shared_bytes = 0;
  bool (*supported)(const MoeFp8Config&) = nullptr;  // nullptr: no instantiation list to check
};
// Empty when `config` may be launched under `checks`, else the reason.
std::string moe_fp8_config_problem(const MoeFp8Config& config, const MoeFp8ConfigChecks& checks);

enum class MoeFp8ConfigSource { ExactDevice, SameSmFamily, Default };

// Where the configs for one shape come from on one device.
struct MoeFp8ConfigResolution {
  MoeFp8ConfigSource source = MoeFp8ConfigSource::Default;
  std::filesystem::path path;                // the file used; empty for Default
  bool tuned = false;                        // the file's "tuned" field
  std::map<int64_t, MoeFp8Config> configs;   // its entries that passed the checks; empty for Default
  std::vector<std::string> passed_over;      // files and entries not used, each with the reason

  std::string log_line(const MoeDeviceInfo& device, const MoeFp8Shape& shape) const;  // one line, for spdlog
};

// The fallback chain under `root` (a configs/kernels directory):
//   1. root/<device_directory_name(device.name)>/<file name>;
//   2. the same file name in another device's directory whose "sm" has the same major version
//      (tuned files first, then the same minor, then directory name order);
//   3. Default (the caller's default_moe_fp8_config).
// Entries failing `checks` are dropped (and listed); a file left with none is passed over. A
// malformed file is an error (thrown), never silently skipped: a user's tuning would vanish.
MoeFp8ConfigResolution resolve_moe_fp8_configs(const std::filesystem::path& root, const MoeDeviceInfo& device,
                                               const MoeFp8Shape& shape, const MoeFp8ConfigChecks& checks);

// Picks the config of every launch. Resolves each shape once (logging the one line with
// spdlog), then answers from memory. One per backend: not thread-safe. Makes no CUDA calls
// (it reads files and logs), so a first use inside CUDA graph capture is safe.
class MoeFp8ConfigSelector {
 public:
  using DefaultConfig = MoeFp8Config (*)(int64_t tokens, int64_t top_k, int64_t experts);

  MoeFp8ConfigSelector(std::filesystem::path root, MoeDeviceInfo device, MoeFp8ConfigChecks checks,
                       DefaultConfig default_config);

  // The config for `tokens` routed tokens (M). Throws when even the default does not fit the device.
  MoeFp8Config select(const MoeFp8Shape& shape, int64_t tokens);
  const MoeFp8ConfigResolution& resolution(const MoeFp8Shape& shape);

 private:
  std::filesystem::path root_;
  MoeDeviceInfo device_;
  MoeFp8ConfigChecks checks_;
  DefaultConfig default_config_;
  using ShapeKey = std::tuple<int64_t, int64_t, int64_t, int64_t, MoeFp8Dtype>;  // every MoeFp8Shape field
  std::map<ShapeKey, MoeFp8ConfigResolution> resolved_;
};

// Where the shipped files are found, with no environment involved: the first directory that
// exists of <directory of the running binary>/configs/kernels,
// <directory of the running binary>/../share/rackserve/configs/kernels (installed), and the
// configs/kernels of the source tree the binary was built from. Empty when none exists (every
// lookup then takes the default).
std::filesystem::path default_kernel_config_root();

// The batch sizes tune-moe measures and the shipped defaults list.
std::vector<int64_t> default_tuning_batch_sizes();

// Defaults for a device not yet tuned (tuned = false), one entry per batch size:
// kernels::default_moe_fp8_config, each entry checked within kSm120SharedBytes. What
// `tune-moe --untuned-defaults` writes.
MoeFp8ConfigFile untuned_moe_fp8_defaults(const MoeFp8Shape& shape, std::string device, int sm,
                                          const std::vector<int64_t>& batch_sizes);

}  // namespace rackserve
