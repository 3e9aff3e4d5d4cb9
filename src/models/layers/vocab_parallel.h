// The vocabulary-parallel ends of a model. Rank r of N holds vocabulary rows
// [r * V/N, (r + 1) * V/N) of the embedding and of the output head.
// - Embedding: the table slice plus one zero row; token ids are mapped on the host to the
//   slice (localize: other ranks' ids to the zero row), every rank gathers its rows and an
//   all-reduce adds them, so each token gets exactly its one real row.
// - Output head: each rank computes its logits columns, an all-gather along the last
//   dimension concatenates them into [rows, V] on every rank (rank 0's are sampled).
// On one rank both are the plain embedding and linear.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/layers/weight_loader.h"
#include "parallel/communicator.h"

namespace rackserve {

class VocabParallelEmbedding {
 public:
  // `name` is the table's tensor, [vocab, hidden] in the checkpoint.
  VocabParallelEmbedding(WeightLoader& loader, const std::string& name, int64_t vocab, int64_t hidden,
                         Communicator* tp = nullptr);

  // Rewrites checkpoint token ids (in [0, vocab)) into rows of this rank's table.
  void localize(std::vector<int32_t>& token_ids) const;
  // Localized token ids [T] -> [T, hidden], the same on every rank.
  Tensor forward(Backend& backend, const Tensor& local_token_ids) const;
  // This rank's [vocab / N, hidden] rows (without the zero row): a tied output head's weight.
  Tensor rows() const { return table_.rows(0, local_vocab_); }

 private:
  Tensor table_;  // [local_vocab (+ 1 zero row when split), hidden]
  int64_t local_vocab_, first_token_;
  Communicator* tp_;
};

class VocabParallelLmHead {
 public:
  // Loads `name` ([vocab, hidden]) split by vocabulary rows.
  VocabParallelLmHead(WeightLoader& loader, const std::string& name, int64_t vocab, int64_t hidden,
                      Communicator* tp = nullptr);
  // Shares a tied embedding's rows.
  VocabParallelLmHead(const VocabParallelEmbedding& tied, int64_t vocab, Communicator* tp = nullptr);

  // x [R, hidden] -> logits [R, vocab] f32 (a step tensor), the same on every rank.
  Tensor forward(Backend& backend, const Tensor& x) const;

 private:
  Tensor weight_;  // [vocab / N, hidden]
  int64_t vocab_;
  Communicator* tp_;
};

}  // namespace rackserve
