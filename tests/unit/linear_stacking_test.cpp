// pieces_stack (models/layers/weight_source.h): when two or more checkpoint modules can be
// loaded as one stacked weight (q_a over kv_a; gate over up). The loader relies on it to fuse
// only what its FP8 scale tables can represent: one format, the same block sizes, and with
// block scales every piece but the last filling whole scale blocks on this rank.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "models/layers/weight_source.h"
#include "weights/quant_config.h"

namespace rackserve {
namespace {

LinearScheme dense() { return LinearScheme{}; }
LinearScheme block(int64_t out, int64_t in) {
  LinearScheme scheme;
  scheme.format = WeightFormat::Fp8Block;
  scheme.block_out = out;
  scheme.block_in = in;
  return scheme;
}
LinearScheme of_format(WeightFormat format) {
  LinearScheme scheme;
  scheme.format = format;
  return scheme;
}

LinearRequest request(std::vector<int64_t> rows, int64_t cols, TpSplit split = TpSplit::Replicated) {
  LinearRequest r;
  for (size_t i = 0; i < rows.size(); ++i) r.modules.push_back("m" + std::to_string(i));
  r.rows = std::move(rows);
  r.cols = cols;
  r.split = split;
  return r;
}

TEST(PiecesStack, OneFormatAndWholeBlocksStack) {
  const ShardSpec one{};
  EXPECT_TRUE(pieces_stack(request({1536, 576}, 7168), {dense(), dense()}, one));
  // DeepSeek-V3's q_a (1536 = 12 blocks) over kv_a (576: the last piece may end mid-block).
  EXPECT_TRUE(pieces_stack(request({1536, 576}, 7168), {block(128, 128), block(128, 128)}, one));
  EXPECT_TRUE(pieces_stack(request({200, 72}, 256), {of_format(WeightFormat::Fp8Channel),
                                                     of_format(WeightFormat::Fp8Channel)}, one));
}

TEST(PiecesStack, WhatTheScaleTablesCannotHoldDoesNot) {
  const ShardSpec one{};
  // A first piece ending mid-block would shift every later piece's block scales.
  EXPECT_FALSE(pieces_stack(request({192, 192}, 7168), {block(128, 128), block(128, 128)}, one));
  EXPECT_FALSE(pieces_stack(request({1536, 576}, 7168), {block(128, 128), dense()}, one));
  EXPECT_FALSE(pieces_stack(request({1536, 576}, 7168), {block(128, 128), block(64, 128)}, one));
  // INT4 scales run along the inputs: rows stack when the groups agree.
  LinearScheme groups_of_32 = of_format(WeightFormat::Int4Group), groups_of_128 = groups_of_32;
  groups_of_32.group_size = 32;
  groups_of_128.group_size = 128;
  EXPECT_TRUE(pieces_stack(request({1536, 576}, 7168), {groups_of_32, groups_of_32}, one));
  EXPECT_FALSE(pieces_stack(request({1536, 576}, 7168), {groups_of_32, groups_of_128}, one));
  EXPECT_FALSE(pieces_stack(request({1536, 576}, 7168), {block(128, 128)}, one));  // a scheme per module
  // A static activation scale (input_scale) quantizes one module's input: no stacking.
  LinearScheme static_scale = of_format(WeightFormat::Fp8Channel);
  static_scale.static_input_scale = true;
  EXPECT_FALSE(pieces_stack(request({1536, 576}, 7168), {of_format(WeightFormat::Fp8Channel), static_scale}, one));
}

TEST(PiecesStack, TensorParallelSlicesCountPerRank) {
  // gate / up of 2048 rows each, column-split over 4 ranks: 512 rows a rank, 4 blocks.
  EXPECT_TRUE(pieces_stack(request({2048, 2048}, 7168, TpSplit::Column), {block(128, 128), block(128, 128)},
                           ShardSpec{1, 4}));
  // 1536 / 8 = 192 rows a rank: the first piece ends mid-block on every rank.
  EXPECT_FALSE(pieces_stack(request({1536, 1536}, 7168, TpSplit::Column), {block(128, 128), block(128, 128)},
                            ShardSpec{3, 8}));
}

}  // namespace
}  // namespace rackserve
