#include "models/tensor_parallel_model.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"

namespace rackserve {

// One thread that runs the tasks it is given, one at a time, and reports each one's end.
class TensorParallelModel::Worker {
 public:
  Worker() : thread_([this] { loop(); }) {}
  ~Worker() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  void start(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      task_ = std::move(task);
      done_ = false;
      error_ = nullptr;
    }
    changed_.notify_all();
  }
  // Waits for the task given to start(); returns the exception it threw, if any.
  std::exception_ptr wait() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return done_; });
    return error_;
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    while (true) {
      changed_.wait(lock, [&] { return stopping_ || task_; });
      if (!task_) return;
      std::function<void()> task = std::move(task_);
      task_ = nullptr;
      lock.unlock();
      std::exception_ptr error;
      try {
        task();
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      error_ = error;
      done_ = true;
      changed_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::function<void()> task_;
  bool done_ = true, stopping_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts after the members it reads
};

namespace {
std::string message_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}
}  // namespace

void check_tensor_parallel_size(const std::filesystem::path& directory, int world) {
  RS_CHECK(world >= 1, "--tp must be >= 1, got {}", world);
  if (world == 1) return;
  const ModelConfig config = ModelConfig::load(directory);
  auto check = [&](const char* what, int64_t extent) {
    if (extent <= 0 || extent % world == 0) return;
    std::string sizes;
    for (int64_t n = 1; n <= std::min<int64_t>(extent, 64); ++n)
      if (extent % n == 0) sizes += fmt::format("{}{}", sizes.empty() ? "" : ", ", n);
    RS_FAIL("--tp {} does not divide the model's {} {} (tensor-parallel sizes that do: {})", world, extent, what,
            sizes);
  };
  check("attention heads", config.num_attention_heads());
  if (!config.is_mla()) check("key/value heads", config.gqa.num_kv_heads);
  check("dense MLP intermediate size", config.intermediate_size);
  check("expert intermediate size", config.moe.expert_intermediate_size);
  check("vocabulary entries", config.vocab_size);
}

TensorParallelModel::TensorParallelModel(const std::filesystem::path& directory, std::vector<Backend*> backends,
                                         std::vector<Communicator*> communicators, const LoadOptions& options,
                                         TensorParallelOptions tp_options)
    : options_(std::move(tp_options)) {
  RS_CHECK(!backends.empty() && backends.size() == communicators.size(),
           "tensor parallelism: {} backends for {} communicators", backends.size(), communicators.size());
  for (size_t r = 0; r < backends.size(); ++r) {
    RS_CHECK(communicators[r]->rank() == static_cast<int>(r) &&
                 communicators[r]->world_size() == static_cast<int>(backends.size()),
             "tensor parallelism: communicator {} is rank {} of {}, expected rank {} of {}", r,
             communicators[r]->rank(), communicators[r]->world_size(), r, backends.size());
    Rank rank;
    rank.backend = backends[r];
    rank.communicator = communicators[r];
    rank.worker = std::make_unique<Worker>();
    ranks_.push_back(std::move(rank));
  }
  watchdog_ = std::make_unique<CollectiveWatchdog>(communicators, options_.watchdog);
  run_on_all_ranks([&](size_t r) {
    ranks_[r].model = load_model(directory, *ranks_[r].backend, options, ranks_[r].communicator);
  });
  run_on_all_ranks([&](size_t r) { ranks_[r].communicator->warm_up(); }, "collective warm-up");
}

TensorParallelModel::~TensorParallelModel() {
  for (Rank& rank : ranks_) rank.worker.reset();  // the threads end before the watchdog
}

void TensorParallelModel::run_on_all_ranks(const std::function<void(size_t rank)>& task, const char* watched) const {
  if (!failure_.empty()) throw ModelFailure(failure_);
  // The first rank to fail is the cause; the ranks its abort releases fail after it.
  std::mutex first_mutex;
  std::string first;
  for (size_t r = 0; r < ranks_.size(); ++r) {
    Communicator* communicator = ranks_[r].communicator;
    ranks_[r].worker->start([this, &task, &first_mutex, &first, r, communicator] {
      try {
        if (options_.bind_thread) options_.bind_thread(r);
        task(r);
      } catch (...) {  // any exception: the other ranks must not wait for this one in a collective
        const std::string what = message_of(std::current_exception());
        {
          std::lock_guard lock(first_mutex);
          if (first.empty()) first = fmt::format("tensor-parallel rank {} failed: {}", r, what);
        }
        communicator->abort(fmt::format("rank {} failed: {}", r, what));  // release the waiting ranks
        throw;
      }
    });
  }
  if (watched) watchdog_->begin(watched);
  for (size_t r = 0; r < ranks_.size(); ++r) {
    const std::exception_ptr error = ranks_[r].worker->wait();
    std::lock_guard lock(first_mutex);
    if (error && first.empty()) first = fmt::format("tensor-parallel rank {} failed: {}", r, message_of(error));
  }
  if (watched) watchdog_->end();
  if (first.empty()) return;
  failure_ = first;
  throw ModelFailure(first);
}

PagedKvCache TensorParallelModel::allocate_kv_cache(int64_t pages, int64_t page_size,
                                                    std::optional<KvCacheDtype> dtype) const {
  std::vector<std::optional<PagedKvCache>> caches(ranks_.size());
  run_on_all_ranks([&](size_t r) { caches[r] = ranks_[r].model->allocate_kv_cache(pages, page_size, dtype); });
  std::vector<PagedKvCache> others;
  for (size_t r = 1; r < caches.size(); ++r) others.push_back(*caches[r]);
  caches_.emplace(caches.front()->storage().data, std::move(others));
  return *caches.front();
}

Tensor TensorParallelModel::forward(const ForwardBatch& batch, PagedKvCache& cache) {
  auto found = caches_.find(cache.storage().data);
  RS_CHECK(found != caches_.end(), "tensor parallelism: the KV cache was not allocated by this model");
  Tensor logits;
  run_on_all_ranks([&](size_t r) {
    PagedKvCache& own = r == 0 ? cache : found->second[r - 1];
    Tensor out = ranks_[r].model->forward(batch, own);
    ranks_[r].communicator->synchronize();  // a hang shows here, under the watchdog, not in the caller's next call
    if (r == 0) logits = out;
  }, "forward");
  return logits;
}

}  // namespace rackserve
