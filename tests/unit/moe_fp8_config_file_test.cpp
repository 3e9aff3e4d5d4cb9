// The fused-MoE config files without a GPU: names, JSON round trip and errors, nearest M, the
// fallback chain exact device -> same SM family -> default, shared-memory checks, and every file
// shipped under configs/kernels.
#include "backend/cuda/moe_fp8_config_file.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;

const MoeFp8Shape kShape{256, 256, 7168, 8, MoeFp8Dtype::Block};  // DeepSeek-V3 at TP 8
const MoeDeviceInfo kRtxPro{"NVIDIA RTX PRO 6000 Blackwell Server Edition", 120, 101376};

MoeFp8ConfigChecks host_checks(size_t limit = kSm120SharedBytes) {
  return {limit, nullptr};
}

MoeFp8Config config(int block_m, int block_n, int stages = 3) { return {block_m, block_n, 128, stages, 4}; }

MoeFp8ConfigFile make_file(const std::string& device, int sm, bool tuned, std::map<int64_t, MoeFp8Config> configs) {
  MoeFp8ConfigFile file;
  file.device = device;
  file.sm = sm;
  file.tuned = tuned;
  file.note = "test";
  file.shape = kShape;
  file.configs = std::move(configs);
  return file;
}

// A fresh directory per test, removed afterwards.
class ConfigRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("rackserve_moe_configs_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path put(const MoeFp8ConfigFile& file) {
    const fs::path path = root_ / file.device / moe_fp8_config_file_name(file.shape);
    write_moe_fp8_config_file(path, file);
    return path;
  }
  fs::path put_text(const std::string& device, const std::string& text) {
    fs::create_directories(root_ / device);
    const fs::path path = root_ / device / moe_fp8_config_file_name(kShape);
    std::ofstream(path) << text;
    return path;
  }
  fs::path root_;
};

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(MoeFp8ConfigNames, FileAndDeviceDirectory) {
  EXPECT_EQ(moe_fp8_config_file_name(kShape), "moe,E=256,N=256,dtype=fp8_block.json");
  EXPECT_EQ(moe_fp8_config_file_name({160, 768, 5120, 8, MoeFp8Dtype::Channel}), "moe,E=160,N=768,dtype=fp8_channel.json");
  EXPECT_EQ(device_directory_name("NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition"),
            "NVIDIA_RTX_PRO_6000_Blackwell_Max-Q_Workstation_Edition");
  EXPECT_EQ(device_directory_name("NVIDIA H200"), "NVIDIA_H200");
  EXPECT_EQ(parse_moe_fp8_dtype("fp8_channel"), MoeFp8Dtype::Channel);
  EXPECT_THROW(parse_moe_fp8_dtype("fp8"), Error);
  EXPECT_EQ(describe(config(16, 64)), "block_m=16 block_n=64 block_k=128 stages=3 warps=4");
  EXPECT_EQ(describe(kShape), "E=256 N=256 hidden=7168 top_k=8 fp8_block");
}

TEST(MoeFp8ConfigNearest, PicksNearestBatchSizeAndTheSmallerOnTies) {
  const std::map<int64_t, MoeFp8Config> configs{{1, config(16, 32)}, {4, config(16, 64)}, {8, config(32, 64)},
                                                {64, config(64, 128)}};
  EXPECT_EQ(nearest_batch_config(configs, 1).block_n, 32);
  EXPECT_EQ(nearest_batch_config(configs, 2).block_n, 32);  // 1 away from 1, 2 away from 4
  EXPECT_EQ(nearest_batch_config(configs, 3).block_n, 64);
  EXPECT_EQ(nearest_batch_config(configs, 6).block_m, 16);  // tie between 4 and 8: the smaller
  EXPECT_EQ(nearest_batch_config(configs, 36).block_m, 32);  // tie between 8 and 64: the smaller
  EXPECT_EQ(nearest_batch_config(configs, 37).block_m, 64);
  EXPECT_EQ(nearest_batch_config(configs, 100000).block_m, 64);
  EXPECT_EQ(nearest_batch_config(configs, 0).block_n, 32);
}

TEST_F(ConfigRoot, RoundTripKeepsEveryField) {
  MoeFp8Config small_m = config(16, 64, 4);
  small_m.small_m = true;
  MoeFp8ConfigFile file = make_file("NVIDIA_H200", 90, true,
                                    {{1, config(16, 32, 4)}, {8, small_m}, {128, config(64, 128, 2)}});
  file.time_us[1] = 12.5;
  const fs::path path = put(file);
  const MoeFp8ConfigFile back = read_moe_fp8_config_file(path);
  EXPECT_EQ(back.device, "NVIDIA_H200");
  EXPECT_EQ(back.sm, 90);
  EXPECT_TRUE(back.tuned);
  EXPECT_EQ(back.shape.experts, 256);
  EXPECT_EQ(back.shape.inter, 256);
  EXPECT_EQ(back.shape.hidden, 7168);
  EXPECT_EQ(back.shape.top_k, 8);
  ASSERT_EQ(back.configs.size(), 3u);
  EXPECT_EQ(describe(back.configs.at(128)), describe(config(64, 128, 2)));
  EXPECT_FALSE(back.configs.at(128).small_m);
  EXPECT_TRUE(back.configs.at(8).small_m);
  EXPECT_EQ(describe(back.configs.at(8)), "block_m=16 block_n=64 block_k=128 stages=4 warps=4 small_m");
  EXPECT_DOUBLE_EQ(back.time_us.at(1), 12.5);
  // Batch sizes are written in numeric order, one per line.
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_LT(text.find("\"1\":"), text.find("\"128\":"));
}

TEST_F(ConfigRoot, MalformedFilesGiveClearErrors) {
  const nlohmann::json good = to_json(make_file("D", 120, false, {{1, config(16, 64)}}));
  auto parse_error = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json broken = good;
    edit(broken);
    return error_of([&] { moe_fp8_config_file_from_json(broken, "the_file.json"); });
  };
  EXPECT_NE(parse_error([](auto& j) { j.erase("sm"); }).find("the_file.json: missing field \"sm\""), std::string::npos);
  EXPECT_NE(parse_error([](auto& j) { j["experts"] = "256"; }).find("\"experts\" must be a positive integer"),
            std::string::npos);
  EXPECT_NE(parse_error([](auto& j) { j["configs"]["abc"] = j["configs"]["1"]; }).find("key \"abc\""), std::string::npos);
  EXPECT_NE(parse_error([](auto& j) { j["configs"]["0"] = j["configs"]["1"]; }).find("key \"0\""), std::string::npos);
  EXPECT_NE(parse_error([](auto& j) { j["configs"]["1"]["block_M"] = 16; }).find("unknown field \"block_M\""),
            std::string::npos);
  EXPECT_NE(parse_error([](auto& j) { j["configs"]["1"].erase("warps"); }).find("configs[\"1\"]: missing field \"warps\""),
            std::string::npos);
  EXPECT_NE(parse_error([](auto& j) { j["configs"] = nlohmann::json::object(); }).find("non-empty"), std::string::npos);
  EXPECT_NE(parse_error([](auto& j) { j["dtype"] = "fp4"; }).find("unknown MoE FP8 dtype"), std::string::npos);
  EXPECT_NE(parse_error([](auto& j) { j["kernel"] = "other"; }).find("\"kernel\""), std::string::npos);
  EXPECT_NE(parse_error([](auto& j) { j["tuned"] = 1; }).find("\"tuned\""), std::string::npos);
  EXPECT_NE(parse_error([](auto& j) { j["configs"]["1"]["small_m"] = 1; }).find("\"small_m\" must be true or false"),
            std::string::npos);

  const fs::path path = put_text("NVIDIA_RTX_PRO_6000_Blackwell_Server_Edition", "{\"kernel\": ");
  const std::string message = error_of([&] { resolve_moe_fp8_configs(root_, kRtxPro, kShape, host_checks()); });
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;
}

TEST_F(ConfigRoot, ExactDeviceWins) {
  put(make_file("NVIDIA_GeForce_RTX_5090", 120, true, {{1, config(32, 32)}}));
  const fs::path own = put(make_file("NVIDIA_RTX_PRO_6000_Blackwell_Server_Edition", 120, false, {{1, config(16, 64)}}));
  const MoeFp8ConfigResolution resolution = resolve_moe_fp8_configs(root_, kRtxPro, kShape, host_checks());
  EXPECT_EQ(resolution.source, MoeFp8ConfigSource::ExactDevice);
  EXPECT_EQ(resolution.path, own);
  EXPECT_FALSE(resolution.tuned);
  EXPECT_EQ(resolution.configs.at(1).block_m, 16);
  EXPECT_NE(resolution.log_line(kRtxPro, kShape).find(own.string()), std::string::npos);
}

TEST_F(ConfigRoot, SameSmFamilyPrefersTunedThenSameMinorAndSkipsOtherFamilies) {
  put(make_file("NVIDIA_H200", 90, true, {{1, config(64, 128)}}));
  put(make_file("A_untuned_120", 120, false, {{1, config(16, 32)}}));
  put(make_file("B_tuned_121", 121, true, {{1, config(16, 64)}}));
  const fs::path tuned_120 = put(make_file("C_tuned_120", 120, true, {{1, config(32, 64)}}));
  MoeFp8ConfigResolution resolution = resolve_moe_fp8_configs(root_, kRtxPro, kShape, host_checks());
  EXPECT_EQ(resolution.source, MoeFp8ConfigSource::SameSmFamily);
  EXPECT_EQ(resolution.path, tuned_120);
  EXPECT_NE(resolution.log_line(kRtxPro, kShape).find("same SM family"), std::string::npos);

  fs::remove_all(tuned_120.parent_path());
  resolution = resolve_moe_fp8_configs(root_, kRtxPro, kShape, host_checks());
  EXPECT_EQ(resolution.path.parent_path().filename(), "B_tuned_121");

  // An SM90 device sees only the H200 file.
  const MoeDeviceInfo h100{"NVIDIA H100 80GB HBM3", 90, 232448};
  resolution = resolve_moe_fp8_configs(root_, h100, kShape, host_checks(232448));
  EXPECT_EQ(resolution.path.parent_path().filename(), "NVIDIA_H200");
}

TEST_F(ConfigRoot, DefaultWhenNothingMatches) {
  put(make_file("NVIDIA_H200", 90, true, {{1, config(16, 64)}}));
  MoeFp8Shape other = kShape;
  other.inter = 512;
  EXPECT_EQ(resolve_moe_fp8_configs(root_, kRtxPro, other, host_checks()).source, MoeFp8ConfigSource::Default);
  EXPECT_EQ(resolve_moe_fp8_configs(root_, kRtxPro, kShape, host_checks()).source, MoeFp8ConfigSource::Default);
  EXPECT_EQ(resolve_moe_fp8_configs(fs::path(), kRtxPro, kShape, host_checks()).source, MoeFp8ConfigSource::Default);
  EXPECT_EQ(resolve_moe_fp8_configs(root_ / "missing", kRtxPro, kShape, host_checks()).source,
            MoeFp8ConfigSource::Default);

  MoeFp8ConfigSelector selector(root_, kRtxPro, host_checks(),
                                [](int64_t tokens, int64_t, int64_t) { return config(tokens > 64 ? 64 : 16, 64); });
  EXPECT_EQ(selector.select(kShape, 1).block_m, 16);
  EXPECT_EQ(selector.select(kShape, 512).block_m, 64);
  EXPECT_NE(selector.resolution(kShape).log_line(kRtxPro, kShape).find("default"), std::string::npos);
}

TEST_F(ConfigRoot, EntriesOverTheSharedMemoryLimitAreDropped) {
  // 4 x (64 + 128) x 128 + 64 x 16 + 128 x 4 = 99,840 bytes: fits 99 KB, not a 64 KB device.
  const MoeFp8Config big = config(64, 128, 4);
  ASSERT_EQ(kernels::moe_fp8_shared_bytes(big), 99840u);
  const fs::path own = put(make_file("NVIDIA_RTX_PRO_6000_Blackwell_Server_Edition", 120, true,
                                     {{1, config(16, 64)}, {1024, big}}));
  MoeFp8ConfigResolution resolution = resolve_moe_fp8_configs(root_, kRtxPro, kShape, host_checks());
  EXPECT_EQ(resolution.configs.size(), 2u);

  MoeDeviceInfo small = kRtxPro;
  small.max_shared_bytes = 64 * 1024;
  resolution = resolve_moe_fp8_configs(root_, small, kShape, host_checks(small.max_shared_bytes));
  EXPECT_EQ(resolution.source, MoeFp8ConfigSource::ExactDevice);
  ASSERT_EQ(resolution.configs.size(), 1u);
  EXPECT_EQ(nearest_batch_config(resolution.configs, 1024).block_m, 16);  // never the one that does not fit
  ASSERT_EQ(resolution.passed_over.size(), 1u);
  EXPECT_NE(resolution.passed_over[0].find("M=1024: needs 99840 bytes"), std::string::npos);

  // A file with nothing that fits is passed over; an unsupported config is dropped too.
  MoeFp8ConfigChecks strict = host_checks(1024);
  resolution = resolve_moe_fp8_configs(root_, small, kShape, strict);
  EXPECT_EQ(resolution.source, MoeFp8ConfigSource::Default);
  strict = host_checks();
  strict.supported = [](const MoeFp8Config& c) { return c.block_m != 16; };
  resolution = resolve_moe_fp8_configs(root_, kRtxPro, kShape, strict);
  ASSERT_EQ(resolution.configs.size(), 1u);
  EXPECT_EQ(resolution.configs.begin()->first, 1024);

  // The default must fit too, or select says why instead of launching.
  MoeFp8ConfigSelector selector(root_ / "empty", small, host_checks(small.max_shared_bytes),
                                [](int64_t, int64_t, int64_t) { return config(64, 128, 4); });
  const std::string message = error_of([&] { selector.select(kShape, 1); });
  EXPECT_NE(message.find("needs 99840 bytes"), std::string::npos) << message;
  (void)own;
}

TEST_F(ConfigRoot, FileWhoseContentContradictsItsNameIsAnError) {
  MoeFp8ConfigFile file = make_file("NVIDIA_RTX_PRO_6000_Blackwell_Server_Edition", 120, true, {{1, config(16, 64)}});
  file.shape.experts = 384;
  const fs::path wrong = root_ / file.device / moe_fp8_config_file_name(kShape);
  write_moe_fp8_config_file(wrong, file);
  EXPECT_NE(error_of([&] { resolve_moe_fp8_configs(root_, kRtxPro, kShape, host_checks()); }).find("its name says"),
            std::string::npos);
}

TEST(MoeFp8UntunedDefaults, OneEntryPerBatchSizeWithin99KB) {
  const MoeFp8ConfigFile file = untuned_moe_fp8_defaults(kShape, "X", 120, default_tuning_batch_sizes());
  EXPECT_FALSE(file.tuned);
  EXPECT_EQ(file.configs.size(), default_tuning_batch_sizes().size());
  for (const auto& [m, c] : file.configs) EXPECT_LE(kernels::moe_fp8_shared_bytes(c), kSm120SharedBytes) << m;
  EXPECT_EQ(file.configs.at(1).block_m, 16);
  EXPECT_EQ(file.configs.at(4096).block_m, 64);
}

// A small_m config needs the small-M ring (96 KB at > 16 tokens) or its tiled fields' need,
// whichever is larger (it runs tiled above 64 tokens), and still fits SM120's 99 KB.
TEST(MoeFp8SmallMConfig, SharedBytesCoverBothPathsAndFit99KB) {
  MoeFp8Config small_m = config(64, 128, 4);
  EXPECT_GT(kernels::moe_fp8_shared_bytes(small_m), size_t{kernels::kMoeFp8SmallMSharedBytes});
  small_m.small_m = true;
  EXPECT_EQ(kernels::moe_fp8_shared_bytes(small_m), kernels::moe_fp8_shared_bytes(config(64, 128, 4)));
  small_m = config(16, 64, 2);
  small_m.small_m = true;
  EXPECT_EQ(kernels::moe_fp8_shared_bytes(small_m), size_t{8 * 6 * 2048});
  EXPECT_LE(kernels::moe_fp8_shared_bytes(small_m), kSm120SharedBytes);
  EXPECT_TRUE(kernels::moe_fp8_small_m_applies(small_m, 64));
  EXPECT_FALSE(kernels::moe_fp8_small_m_applies(small_m, 65));
  EXPECT_FALSE(kernels::moe_fp8_small_m_applies(config(16, 64), 1));
}

// Every file under configs/kernels: parses, is named for its content, sits in its device's
// directory, uses the documented field values, and fits SM120's 99 KB.
TEST(ShippedMoeConfigs, EveryFileParsesAndFits99KB) {
  const fs::path root = fs::path(RACKSERVE_TEST_DATA_DIR) / ".." / ".." / "configs" / "kernels";
  ASSERT_TRUE(fs::is_directory(root)) << root;
  const std::set<int> block_m{16, 32, 64}, block_n{32, 64, 128}, block_k{64, 128}, stages{2, 3, 4}, warps{4, 8};
  std::map<std::string, std::set<std::string>> files_by_device;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    const MoeFp8ConfigFile file = read_moe_fp8_config_file(entry.path());
    const std::string device = entry.path().parent_path().filename().string();
    EXPECT_EQ(entry.path().filename().string(), moe_fp8_config_file_name(file.shape));
    EXPECT_EQ(file.device, device);
    EXPECT_EQ(file.device, device_directory_name(file.device));  // no spaces
    files_by_device[device].insert(entry.path().filename().string());
    if (!file.tuned) {
      EXPECT_NE(file.note.find("not yet tuned"), std::string::npos);
    }
    for (const auto& [m, c] : file.configs) {
      SCOPED_TRACE("M=" + std::to_string(m) + " " + describe(c));
      EXPECT_TRUE(block_m.count(c.block_m) && block_n.count(c.block_n) && block_k.count(c.block_k) &&
                  stages.count(c.stages) && warps.count(c.warps));
      EXPECT_LE(kernels::moe_fp8_shared_bytes(c), kSm120SharedBytes);
    }
  }
  // The SM120 cards ship untuned defaults for the real models' per-GPU shapes.
  const std::vector<std::string> expected{
      "moe,E=256,N=2048,dtype=fp8_block.json", "moe,E=256,N=256,dtype=fp8_block.json",
      "moe,E=384,N=2048,dtype=fp8_block.json", "moe,E=384,N=256,dtype=fp8_block.json",
      "moe,E=256,N=1536,dtype=fp8_block.json", "moe,E=256,N=384,dtype=fp8_block.json",
      "moe,E=160,N=1536,dtype=fp8_channel.json", "moe,E=160,N=192,dtype=fp8_channel.json"};
  for (const char* device : {"NVIDIA_RTX_PRO_6000_Blackwell_Server_Edition", "NVIDIA_RTX_PRO_6000_Blackwell_Workstation_Edition",
                             "NVIDIA_RTX_PRO_6000_Blackwell_Max-Q_Workstation_Edition", "NVIDIA_GeForce_RTX_5090"})
    for (const auto& name : expected) EXPECT_TRUE(files_by_device[device].count(name)) << device << "/" << name;

  // The chain on the shipped tree: an RTX PRO 6000 finds its own file, another SM12x card one of
  // its family, an SM90 card (no SM90 file for this shape yet) the default.
  EXPECT_EQ(resolve_moe_fp8_configs(root, kRtxPro, kShape, host_checks()).source, MoeFp8ConfigSource::ExactDevice);
  const MoeDeviceInfo other_sm12x{"NVIDIA Future Blackwell Card", 121, 101376};
  EXPECT_EQ(resolve_moe_fp8_configs(root, other_sm12x, kShape, host_checks()).source, MoeFp8ConfigSource::SameSmFamily);
  MoeFp8Shape unshipped = kShape;
  unshipped.inter = 96;
  EXPECT_EQ(resolve_moe_fp8_configs(root, kRtxPro, unshipped, host_checks()).source, MoeFp8ConfigSource::Default);
}

}  // namespace
}  // namespace rackserve
