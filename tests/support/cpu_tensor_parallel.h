// A tensor-parallel model on the CPU: N CPU backends (one thread each: the ranks are the
// parallelism) meeting in the in-process communicator group, and the TensorParallelModel over
// them.
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "models/tensor_parallel_model.h"
#include "parallel/in_process_communicator.h"

namespace rackserve::testing {

struct CpuTensorParallelModel {
  CpuTensorParallelModel(const std::filesystem::path& directory, int world, const LoadOptions& options) {
    communicators = make_in_process_communicators(world);
    std::vector<Backend*> backend_pointers;
    std::vector<Communicator*> communicator_pointers;
    for (int r = 0; r < world; ++r) {
      backends.push_back(make_cpu_backend(1));
      backend_pointers.push_back(backends.back().get());
      communicator_pointers.push_back(communicators[static_cast<size_t>(r)].get());
    }
    model = std::make_unique<TensorParallelModel>(directory, backend_pointers, communicator_pointers, options);
  }
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<std::unique_ptr<Communicator>> communicators;
  std::unique_ptr<TensorParallelModel> model;
};

}  // namespace rackserve::testing
