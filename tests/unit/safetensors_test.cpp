// The safetensors reader against files written here: exact round trips, sharded
// checkpoints, and hostile files that must fail with a rackserve::Error naming the file
// (and tensor). The truncation and byte-flip sweeps also run the header parser on
// exact-size heap buffers, so the AddressSanitizer build sees any read out of bounds.
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "weights/safetensors.h"
#include "weights/safetensors_layout.h"

namespace rackserve {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::byte>;

// ---------------------------------------------------------------------------------------
// A tiny safetensors writer, so every test owns its bytes.

struct TensorSpec {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  Bytes bytes;
};

Bytes pattern_bytes(size_t count, uint8_t seed) {
  Bytes bytes(count);
  for (size_t i = 0; i < count; ++i) bytes[i] = static_cast<std::byte>(seed + 31 * i + (i >> 8));
  return bytes;
}

TensorSpec tensor(std::string name, std::string dtype, std::vector<int64_t> shape, size_t element_bytes, uint8_t seed) {
  int64_t numel = 1;
  for (int64_t size : shape) numel *= size;
  return {std::move(name), std::move(dtype), std::move(shape), pattern_bytes(numel * element_bytes, seed)};
}

// The header the reference writer would produce: contiguous offsets, padded with
// spaces to a multiple of 8 bytes.
std::string header_for(const std::vector<TensorSpec>& tensors, const std::map<std::string, std::string>& metadata = {}) {
  std::vector<std::string> entries;
  if (!metadata.empty()) {
    std::vector<std::string> pairs;
    for (const auto& [key, value] : metadata) pairs.push_back(fmt::format("\"{}\":\"{}\"", key, value));
    entries.push_back(fmt::format("\"__metadata__\":{{{}}}", fmt::join(pairs, ",")));
  }
  size_t offset = 0;
  for (const TensorSpec& spec : tensors) {
    entries.push_back(fmt::format("\"{}\":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", spec.name,
                                  spec.dtype, fmt::join(spec.shape, ","), offset, offset + spec.bytes.size()));
    offset += spec.bytes.size();
  }
  std::string header = fmt::format("{{{}}}", fmt::join(entries, ","));
  header.append((8 - header.size() % 8) % 8, ' ');
  return header;
}

// 8-byte little-endian length (of `header` unless given), header, data.
Bytes file_bytes(std::string_view header, const Bytes& data, std::optional<uint64_t> length_field = std::nullopt) {
  const uint64_t length = length_field.value_or(header.size());
  Bytes bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<std::byte>(length >> (8 * i)));
  for (char c : header) bytes.push_back(static_cast<std::byte>(c));
  bytes.insert(bytes.end(), data.begin(), data.end());
  return bytes;
}

Bytes file_bytes(const std::vector<TensorSpec>& tensors, const std::map<std::string, std::string>& metadata = {}) {
  Bytes data;
  for (const TensorSpec& spec : tensors) data.insert(data.end(), spec.bytes.begin(), spec.bytes.end());
  return file_bytes(header_for(tensors, metadata), data);
}

void write_file(const fs::path& path, std::span<const std::byte> bytes) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(stream.good()) << path;
}

void write_text(const fs::path& path, std::string_view text) {
  write_file(path, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

// Passes when `action` throws rackserve::Error whose message holds every needle.
testing::AssertionResult fails_with(const std::function<void()>& action, const std::vector<std::string>& needles) {
  try {
    action();
  } catch (const Error& error) {
    const std::string message = error.what();
    for (const std::string& needle : needles) {
      if (message.find(needle) == std::string::npos) {
        return testing::AssertionFailure() << "message \"" << message << "\" lacks \"" << needle << "\"";
      }
    }
    return testing::AssertionSuccess() << message;
  } catch (const std::exception& other) {
    return testing::AssertionFailure() << "threw something other than rackserve::Error: " << other.what();
  }
  return testing::AssertionFailure() << "did not throw";
}

class SafetensorsTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "rackserve-safetensors-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  fs::path dir_;
};

// ---------------------------------------------------------------------------------------
// Valid files.

std::vector<TensorSpec> every_dtype() {
  return {
      tensor("embed.weight", "BF16", {3, 5}, 2, 1),  tensor("norm.weight", "F32", {7}, 4, 2),
      tensor("w.f16", "F16", {2, 2, 2}, 2, 3),       tensor("w.fp8", "F8_E4M3", {4, 8}, 1, 4),
      tensor("w.e5m2", "F8_E5M2", {5}, 1, 5),        tensor("w.scale_inv", "F32", {2, 3}, 4, 6),
      tensor("packed.u8", "U8", {9}, 1, 7),          tensor("q.i8", "I8", {3}, 1, 8),
      tensor("ids.i32", "I32", {4}, 4, 9),           tensor("pos.i64", "I64", {2}, 8, 10),
      tensor("mask", "BOOL", {6}, 1, 11),            tensor("d.f64", "F64", {1}, 8, 12),
      tensor("scalar", "F32", {}, 4, 13),            tensor("empty", "BF16", {0, 4}, 2, 14),
  };
}

TEST_F(SafetensorsTest, RoundTripsEveryDtypeAndMetadata) {
  const auto specs = every_dtype();
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "naïve ✓"}};
  const fs::path path = dir_ / "model.safetensors";
  write_file(path, file_bytes(specs, metadata));

  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->path(), path);
  EXPECT_EQ(file->metadata(), metadata);
  ASSERT_EQ(file->tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& spec = specs[i];
    SCOPED_TRACE(spec.name);
    const TensorRecord* record = file->find(spec.name);
    ASSERT_NE(record, nullptr);
    EXPECT_EQ(&file->tensors()[i], record) << "tensors() is in data-offset order, as written";
    EXPECT_EQ(record->name, spec.name);
    EXPECT_EQ(dtype_name(record->dtype), spec.dtype);
    EXPECT_EQ(record->shape, Shape(spec.shape.begin(), spec.shape.end()));
    EXPECT_EQ(record->file, path);
    ASSERT_EQ(record->bytes, spec.bytes.size());
    EXPECT_EQ(Bytes(record->data, record->data + record->bytes), spec.bytes);
    EXPECT_EQ(record->view().bytes(), record->bytes);
  }
  EXPECT_EQ(file->find("absent"), nullptr);
}

TEST_F(SafetensorsTest, ReferenceWriterFilesAreAligned) {
  const fs::path path = dir_ / "model.safetensors";
  write_file(path, file_bytes({tensor("a", "F64", {3}, 8, 1), tensor("b", "F32", {5}, 4, 2)}));
  auto file = SafetensorsFile::open(path);
  for (const TensorRecord& record : file->tensors()) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(record.data) % dtype_size(record.dtype), 0u) << record.name;
  }
}

TEST_F(SafetensorsTest, EmptyHeaderObjectIsAValidFileWithNoTensors) {
  const fs::path path = dir_ / "empty.safetensors";
  write_file(path, file_bytes(std::string("{}      "), {}));
  auto file = SafetensorsFile::open(path);
  EXPECT_TRUE(file->tensors().empty());
  EXPECT_TRUE(file->metadata().empty());
}

TEST_F(SafetensorsTest, IgnoresUnknownEntryKeysAndNullMetadata) {
  const fs::path path = dir_ / "model.safetensors";
  write_file(path, file_bytes(R"({"__metadata__":null,"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"x":[1]}})",
                              pattern_bytes(2, 0)));
  auto file = SafetensorsFile::open(path);
  ASSERT_NE(file->find("w"), nullptr);
  EXPECT_TRUE(file->metadata().empty());
}

// ---------------------------------------------------------------------------------------
// Checkpoints: single file, sharded with index, directory without index.

void write_two_shards(const fs::path& dir) {
  write_file(dir / "model-00001-of-00002.safetensors",
             file_bytes({tensor("a.weight", "BF16", {2, 3}, 2, 1), tensor("b.weight", "F32", {4}, 4, 2)}));
  write_file(dir / "model-00002-of-00002.safetensors",
             file_bytes({tensor("c.weight", "F8_E4M3", {8}, 1, 3), tensor("c.weight_scale_inv", "F32", {1}, 4, 4)}));
}

const char* kTwoShardIndex = R"({
  "metadata": {"total_size": 52},
  "weight_map": {
    "a.weight": "model-00001-of-00002.safetensors",
    "b.weight": "model-00001-of-00002.safetensors",
    "c.weight": "model-00002-of-00002.safetensors",
    "c.weight_scale_inv": "model-00002-of-00002.safetensors"
  }
})";

void expect_two_shard_store(const WeightStore& store, const fs::path& dir) {
  EXPECT_EQ(store.names(), (std::vector<std::string>{"a.weight", "b.weight", "c.weight", "c.weight_scale_inv"}));
  EXPECT_EQ(store.size(), 4u);
  EXPECT_EQ(store.get("b.weight").file, dir / "model-00001-of-00002.safetensors");
  EXPECT_EQ(store.get("c.weight").file, dir / "model-00002-of-00002.safetensors");
  EXPECT_EQ(store.get("c.weight").dtype, DType::F8_E4M3);
  const TensorRecord& a = store.get("a.weight");
  EXPECT_EQ(Bytes(a.data, a.data + a.bytes), pattern_bytes(12, 1));
  EXPECT_TRUE(store.contains("c.weight_scale_inv"));
  EXPECT_FALSE(store.contains("d.weight"));
  EXPECT_EQ(store.find("d.weight"), nullptr);
  EXPECT_TRUE(fails_with([&] { store.get("d.weight"); }, {"d.weight", dir.string()}));
}

TEST_F(SafetensorsTest, StoreOpensShardedCheckpointThroughIndex) {
  write_two_shards(dir_);
  write_text(dir_ / "model.safetensors.index.json", kTwoShardIndex);
  write_file(dir_ / "stray.safetensors", file_bytes({tensor("a.weight", "U8", {1}, 1, 0)}));  // not in the index
  const WeightStore store = WeightStore::open(dir_);
  EXPECT_EQ(store.root(), dir_);
  expect_two_shard_store(store, dir_);
}

TEST_F(SafetensorsTest, StoreOpensDirectoryWithoutIndex) {
  write_two_shards(dir_);
  write_text(dir_ / "config.json", "{}");
  expect_two_shard_store(WeightStore::open(dir_), dir_);
}

TEST_F(SafetensorsTest, StoreOpensSingleFile) {
  const fs::path path = dir_ / "model.safetensors";
  write_file(path, file_bytes(every_dtype()));
  const WeightStore store = WeightStore::open(path);
  EXPECT_EQ(store.size(), every_dtype().size());
  EXPECT_EQ(store.get("w.fp8").file, path);
}

TEST_F(SafetensorsTest, StoreStaysValidAfterMove) {
  write_two_shards(dir_);
  WeightStore moved = WeightStore::open(dir_);
  const WeightStore store = std::move(moved);
  const TensorRecord& a = store.get("a.weight");
  EXPECT_EQ(Bytes(a.data, a.data + a.bytes), pattern_bytes(12, 1));
}

TEST_F(SafetensorsTest, StoreRejectsNameTheIndexPutsInTheWrongShard) {
  write_two_shards(dir_);
  write_text(dir_ / "model.safetensors.index.json",
             R"({"weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                                 "c.weight": "model-00001-of-00002.safetensors"}})");
  EXPECT_TRUE(fails_with([&] { WeightStore::open(dir_); },
                         {"model.safetensors.index.json", "c.weight", "model-00001-of-00002.safetensors"}));
}

TEST_F(SafetensorsTest, StoreRejectsIndexNamingMissingShard) {
  write_two_shards(dir_);
  write_text(dir_ / "model.safetensors.index.json", R"({"weight_map": {"a.weight": "model-00009.safetensors"}})");
  EXPECT_TRUE(fails_with([&] { WeightStore::open(dir_); }, {"a.weight", "model-00009.safetensors", "does not exist"}));
}

TEST_F(SafetensorsTest, StoreRejectsIndexPointingOutsideItsDirectory) {
  const fs::path inner = dir_ / "inner";
  fs::create_directory(inner);
  write_two_shards(dir_);
  write_text(inner / "model.safetensors.index.json",
             R"({"weight_map": {"a.weight": "../model-00001-of-00002.safetensors"}})");
  EXPECT_TRUE(fails_with([&] { WeightStore::open(inner); }, {"model.safetensors.index.json", "a.weight", "../"}));
}

TEST_F(SafetensorsTest, StoreRejectsMalformedIndex) {
  write_two_shards(dir_);
  const fs::path index = dir_ / "model.safetensors.index.json";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"weight_map\": ", "not valid JSON"},
      {"[]", "not a JSON object"},
      {"{\"metadata\": {}}", "weight_map"},
      {"{\"weight_map\": {}}", "no tensors"},
      {"{\"weight_map\": {\"a.weight\": 3}}", "a.weight"},
      {R"({"weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                          "a.weight": "model-00002-of-00002.safetensors"}})",
       "repeats the key \"a.weight\""},
  };
  for (const auto& [text, needle] : cases) {
    write_text(index, text);
    EXPECT_TRUE(fails_with([&] { WeightStore::open(dir_); }, {index.string(), needle})) << text;
  }
}

TEST_F(SafetensorsTest, StoreRejectsDuplicateNamesAcrossShards) {
  write_two_shards(dir_);
  write_file(dir_ / "model-00003.safetensors", file_bytes({tensor("b.weight", "F32", {4}, 4, 9)}));
  EXPECT_TRUE(fails_with([&] { WeightStore::open(dir_); },
                         {"b.weight", "model-00001-of-00002.safetensors", "model-00003.safetensors"}));

  // With an index too: the index lists b.weight once, but two listed shards hold it.
  fs::remove(dir_ / "model-00003.safetensors");
  write_file(dir_ / "model-00002-of-00002.safetensors",
             file_bytes({tensor("b.weight", "F32", {4}, 4, 9), tensor("c.weight", "F8_E4M3", {8}, 1, 3)}));
  write_text(dir_ / "model.safetensors.index.json",
             R"({"weight_map": {"b.weight": "model-00001-of-00002.safetensors",
                                 "c.weight": "model-00002-of-00002.safetensors"}})");
  EXPECT_TRUE(fails_with([&] { WeightStore::open(dir_); }, {"b.weight", "appears in both"}));
}

TEST_F(SafetensorsTest, StoreRejectsMissingPathAndEmptyDirectory) {
  EXPECT_TRUE(fails_with([&] { WeightStore::open(dir_ / "nope"); }, {(dir_ / "nope").string()}));
  write_text(dir_ / "config.json", "{}");
  EXPECT_TRUE(fails_with([&] { WeightStore::open(dir_); }, {dir_.string(), "*.safetensors"}));
}

TEST_F(SafetensorsTest, StoreReportsTheHostileShard) {
  write_two_shards(dir_);
  const fs::path bad = dir_ / "model-00002-of-00002.safetensors";
  write_file(bad, file_bytes(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", pattern_bytes(4, 0)));
  EXPECT_TRUE(fails_with([&] { WeightStore::open(dir_); }, {bad.string(), "'x'"}));
}

// ---------------------------------------------------------------------------------------
// Hostile files. Each must fail with an Error naming the file (and tensor).

TEST_F(SafetensorsTest, RejectsFilesTooShortForTheLengthPrefix) {
  const fs::path path = dir_ / "short.safetensors";
  for (size_t size : {0, 1, 7}) {
    write_file(path, pattern_bytes(size, 0));
    EXPECT_TRUE(fails_with([&] { SafetensorsFile::open(path); }, {path.string(), "shorter than"})) << size;
  }
}

TEST_F(SafetensorsTest, RejectsHeaderLengthPastEndOfFile) {
  const fs::path path = dir_ / "model.safetensors";
  const std::string header = header_for({tensor("w", "U8", {4}, 1, 0)});
  write_file(path, file_bytes(header, pattern_bytes(4, 0), header.size() + 5));
  EXPECT_TRUE(fails_with([&] { SafetensorsFile::open(path); }, {path.string(), "past the end"}));
}

TEST_F(SafetensorsTest, RejectsAbsurdHeaderLength) {
  const fs::path path = dir_ / "model.safetensors";
  for (uint64_t length : {kMaxSafetensorsHeaderBytes + 1, uint64_t{1} << 63, ~uint64_t{0}}) {
    write_file(path, file_bytes("{}", {}, length));
    EXPECT_TRUE(fails_with([&] { SafetensorsFile::open(path); }, {path.string(), "exceeds the limit"})) << length;
  }
}

TEST_F(SafetensorsTest, RejectsNonRegularFileAndMissingFile) {
  EXPECT_TRUE(fails_with([&] { SafetensorsFile::open(dir_); }, {dir_.string(), "not a regular file"}));
  EXPECT_TRUE(fails_with([&] { SafetensorsFile::open(dir_ / "none.safetensors"); }, {"none.safetensors", "cannot open"}));
}

struct HostileHeader {
  std::string label;  // test name suffix
  std::string header;
  size_t data_bytes;
  std::vector<std::string> needles;  // besides the file name
};

std::string entry(std::string_view name, std::string_view dtype, std::string_view shape, std::string_view offsets) {
  return fmt::format(R"("{}":{{"dtype":{},"shape":{},"data_offsets":{}}})", name, dtype, shape, offsets);
}

std::string object(const std::vector<std::string>& entries) { return fmt::format("{{{}}}", fmt::join(entries, ",")); }

std::vector<HostileHeader> hostile_headers() {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  return {
      {"EmptyHeader", "", 0, {"not valid JSON"}},
      {"WhitespaceHeader", "        ", 0, {"not valid JSON"}},
      {"TruncatedJson", R"({"w":{"dtype":"F32")", 0, {"not valid JSON"}},
      {"TrailingGarbage", "{} x", 0, {"not valid JSON"}},
      {"NulPadding", std::string("{}\0\0\0\0\0\0", 8), 0, {"not valid JSON", "NUL"}},
      {"NulHidingSecondHeader", std::string("{}\0{\"x\":1}", 10), 0, {"not valid JSON", "offset 2"}},
      {"NotUtf8InName", "{\"w\xff\":{}}", 0, {"not valid UTF-8", "offset 3"}},
      {"OverlongUtf8", "{\"w\xc0\xaf\":{}}", 0, {"not valid UTF-8"}},
      {"SurrogateUtf8", "{\"w\xed\xa0\x80\":{}}", 0, {"not valid UTF-8"}},
      {"HeaderIsArray", "[1,2]", 0, {"not a JSON object", "array"}},
      {"HeaderIsNumber", "42", 0, {"not a JSON object"}},
      {"EntryNotObject", R"({"w":3})", 0, {"'w'", "not an object"}},
      {"EntryDeeplyNested", object({"\"w\":" + deep}), 0, {"'w'", "not an object"}},
      {"MissingDtype", R"({"w":{"shape":[1],"data_offsets":[0,1]}})", 1, {"'w'", "\"dtype\""}},
      {"MissingShape", R"({"w":{"dtype":"U8","data_offsets":[0,1]}})", 1, {"'w'", "\"shape\""}},
      {"MissingOffsets", R"({"w":{"dtype":"U8","shape":[1]}})", 1, {"'w'", "\"data_offsets\""}},
      {"UnknownDtype", object({entry("w", "\"F7\"", "[1]", "[0,1]")}), 1, {"'w'", "unknown dtype \"F7\""}},
      {"DtypeNotString", object({entry("w", "5", "[1]", "[0,1]")}), 1, {"'w'", "dtype"}},
      {"ShapeNotArray", object({entry("w", "\"U8\"", "1", "[0,1]")}), 1, {"'w'", "shape"}},
      {"NegativeShape", object({entry("w", "\"U8\"", "[-1]", "[0,0]")}), 0, {"'w'", "-1", "non-negative"}},
      {"FractionalShape", object({entry("w", "\"U8\"", "[1.5]", "[0,1]")}), 1, {"'w'", "1.5"}},
      {"StringShape", object({entry("w", "\"U8\"", "[\"1\"]", "[0,1]")}), 1, {"'w'", "shape entry"}},
      {"ShapeEntryBeyondInt64", object({entry("w", "\"U8\"", "[18446744073709551615]", "[0,1]")}), 1,
       {"'w'", "overflows int64"}},
      {"ShapeProductOverflow", object({entry("w", "\"U8\"", "[4294967296,4294967296,4]", "[0,1]")}), 1,
       {"'w'", "overflows"}},
      {"ShapeBytesOverflow", object({entry("w", "\"F64\"", "[4611686018427387904]", "[0,8]")}), 8,
       {"'w'", "overflows the byte count"}},
      {"OffsetsNotArray", object({entry("w", "\"U8\"", "[1]", "7")}), 1, {"'w'", "data_offsets"}},
      {"OneOffset", object({entry("w", "\"U8\"", "[1]", "[0]")}), 1, {"'w'", "1 elements"}},
      {"ThreeOffsets", object({entry("w", "\"U8\"", "[1]", "[0,1,2]")}), 1, {"'w'", "3 elements"}},
      {"ReversedOffsets", object({entry("w", "\"U8\"", "[1]", "[4,3]")}), 4, {"'w'", "end before they begin"}},
      {"NegativeOffset", object({entry("w", "\"U8\"", "[1]", "[-1,0]")}), 1, {"'w'", "non-negative"}},
      {"FloatOffset", object({entry("w", "\"U8\"", "[1]", "[0,1.0]")}), 1, {"'w'", "non-negative integers"}},
      {"HugeOffset", object({entry("w", "\"U8\"", "[1]", "[0,1e30]")}), 1, {"'w'", "non-negative integers"}},
      {"OffsetsOutsideData", object({entry("w", "\"F32\"", "[2]", "[0,8]")}), 4, {"'w'", "outside the data section"}},
      {"OffsetsFarOutside", object({entry("w", "\"U8\"", "[1]", "[18446744073709551614,18446744073709551615]")}), 1,
       {"'w'", "outside"}},
      {"SizeMismatch", object({entry("w", "\"F32\"", "[3]", "[0,8]")}), 8, {"'w'", "needs 12 bytes", "hold 8"}},
      {"Overlap", object({entry("a", "\"F32\"", "[2]", "[0,8]"), entry("b", "\"F32\"", "[2]", "[4,12]")}), 12,
       {"'a'", "'b'", "overlap"}},
      {"Aliased", object({entry("a", "\"F32\"", "[2]", "[0,8]"), entry("b", "\"F32\"", "[2]", "[0,8]")}), 8,
       {"'a'", "'b'", "overlap"}},
      {"Hole", object({entry("a", "\"F32\"", "[1]", "[0,4]"), entry("b", "\"F32\"", "[1]", "[8,12]")}), 12,
       {"[4, 8)", "'b'", "belong to no tensor"}},
      {"HoleAtStart", object({entry("a", "\"F32\"", "[1]", "[4,8]")}), 8, {"[0, 4)", "'a'"}},
      {"TrailingData", object({entry("a", "\"F32\"", "[1]", "[0,4]")}), 8, {"[4, 8)", "end of the data section"}},
      {"DataWithoutTensors", "{}", 8, {"[0, 8)"}},
      {"DuplicateTensor", object({entry("w", "\"U8\"", "[1]", "[0,1]"), entry("w", "\"U8\"", "[1]", "[1,2]")}), 2,
       {"repeats the key \"w\""}},
      {"DuplicateFieldInEntry", R"({"w":{"dtype":"U8","dtype":"F32","shape":[1],"data_offsets":[0,1]}})", 1,
       {"repeats the key \"dtype\" inside \"/w\""}},
      {"DuplicateMetadataKey", R"({"__metadata__":{"k":"a","k":"b"}})", 0, {"\"k\"", "__metadata__"}},
      {"DuplicateMetadata", R"({"__metadata__":{},"__metadata__":{}})", 0, {"repeats the key \"__metadata__\""}},
      {"MetadataNotObject", R"({"__metadata__":"pt"})", 0, {"__metadata__", "not an object"}},
      {"MetadataValueNotString", R"({"__metadata__":{"format":1}})", 0, {"__metadata__", "\"format\"", "not a string"}},
  };
}

class HostileHeaderTest : public SafetensorsTest, public testing::WithParamInterface<HostileHeader> {};

TEST_P(HostileHeaderTest, FailsNamingFileAndTensor) {
  const HostileHeader& hostile = GetParam();
  const fs::path path = dir_ / "hostile.safetensors";
  write_file(path, file_bytes(hostile.header, pattern_bytes(hostile.data_bytes, 0)));
  std::vector<std::string> needles = hostile.needles;
  needles.push_back(path.string());
  EXPECT_TRUE(fails_with([&] { SafetensorsFile::open(path); }, needles));
}

INSTANTIATE_TEST_SUITE_P(Safetensors, HostileHeaderTest, testing::ValuesIn(hostile_headers()),
                         [](const testing::TestParamInfo<HostileHeader>& info) { return info.param.label; });

// ---------------------------------------------------------------------------------------
// Sweeps: every variant either loads or throws rackserve::Error; never anything else.

// Keeps the compiler from dropping reads whose only purpose is to be checked.
void keep_alive(uint64_t value) { asm volatile("" : : "r"(value) : "memory"); }

// Parses a copy of `bytes` in a heap block of exactly its size, so AddressSanitizer
// flags any read past the end. Returns whether it loaded; checks the layout's contract.
bool parses_in_bounds(std::span<const std::byte> bytes, const std::string& label) {
  auto exact = std::make_unique<std::byte[]>(bytes.size());
  std::copy(bytes.begin(), bytes.end(), exact.get());
  try {
    const SafetensorsLayout layout = parse_safetensors_layout({exact.get(), bytes.size()}, label);
    uint64_t checksum = 0;
    for (const TensorLayout& tensor : layout.tensors) {
      EXPECT_LE(tensor.begin, tensor.end);
      EXPECT_LE(layout.data_offset + tensor.end, bytes.size()) << tensor.name;
      for (uint64_t i = tensor.begin; i < tensor.end; ++i) checksum += static_cast<uint8_t>(exact[layout.data_offset + i]);
    }
    keep_alive(checksum);
    return true;
  } catch (const Error& error) {
    EXPECT_EQ(std::string_view(error.what()).substr(0, label.size()), label);
    return false;
  }
}

// Opens `bytes` written to `path`; returns whether it loaded, reading every tensor byte.
bool opens_from_file(const fs::path& path, std::span<const std::byte> bytes) {
  write_file(path, bytes);
  try {
    auto file = SafetensorsFile::open(path);
    uint64_t checksum = 0;
    for (const TensorRecord& record : file->tensors()) {
      for (size_t i = 0; i < record.bytes; ++i) checksum += static_cast<uint8_t>(record.data[i]);
    }
    keep_alive(checksum);
    return true;
  } catch (const Error& error) {
    EXPECT_NE(std::string_view(error.what()).find(path.string()), std::string_view::npos) << error.what();
    return false;
  }
}

std::vector<TensorSpec> sweep_tensors() {
  return {tensor("a", "BF16", {2, 3}, 2, 1), tensor("b.scale", "F32", {2}, 4, 2), tensor("c", "U8", {5}, 1, 3),
          tensor("d", "I64", {}, 8, 4)};
}

TEST_F(SafetensorsTest, TruncationSweepFailsCleanlyAtEveryLength) {
  const Bytes whole = file_bytes(sweep_tensors(), {{"format", "pt"}});
  const fs::path path = dir_ / "truncated.safetensors";
  for (size_t length = 0; length <= whole.size(); ++length) {
    SCOPED_TRACE(length);
    const std::span<const std::byte> prefix(whole.data(), length);
    const bool expect_load = length == whole.size();  // the tensors tile the data to its end
    EXPECT_EQ(parses_in_bounds(prefix, "truncated"), expect_load);
    EXPECT_EQ(opens_from_file(path, prefix), expect_load);
  }
}

TEST_F(SafetensorsTest, ByteFlipSweepOverHeaderLoadsOrFailsCleanly) {
  const Bytes whole = file_bytes(sweep_tensors(), {{"format", "pt"}});
  size_t data_bytes = 0;
  for (const TensorSpec& spec : sweep_tensors()) data_bytes += spec.bytes.size();
  const size_t prefix_and_header = whole.size() - data_bytes;
  const fs::path path = dir_ / "flipped.safetensors";
  const uint8_t replacements[] = {'"', '{', '}', '[', ']', ',', ':', '0', '9', '-', ' ', 0x00, 0x80, 0xff};
  size_t loaded = 0, failed = 0;
  for (size_t position = 0; position < prefix_and_header; ++position) {
    const auto original = static_cast<uint8_t>(whole[position]);
    std::vector<uint8_t> values(std::begin(replacements), std::end(replacements));
    values.push_back(original ^ 0x01);
    values.push_back(original ^ 0x20);
    for (uint8_t value : values) {
      if (value == original) continue;
      SCOPED_TRACE(fmt::format("byte {} -> 0x{:02x}", position, value));
      Bytes variant = whole;
      variant[position] = static_cast<std::byte>(value);
      const bool from_memory = parses_in_bounds(variant, "flipped");
      EXPECT_EQ(opens_from_file(path, variant), from_memory);
      (from_memory ? loaded : failed) += 1;
    }
  }
  // Flips inside names or metadata values still load; most others must not.
  EXPECT_GT(loaded, 0u);
  EXPECT_GT(failed, loaded);
}

}  // namespace
}  // namespace rackserve
