// Read-only access to safetensors checkpoints through mmap: one file, or a sharded
// checkpoint described by model.safetensors.index.json. Every header is validated
// before any tensor is exposed, so a hostile file yields a rackserve::Error naming the
// file and tensor, never an out-of-bounds read.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace rackserve {

// One tensor inside a mapped file. `data` stays valid while the owning file is open and
// points at exactly `bytes` bytes (numel * dtype size; may be 0). It is aligned to the
// dtype size only when the writer aligned it (the reference writer does); the reader
// does not require it, so code that casts `data` to a wider type must check.
struct TensorRecord {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  const std::byte* data = nullptr;
  size_t bytes = 0;
  std::filesystem::path file;

  // A host Tensor view of the mapped bytes (read-only by contract).
  Tensor view() const { return Tensor{const_cast<std::byte*>(data), dtype, shape, Device{}}; }
};

class SafetensorsFile {
 public:
  // Maps `path` read-only (MAP_PRIVATE) and validates it with parse_safetensors_layout
  // (weights/safetensors_layout.h lists the rules); throws rackserve::Error naming the
  // file, and the tensor where one is at fault. The file must not be truncated while
  // it is open: reading a page past the new end faults (SIGBUS), as with any mmap.
  static std::unique_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorRecord>& tensors() const { return tensors_; }  // by data offset
  const TensorRecord* find(const std::string& name) const;                // nullptr when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  std::vector<TensorRecord> tensors_;
  std::map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory (or a single .safetensors file), by name.
class WeightStore {
 public:
  // Opens `path`: a directory with model.safetensors.index.json, a directory with
  // *.safetensors files, or one .safetensors file. Names must be unique across shards
  // and every name the index lists must be present in the file it names. With an
  // index, only the files it names are opened (plain file names in its directory);
  // tensors those files hold beyond the index's list are kept, as transformers does.
  // A directory that yields no shard at all is an error.
  static WeightStore open(const std::filesystem::path& path);

  const std::filesystem::path& root() const { return root_; }  // as given to open()

  const TensorRecord* find(const std::string& name) const;  // nullptr when absent
  const TensorRecord& get(const std::string& name) const;   // throws naming the tensor
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  std::vector<std::string> names() const;  // sorted
  size_t size() const { return records_.size(); }

 private:
  std::filesystem::path root_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorRecord*> records_;
};

}  // namespace rackserve
