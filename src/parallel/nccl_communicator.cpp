// NCCL collectives on the backends' streams. all_gather_last_dim gathers rank-major
// ([world, rows, n], what ncclAllGather writes) into a step tensor and then copies each
// rank's block into its columns with one strided cudaMemcpy2DAsync per rank.
// The communicators are non-blocking (ncclConfig_t::blocking = 0): initialisation is polled
// with a deadline instead of hanging in ncclGroupEnd, a call answering ncclInProgress is
// polled to completion, and every wait also watches the group's abort flag.
// Small all-reduces take the custom one-shot kernel (custom_all_reduce.h) when the group
// has one and the message is within its crossover size.
#include "parallel/nccl_communicator.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <string_view>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nccl.h>

#include "core/error.h"
#include "parallel/custom_all_reduce.h"

namespace rackserve {

namespace {

void check_nccl(ncclResult_t result, const char* what) {
  RS_CHECK(result == ncclSuccess, "{}: {}", what, ncclGetErrorString(result));
}

void check_cuda(cudaError_t result, const char* what) {
  RS_CHECK(result == cudaSuccess, "{}: {}", what, cudaGetErrorString(result));
}

ncclDataType_t nccl_type(const char* op, DType dtype) {
  if (dtype == DType::F32) return ncclFloat32;
  if (dtype == DType::BF16) return ncclBfloat16;
  RS_FAIL("{}: dtype {} (F32 or BF16 only)", op, dtype_name(dtype));
}

// What every rank's communicator shares: the NCCL communicators, so that one rank's
// abort reaches all of them.
//
// ncclCommAbort frees the communicator, and (NCCL >= 2.26) the last ncclCommAbort /
// ncclCommDestroy of the process's ranks blocks until every CUDA graph that captured one
// of their collectives is destroyed: the step graphs live until the models go, i.e. after
// the failed step returns. So abort() (1) waits until no thread is inside an NCCL call on
// the comms and marks the group aborted (every later call throws instead of touching a
// comm: no use after free), then (2) runs the ncclCommAbort calls on a thread of their own:
// each sets its comm's abort flag first (the ranks' kernels quit), and the caller (a rank
// or the watchdog) returns instead of waiting for the graphs. The destructor joins it.
//
// One NCCL call at a time per comm: a non-blocking comm's collective is finished by whichever
// thread next calls ncclCommGetAsyncError on it, and two threads doing so at once (the rank's
// own wait and the watchdog's poll) would both release the same background job. The rank's
// thread holds its comm's lock for each call; the watchdog only tries it and skips a busy comm.
struct NcclGroup {
  explicit NcclGroup(size_t ranks) : comms(ranks), comm_locks(ranks) {}

  std::vector<ncclComm_t> comms;
  std::vector<std::mutex> comm_locks;  // one per comm
  std::unique_ptr<CustomAllReduce> custom;  // null: every all-reduce goes to NCCL
  std::mutex mutex;
  std::shared_mutex in_use;  // shared: one NCCL call on a comm; exclusive: abort() marking the group
  std::atomic<bool> aborted{false};
  std::string abort_reason;
  std::thread aborter;
  std::future<void> abort_finished;  // ready when the aborter's ncclCommAbort calls returned
  static constexpr std::chrono::seconds kAbortGrace{60};

  void abort(const std::string& reason) {
    std::lock_guard lock(mutex);
    if (aborted) return;
    abort_reason = reason;
    if (custom) custom->abort();  // its kernels stop spinning on peers' flags
    {
      std::unique_lock exclusive(in_use);
      aborted = true;
    }
    std::promise<void> finished;
    abort_finished = finished.get_future();
    aborter = std::thread([comms = comms, finished = std::move(finished)]() mutable {
      for (ncclComm_t comm : comms)
        if (comm) ncclCommAbort(comm);  // unblocks ranks waiting in a collective
      finished.set_value();
    });
  }
  ~NcclGroup() {
    if (aborter.joinable()) {
      // Every comm's abort flag is set before the buffers go. An abort that never returns (a
      // rank stuck in a device call, a graph still holding NCCL resources) must not leave a
      // failed server hanging instead of exiting for its supervisor to restart it.
      if (abort_finished.wait_for(kAbortGrace) != std::future_status::ready) {
        spdlog::critical("NCCL did not finish aborting the tensor-parallel group within {} s ({}); exiting",
                         kAbortGrace.count(), abort_reason);
        std::_Exit(EXIT_FAILURE);
      }
      aborter.join();
    }
    custom.reset();  // its buffers before the devices' NCCL state goes
    if (!aborted)
      for (ncclComm_t comm : comms)
        if (comm) ncclCommDestroy(comm);
  }

  // Runs `call` (one NCCL call on rank `rank`'s comm, under its lock) unless the group was
  // aborted: then it throws, and the comm, freed or being freed by ncclCommAbort, is not touched.
  template <typename Call>
  ncclResult_t use(size_t rank, Call&& call) {
    std::shared_lock lock(in_use);
    RS_CHECK(!aborted, "tensor-parallel group aborted: {}", abort_reason);
    std::lock_guard comm_lock(comm_locks[rank]);
    return call(comms[rank]);
  }

  // Polls rank `rank`'s comm until no operation is in progress; throws on an error, an
  // abort, or when `deadline` passes (then aborts the group: a hung init must not stay behind).
  void wait_ready(size_t rank, const char* what,
                  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max()) {
    for (;;) {
      ncclResult_t state = ncclSuccess;
      check_nccl(use(rank, [&](ncclComm_t comm) { return ncclCommGetAsyncError(comm, &state); }),
                 "ncclCommGetAsyncError");
      if (state == ncclSuccess) return;
      RS_CHECK(state == ncclInProgress, "{}: {}", what, ncclGetErrorString(state));
      RS_CHECK(!aborted, "tensor-parallel group aborted: {}", abort_reason);
      if (std::chrono::steady_clock::now() > deadline) {
        abort(fmt::format("{} did not finish in time", what));
        RS_FAIL("{} did not finish in time (check `rackserve doctor` and the NCCL_* environment)", what);
      }
      std::this_thread::yield();
    }
  }
};

// A non-blocking communicator's call may answer ncclInProgress: the work is still being
// enqueued in the background; wait for it like NCCL documents.
void check_enqueued(NcclGroup& group, size_t rank, ncclResult_t result, const char* what) {
  if (result == ncclInProgress) return group.wait_ready(rank, what);
  check_nccl(result, what);
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::shared_ptr<NcclGroup> group, int rank, Backend& backend)
      : group_(std::move(group)), rank_(rank), backend_(backend),
        stream_(static_cast<cudaStream_t>(backend.native_stream())),
        barrier_word_(backend.allocate_persistent(DType::F32, {1})) {}

  int rank() const override { return rank_; }
  int world_size() const override { return static_cast<int>(group_->comms.size()); }

  void all_reduce_sum(const Tensor& tensor) override {
    check_usable("all_reduce_sum", tensor);
    ++counts_.calls;
    if (group_->custom && group_->custom->all_reduce(rank_, tensor, stream_)) {
      ++counts_.custom;
      return;
    }
    const ncclDataType_t type = nccl_type("all_reduce_sum", tensor.dtype);
    check_enqueued(*group_, slot(), group_->use(slot(), [&](ncclComm_t nccl) {
      return ncclAllReduce(tensor.data, tensor.data, static_cast<size_t>(tensor.numel()), type, ncclSum, nccl, stream_);
    }), "ncclAllReduce");
  }

  void all_gather_last_dim(const Tensor& in, const Tensor& out) override {
    check_usable("all_gather_last_dim", in);
    const int world = world_size();
    RS_CHECK(in.rank() == 2 && out.rank() == 2 && out.dim(0) == in.dim(0) && out.dim(1) == in.dim(1) * world &&
                 out.dtype == in.dtype && out.data != in.data && out.device == in.device,
             "all_gather_last_dim: in {} {} and out {} {} are not [rows, n] and [rows, {} * n] of one dtype",
             dtype_name(in.dtype), shape_string(in.shape), dtype_name(out.dtype), shape_string(out.shape), world);
    const int64_t rows = in.dim(0), n = in.dim(1);
    const ncclDataType_t type = nccl_type("all_gather_last_dim", in.dtype);
    if (rows == 1) {  // [world, 1, n] is already [1, world * n]
      check_enqueued(*group_, slot(), group_->use(slot(), [&](ncclComm_t nccl) {
        return ncclAllGather(in.data, out.data, static_cast<size_t>(n), type, nccl, stream_);
      }), "ncclAllGather");
      return;
    }
    Tensor gathered = backend_.allocate_step(in.dtype, {world, rows, n});
    check_enqueued(*group_, slot(), group_->use(slot(), [&](ncclComm_t nccl) {
      return ncclAllGather(in.data, gathered.data, static_cast<size_t>(rows * n), type, nccl, stream_);
    }), "ncclAllGather");
    const size_t element = dtype_size(in.dtype);
    for (int r = 0; r < world; ++r)
      check_cuda(cudaMemcpy2DAsync(static_cast<std::byte*>(out.data) + static_cast<size_t>(r * n) * element,
                                   static_cast<size_t>(world * n) * element,
                                   static_cast<const std::byte*>(gathered.data) + static_cast<size_t>(r * rows * n) * element,
                                   static_cast<size_t>(n) * element, static_cast<size_t>(n) * element,
                                   static_cast<size_t>(rows), cudaMemcpyDeviceToDevice, stream_),
                 "all_gather_last_dim: column copy");
  }

  void barrier() override {
    check_enqueued(*group_, slot(), group_->use(slot(), [&](ncclComm_t nccl) {
      return ncclAllReduce(barrier_word_.data, barrier_word_.data, 1, ncclFloat32, ncclSum, nccl, stream_);
    }), "barrier (ncclAllReduce)");
    synchronize();
  }

  void abort(const std::string& reason) override { group_->abort(reason); }

  // Polls the stream rather than blocking in cudaStreamSynchronize, so an abort (which makes
  // NCCL's kernels return) or an async error ends the wait with an exception.
  void synchronize() override {
    for (;;) {
      const cudaError_t state = cudaStreamQuery(stream_);
      if (state == cudaSuccess) break;
      RS_CHECK(state == cudaErrorNotReady, "rank {}: the device failed: {}", rank_, cudaGetErrorString(state));
      (void)cudaGetLastError();  // "not ready" is an answer, not a fault: keep it out of the next launch check
      RS_CHECK(!group_->aborted, "tensor-parallel group aborted: {}", group_->abort_reason);
      if (std::string error = async_error(); !error.empty()) RS_FAIL("rank {}: NCCL error: {}", rank_, error);
      std::this_thread::yield();
    }
    RS_CHECK(!group_->aborted, "tensor-parallel group aborted: {}", group_->abort_reason);
  }

  AllReduceCounts all_reduce_counts() const override { return counts_; }

  // NCCL picks its algorithm and protocol by message size (LL for small messages, LL128 and
  // Simple as they grow), and connects each lazily: all-reduces of 4 KiB, 256 KiB and 8 MiB
  // and one all-gather reach the ones decode and prefill steps use. Not counted in counts_.
  void warm_up() override {
    constexpr int64_t kLargest = 4 << 20;  // bf16 values: 8 MiB
    Tensor scratch = backend_.allocate_persistent(DType::BF16, {kLargest});
    for (int64_t count : {int64_t{2} << 10, int64_t{128} << 10, kLargest})
      check_enqueued(*group_, slot(), group_->use(slot(), [&](ncclComm_t nccl) {
        return ncclAllReduce(scratch.data, scratch.data, static_cast<size_t>(count), ncclBfloat16, ncclSum, nccl,
                             stream_);
      }), "warm-up ncclAllReduce");
    const int64_t per_rank = 1024;
    check_enqueued(*group_, slot(), group_->use(slot(), [&](ncclComm_t nccl) {
      return ncclAllGather(scratch.data, static_cast<std::byte*>(scratch.data) + per_rank * dtype_size(DType::BF16),
                           static_cast<size_t>(per_rank), ncclBfloat16, nccl, stream_);
    }), "warm-up ncclAllGather");
    synchronize();
  }

  std::string async_error() const override {
    ncclResult_t state = ncclSuccess;
    {
      std::shared_lock lock(group_->in_use);
      if (group_->aborted) return {};  // aborted comms report errors of their own making (and may be freed)
      // A busy comm is in a call of its rank's thread, which sees the error itself.
      std::unique_lock comm_lock(group_->comm_locks[slot()], std::try_to_lock);
      if (!comm_lock.owns_lock()) return {};
      if (ncclCommGetAsyncError(group_->comms[slot()], &state) != ncclSuccess) return {};
    }
    if (state == ncclSuccess || state == ncclInProgress) return {};
    return ncclGetErrorString(state);
  }

 private:
  size_t slot() const { return static_cast<size_t>(rank_); }  // this rank's comm in the group
  void check_usable(const char* op, const Tensor& tensor) const {
    RS_CHECK(tensor.device == backend_.device(), "{}: the tensor is not on rank {}'s device", op, rank_);
    nccl_type(op, tensor.dtype);
  }

  std::shared_ptr<NcclGroup> group_;
  int rank_;
  Backend& backend_;
  cudaStream_t stream_;
  Tensor barrier_word_;  // [1] f32 the barrier all-reduces
  AllReduceCounts counts_;  // this rank's, written by its own thread only
};

}  // namespace

bool nccl_available() { return true; }

std::vector<std::unique_ptr<Communicator>> make_nccl_communicators(const std::vector<Backend*>& backends,
                                                                  const NcclOptions& options) {
  const int world = static_cast<int>(backends.size());
  RS_CHECK(world >= 1, "NCCL: no ranks");
  for (Backend* backend : backends)
    RS_CHECK(backend && backend->device().kind == DeviceKind::Cuda && backend->native_stream(),
             "NCCL communicators need CUDA backends");
  ncclUniqueId id;
  check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  auto group = std::make_shared<NcclGroup>(static_cast<size_t>(world));
  int previous_device = 0;
  check_cuda(cudaGetDevice(&previous_device), "cudaGetDevice");
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  check_nccl(ncclGroupStart(), "ncclGroupStart");
  for (int rank = 0; rank < world; ++rank) {
    check_cuda(cudaSetDevice(backends[static_cast<size_t>(rank)]->device().index), "cudaSetDevice");
    const ncclResult_t init = ncclCommInitRankConfig(&group->comms[static_cast<size_t>(rank)], world, id, rank, &config);
    RS_CHECK(init == ncclSuccess || init == ncclInProgress, "ncclCommInitRankConfig (rank {}): {}", rank,
             ncclGetErrorString(init));
  }
  const ncclResult_t result = ncclGroupEnd();
  cudaSetDevice(previous_device);
  if (result != ncclInProgress) check_nccl(result, "ncclCommInitRankConfig (group)");
  const auto deadline = std::chrono::steady_clock::now() + options.init_timeout;
  for (size_t rank = 0; rank < group->comms.size(); ++rank) group->wait_ready(rank, "NCCL initialisation", deadline);
  // NCCL_P2P_DISABLE=1 (set by the user, or by serve's advice after the peer-copy probe
  // failed or hung): the one-shot kernel would spin on peer flags over the same broken path.
  const char* p2p_disable = std::getenv("NCCL_P2P_DISABLE");
  const bool peer_copies_off = p2p_disable && std::string_view(p2p_disable) == "1";
  if (peer_copies_off && world > 1) {
    spdlog::info("all-reduce: NCCL for every size (NCCL_P2P_DISABLE=1: no peer copies on this box)");
  } else if (options.custom_all_reduce && options.custom_all_reduce_max_bytes > 0 && world > 1) {
    std::vector<int> devices;
    for (Backend* backend : backends) devices.push_back(backend->device().index);
    CustomAllReduceOptions custom;
    custom.crossover_bytes = options.custom_all_reduce_max_bytes;
    std::string why_not;
    group->custom = make_custom_all_reduce(devices, &why_not, custom);  // null where peer access is missing
    if (group->custom)
      spdlog::info("all-reduce: one-shot peer kernel up to {} KiB, NCCL above", custom.crossover_bytes >> 10);
    else
      spdlog::info("all-reduce: NCCL for every size ({})", why_not);
  } else if (world > 1) {
    spdlog::info("all-reduce: NCCL for every size (the one-shot peer kernel is off)");
  }
  // Each communicator allocates its barrier word with cudaMalloc on the current device:
  // the rank's, not the caller's.
  std::vector<std::unique_ptr<Communicator>> communicators;
  for (int rank = 0; rank < world; ++rank) {
    check_cuda(cudaSetDevice(backends[static_cast<size_t>(rank)]->device().index), "cudaSetDevice");
    communicators.push_back(std::make_unique<NcclCommunicator>(group, rank, *backends[static_cast<size_t>(rank)]));
  }
  check_cuda(cudaSetDevice(previous_device), "cudaSetDevice");
  return communicators;
}

}  // namespace rackserve
