// SafetensorsFile: owns one read-only mapping of a .safetensors file and exposes its
// tensors as views into it. All validation lives in safetensors_layout.cpp.
#include "weights/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <span>
#include <system_error>

#include "core/error.h"
#include "weights/safetensors_layout.h"

namespace rackserve {

namespace {

// Closes a file descriptor on scope exit; the mapping outlives it.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string errno_message() { return std::generic_category().message(errno); }

}  // namespace

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string name = path.string();
  FileDescriptor fd(::open(name.c_str(), O_RDONLY | O_CLOEXEC));
  RS_CHECK(fd.get() >= 0, "{}: cannot open: {}", name, errno_message());
  struct stat info {};
  RS_CHECK(::fstat(fd.get(), &info) == 0, "{}: cannot stat: {}", name, errno_message());
  RS_CHECK(S_ISREG(info.st_mode), "{}: not a regular file", name);

  // Built before validation so that its destructor unmaps if validation throws.
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  const auto size = static_cast<size_t>(info.st_size);
  if (size > 0) {  // mmap refuses length 0; the layout check reports the empty file
    void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    RS_CHECK(mapping != MAP_FAILED, "{}: cannot mmap {} bytes: {}", name, size, errno_message());
    file->mapping_ = mapping;
    file->mapping_bytes_ = size;
  }
  const auto* base = static_cast<const std::byte*>(file->mapping_);
  SafetensorsLayout layout = parse_safetensors_layout(std::span<const std::byte>(base, size), name);

  file->metadata_ = std::move(layout.metadata);
  file->tensors_.reserve(layout.tensors.size());
  for (TensorLayout& tensor : layout.tensors) {
    file->index_.emplace(tensor.name, file->tensors_.size());
    file->tensors_.push_back(TensorRecord{
        .name = std::move(tensor.name),
        .dtype = tensor.dtype,
        .shape = std::move(tensor.shape),
        .data = base + layout.data_offset + tensor.begin,
        .bytes = static_cast<size_t>(tensor.end - tensor.begin),
        .file = path,
    });
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
}

const TensorRecord* SafetensorsFile::find(const std::string& name) const {
  auto found = index_.find(name);
  return found == index_.end() ? nullptr : &tensors_[found->second];
}

}  // namespace rackserve
