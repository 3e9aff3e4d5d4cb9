// TensorParallelModel: one model split over N ranks of one process, seen as one CausalLM.
// Each rank has a worker thread that owns its backend's work: it loads the rank's shard
// and runs every forward step on it; all ranks run the same ForwardBatch (the step plan
// every worker receives) and meet in the collectives. The caller gets rank 0's logits, on
// rank 0's backend (backend() is rank 0's, so sampling happens there).
//
// Failure: when a rank throws (while loading or in a step), the group's communicators are
// aborted, so ranks waiting in a collective throw too instead of hanging; the call then
// throws ModelFailure "tensor-parallel rank R failed: ..." naming the first failure, and
// the model is unusable afterwards (every later call throws the same). A watchdog
// (collective_watchdog.h) turns a step past its deadline or a transport's async error into
// the same abort. Each step ends with every rank's Communicator::synchronize, so a step
// that returns has finished on every device (and a hang shows inside the watched step).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "models/collective_watchdog.h"
#include "models/model.h"
#include "parallel/communicator.h"

namespace rackserve {

struct TensorParallelOptions {
  // Run on rank r's worker thread before each of its tasks (CUDA: cudaSetDevice, since the
  // CUDA backend's ops run on the calling thread's current device). Empty: nothing.
  std::function<void(size_t rank)> bind_thread;
  WatchdogOptions watchdog;  // step deadline (0: none) and what happens to a stuck rank
};

// Throws Error with one line when `world` ranks cannot split the model in `directory`
// (attention heads, dense and expert intermediate sizes, vocabulary), naming the extent
// and the sizes that would divide it. Reads config.json only: call it before loading.
void check_tensor_parallel_size(const std::filesystem::path& directory, int world);

class TensorParallelModel final : public CausalLM {
 public:
  // Rank r runs on backends[r] with communicators[r] (rank r of a group of N =
  // backends.size()); both must outlive the model. Loads the N shards in parallel.
  TensorParallelModel(const std::filesystem::path& directory, std::vector<Backend*> backends,
                      std::vector<Communicator*> communicators, const LoadOptions& options = {},
                      TensorParallelOptions tp_options = {});
  ~TensorParallelModel() override;

  const ModelConfig& config() const override { return ranks_.front().model->config(); }
  Backend& backend() const override { return *ranks_.front().backend; }
  int world_size() const { return static_cast<int>(ranks_.size()); }
  // Allocates the same cache on every rank (the MLA latent cache is replicated) and returns
  // rank 0's; forward finds the other ranks' by it.
  PagedKvCache allocate_kv_cache(int64_t pages, int64_t page_size,
                                 std::optional<KvCacheDtype> dtype = std::nullopt) const override;
  // Runs `batch` on every rank; returns rank 0's logits [rows, vocab].
  Tensor forward(const ForwardBatch& batch, PagedKvCache& cache) override;

 private:
  class Worker;
  struct Rank {
    Backend* backend = nullptr;
    Communicator* communicator = nullptr;
    std::unique_ptr<CausalLM> model;
    std::unique_ptr<Worker> worker;
  };
  // Runs task(rank) on every rank's worker and waits for all; on failure aborts the group
  // and throws (see above). `watched`: under the watchdog's deadline (steps, not loading).
  void run_on_all_ranks(const std::function<void(size_t rank)>& task, const char* watched = nullptr) const;

  TensorParallelOptions options_;
  std::vector<Rank> ranks_;
  std::unique_ptr<CollectiveWatchdog> watchdog_;
  mutable std::map<const void*, std::vector<PagedKvCache>> caches_;  // rank 0's storage -> ranks 1..N-1
  mutable std::string failure_;
};

}  // namespace rackserve
