#include "models/layers/vocab_parallel.h"

#include "models/layers/tensor_parallel.h"

namespace rackserve {

namespace {
bool split(const Communicator* tp) { return tp != nullptr && tp->world_size() > 1; }
}  // namespace

VocabParallelEmbedding::VocabParallelEmbedding(WeightLoader& loader, const std::string& name, int64_t vocab,
                                               int64_t hidden, Communicator* tp)
    : local_vocab_(per_rank("vocab_size", vocab, loader.shard())),
      first_token_(local_vocab_ * loader.shard().rank),
      tp_(tp) {
  table_ = loader.load(name, {vocab, hidden}, WeightRole::Embedding, {TpSplit::Vocab, split(tp)});
}

void VocabParallelEmbedding::localize(std::vector<int32_t>& token_ids) const {
  if (!split(tp_)) return;
  for (int32_t& id : token_ids)
    id = id >= first_token_ && id < first_token_ + local_vocab_ ? static_cast<int32_t>(id - first_token_)
                                                                : static_cast<int32_t>(local_vocab_);
}

Tensor VocabParallelEmbedding::forward(Backend& backend, const Tensor& local_token_ids) const {
  Tensor hidden = backend.embedding(table_, local_token_ids);
  all_reduce_partial_sums(tp_, hidden);
  return hidden;
}

VocabParallelLmHead::VocabParallelLmHead(WeightLoader& loader, const std::string& name, int64_t vocab, int64_t hidden,
                                         Communicator* tp)
    : weight_(loader.load(name, {vocab, hidden}, WeightRole::Linear, {TpSplit::Vocab})), vocab_(vocab), tp_(tp) {}

VocabParallelLmHead::VocabParallelLmHead(const VocabParallelEmbedding& tied, int64_t vocab, Communicator* tp)
    : weight_(tied.rows()), vocab_(vocab), tp_(tp) {}

Tensor VocabParallelLmHead::forward(Backend& backend, const Tensor& x) const {
  Tensor local = backend.linear_f32(x, weight_);
  if (!split(tp_)) return local;
  Tensor logits = backend.allocate_step(DType::F32, {x.dim(0), vocab_});
  tp_->all_gather_last_dim(local, logits);
  return logits;
}

}  // namespace rackserve
