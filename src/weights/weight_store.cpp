// WeightStore: finds the shard files of a checkpoint (index.json, a directory scan, or
// one file), opens each once, and indexes every tensor by name across them.
#include <algorithm>
#include <fstream>
#include <system_error>

#include "core/error.h"
#include "weights/safetensors.h"
#include "weights/strict_json.h"

namespace rackserve {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kIndexFileName = "model.safetensors.index.json";
constexpr uintmax_t kMaxIndexBytes = 100'000'000;  // real indexes are a few MB

std::string read_index_text(const fs::path& index) {
  std::error_code error;
  const uintmax_t size = fs::file_size(index, error);
  RS_CHECK(!error, "{}: cannot read: {}", index.string(), error.message());
  RS_CHECK(size <= kMaxIndexBytes, "{}: {} bytes, larger than the {} byte limit for an index", index.string(), size,
           kMaxIndexBytes);
  std::ifstream stream(index, std::ios::binary);
  std::string text(static_cast<size_t>(size), '\0');
  stream.read(text.data(), static_cast<std::streamsize>(text.size()));
  RS_CHECK(stream.gcount() == static_cast<std::streamsize>(text.size()), "{}: cannot read all {} bytes", index.string(),
           size);
  return text;
}

// A shard must sit next to its index: no directories, no "..", so an index cannot
// point the loader anywhere else on the machine.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

// The index's weight_map: tensor name -> shard file name.
std::map<std::string, std::string> read_weight_map(const fs::path& index) {
  const std::string label = index.string();
  const json root = parse_strict_json(read_index_text(index), label);
  RS_CHECK(root.is_object(), "{}: is {}, not a JSON object", label, describe_json(root));
  auto weight_map = root.find("weight_map");
  RS_CHECK(weight_map != root.end() && weight_map->is_object(), "{}: has no \"weight_map\" object", label);
  std::map<std::string, std::string> shard_of;
  for (const auto& [tensor, file] : weight_map->get_ref<const json::object_t&>()) {
    RS_CHECK(file.is_string(), "{}: weight_map entry of tensor '{}' is {}, not a file name", label, tensor,
             describe_json(file));
    const auto& file_name = file.get_ref<const json::string_t&>();
    RS_CHECK(is_plain_file_name(file_name), "{}: tensor '{}' maps to {}, not a file name in the index's directory", label,
             tensor, describe_json(file));
    shard_of.emplace(tensor, file_name);
  }
  RS_CHECK(!shard_of.empty(), "{}: weight_map lists no tensors", label);
  return shard_of;
}

std::vector<std::shared_ptr<SafetensorsFile>> open_indexed(const fs::path& index) {
  const fs::path directory = index.parent_path();
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;  // file name -> opened once
  for (const auto& [tensor, file_name] : read_weight_map(index)) {
    auto [shard, first_use] = shards.try_emplace(file_name);
    const fs::path shard_path = directory / file_name;
    if (first_use) {
      std::error_code error;
      RS_CHECK(fs::exists(shard_path, error), "{}: tensor '{}' is listed in {}, which does not exist", index.string(),
               tensor, shard_path.string());
      shard->second = SafetensorsFile::open(shard_path);
    }
    RS_CHECK(shard->second->find(tensor) != nullptr, "{}: tensor '{}' is listed in {}, which holds no such tensor",
             index.string(), tensor, shard_path.string());
  }
  std::vector<std::shared_ptr<SafetensorsFile>> files;
  for (auto& [name, file] : shards) files.push_back(std::move(file));
  return files;
}

// Every regular *.safetensors file in `directory`, in name order.
std::vector<std::shared_ptr<SafetensorsFile>> open_directory(const fs::path& directory) {
  std::vector<fs::path> paths;
  std::error_code error;
  for (fs::directory_iterator it(directory, error), end; !error && it != end; it.increment(error)) {
    std::error_code type_error;
    if (it->path().extension() == ".safetensors" && it->is_regular_file(type_error)) paths.push_back(it->path());
  }
  RS_CHECK(!error, "{}: cannot list directory: {}", directory.string(), error.message());
  RS_CHECK(!paths.empty(), "{}: directory holds neither {} nor any *.safetensors file", directory.string(),
           kIndexFileName);
  std::sort(paths.begin(), paths.end());
  std::vector<std::shared_ptr<SafetensorsFile>> files;
  for (const fs::path& path : paths) files.push_back(SafetensorsFile::open(path));
  return files;
}

std::vector<std::shared_ptr<SafetensorsFile>> open_files(const fs::path& path) {
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  RS_CHECK(!error && fs::exists(status), "{}: no such file or directory", path.string());
  if (!fs::is_directory(status)) return {SafetensorsFile::open(path)};
  const fs::path index = path / kIndexFileName;
  if (fs::exists(index, error)) return open_indexed(index);
  return open_directory(path);
}

}  // namespace

WeightStore WeightStore::open(const std::filesystem::path& path) {
  WeightStore store;
  store.root_ = path;
  store.files_ = open_files(path);
  for (const auto& file : store.files_) {
    for (const TensorRecord& record : file->tensors()) {
      auto [existing, inserted] = store.records_.emplace(record.name, &record);
      RS_CHECK(inserted, "{}: tensor '{}' appears in both {} and {}", path.string(), record.name,
               existing->second->file.string(), record.file.string());
    }
  }
  return store;
}

const TensorRecord* WeightStore::find(const std::string& name) const {
  auto found = records_.find(name);
  return found == records_.end() ? nullptr : found->second;
}

const TensorRecord& WeightStore::get(const std::string& name) const {
  const TensorRecord* record = find(name);
  RS_CHECK(record != nullptr, "{}: checkpoint has no tensor '{}'", root_.string(), name);
  return *record;
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> names;
  names.reserve(records_.size());
  for (const auto& [name, record] : records_) names.push_back(name);
  return names;
}

}  // namespace rackserve
