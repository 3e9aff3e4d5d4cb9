// In-process collectives: ranks publish their tensors, meet at a barrier, each computes the
// result from all of them, and meet again before anyone may reuse its tensor.
#include "parallel/in_process_communicator.h"

#include <condition_variable>
#include <cstring>
#include <mutex>

#include "core/error.h"

namespace rackserve {

namespace {

// The state every rank of a group shares.
struct GroupState {
  explicit GroupState(int world) : world(world), published(static_cast<size_t>(world)) {}

  // Returns when all ranks have arrived; throws once the group is aborted.
  void arrive_and_wait() {
    std::unique_lock lock(mutex);
    RS_CHECK(!aborted, "tensor-parallel group aborted: {}", abort_reason);
    const uint64_t generation_now = generation;
    if (++arrived == world) {
      arrived = 0;
      ++generation;
      changed.notify_all();
      return;
    }
    changed.wait(lock, [&] { return generation != generation_now || aborted; });
    RS_CHECK(generation != generation_now, "tensor-parallel group aborted: {}", abort_reason);
  }

  void abort(const std::string& reason) {
    std::lock_guard lock(mutex);
    if (!aborted) abort_reason = reason;
    aborted = true;
    changed.notify_all();
  }

  const int world;
  std::mutex mutex;
  std::condition_variable changed;
  int arrived = 0;
  uint64_t generation = 0;
  bool aborted = false;
  std::string abort_reason;
  std::vector<Tensor> published;  // rank r's tensor of the collective in progress
};

float element(const Tensor& tensor, int64_t i) {
  return tensor.dtype == DType::F32 ? tensor.as<float>()[i] : bf16_to_f32(tensor.as<uint16_t>()[i]);
}

void store(const Tensor& tensor, int64_t i, float value) {
  if (tensor.dtype == DType::F32)
    tensor.as<float>()[i] = value;
  else
    tensor.as<uint16_t>()[i] = f32_to_bf16(value);
}

class InProcessCommunicator final : public Communicator {
 public:
  InProcessCommunicator(std::shared_ptr<GroupState> group, int rank) : group_(std::move(group)), rank_(rank) {}

  int rank() const override { return rank_; }
  int world_size() const override { return group_->world; }

  void all_reduce_sum(const Tensor& tensor) override {
    check_operand("all_reduce_sum", tensor);
    publish_and_check("all_reduce_sum", tensor);
    const int64_t count = tensor.numel();
    sum_.resize(static_cast<size_t>(count));
    const std::vector<Tensor>& all = group_->published;
    for (int64_t i = 0; i < count; ++i) {
      float sum = element(all[0], i);
      for (int r = 1; r < group_->world; ++r) sum += element(all[static_cast<size_t>(r)], i);
      sum_[static_cast<size_t>(i)] = sum;
    }
    group_->arrive_and_wait();  // nobody reads another rank's tensor after this
    for (int64_t i = 0; i < count; ++i) store(tensor, i, sum_[static_cast<size_t>(i)]);
  }

  void all_gather_last_dim(const Tensor& in, const Tensor& out) override {
    check_operand("all_gather_last_dim", in);
    check_operand("all_gather_last_dim", out);
    const int world = group_->world;
    RS_CHECK(in.rank() == 2 && out.rank() == 2 && out.dim(0) == in.dim(0) && out.dim(1) == in.dim(1) * world &&
                 out.dtype == in.dtype && out.data != in.data,
             "all_gather_last_dim: in {} {} and out {} {} are not [rows, n] and [rows, {} * n] of one dtype",
             dtype_name(in.dtype), shape_string(in.shape), dtype_name(out.dtype), shape_string(out.shape), world);
    publish_and_check("all_gather_last_dim", in);
    const int64_t rows = in.dim(0), n = in.dim(1);
    const size_t element_bytes = dtype_size(in.dtype);
    for (int r = 0; r < world; ++r) {
      const auto* source = static_cast<const std::byte*>(group_->published[static_cast<size_t>(r)].data);
      auto* target = static_cast<std::byte*>(out.data);
      for (int64_t row = 0; row < rows; ++row)
        std::memcpy(target + static_cast<size_t>(row * out.dim(1) + r * n) * element_bytes,
                    source + static_cast<size_t>(row * n) * element_bytes, static_cast<size_t>(n) * element_bytes);
    }
    group_->arrive_and_wait();
  }

  void barrier() override { group_->arrive_and_wait(); }
  void abort(const std::string& reason) override { group_->abort(reason); }

 private:
  void check_operand(const char* op, const Tensor& tensor) const {
    RS_CHECK(tensor.device.kind == DeviceKind::Host, "{}: the in-process communicator takes host tensors", op);
    RS_CHECK(tensor.dtype == DType::F32 || tensor.dtype == DType::BF16, "{}: dtype {} (F32 or BF16 only)", op,
             dtype_name(tensor.dtype));
  }

  // Publishes `tensor`, waits for every rank, and checks that they all passed the same
  // shape and dtype (every rank checks, so all of them throw together on a mismatch).
  void publish_and_check(const char* op, const Tensor& tensor) {
    group_->published[static_cast<size_t>(rank_)] = tensor;
    group_->arrive_and_wait();
    const Tensor& first = group_->published[0];
    for (int r = 1; r < group_->world; ++r) {
      const Tensor& other = group_->published[static_cast<size_t>(r)];
      RS_CHECK(other.shape == first.shape && other.dtype == first.dtype,
               "{}: rank 0 passed {} {}, rank {} passed {} {}", op, dtype_name(first.dtype), shape_string(first.shape),
               r, dtype_name(other.dtype), shape_string(other.shape));
    }
  }

  std::shared_ptr<GroupState> group_;
  int rank_;
  std::vector<float> sum_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_in_process_communicators(int world_size) {
  RS_CHECK(world_size >= 1, "a communicator group needs at least one rank, got {}", world_size);
  auto group = std::make_shared<GroupState>(world_size);
  std::vector<std::unique_ptr<Communicator>> communicators;
  for (int rank = 0; rank < world_size; ++rank)
    communicators.push_back(std::make_unique<InProcessCommunicator>(group, rank));
  return communicators;
}

}  // namespace rackserve
