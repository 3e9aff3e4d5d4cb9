// The GPU model tests' e4m3 near-tie replay (support/quantization_replay.h): which differences
// between the oracle's quantization and a recorded one it adopts, and which it reports, so the
// GPU tests that rely on it can fail. Values are chosen in units of the e4m3 grid: with a row
// amax of 448 the scale is 1, and 96 / 104 and 1.5 / 1.625 are neighbouring codes.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "support/quantization_replay.h"

namespace rackserve {
namespace {

using testing::QuantizationStats;
using testing::RecordedQuantization;

class QuantizationReplayTest : public ::testing::Test {
 protected:
  // The oracle's quantization of one row per entry of `rows`, in `layout`.
  QuantizedActivation quantize(const std::vector<std::vector<float>>& rows, const Fp8ActivationLayout& layout) {
    const int64_t width = static_cast<int64_t>(rows.front().size());
    input_ = backend_->allocate_step(DType::F32, {static_cast<int64_t>(rows.size()), width});
    for (size_t r = 0; r < rows.size(); ++r)
      for (int64_t c = 0; c < width; ++c) input_.as<float>()[r * width + c] = rows[r][c];
    return backend_->quantize_fp8(input_, layout);
  }
  // The recording of `own` as the CUDA backend would download it.
  static RecordedQuantization copy_of(const QuantizedActivation& own) {
    RecordedQuantization recorded;
    for (int64_t i = 0; i < own.values.numel(); ++i)
      recorded.values.push_back(e4m3_to_f32(own.values.as<uint8_t>()[i]));
    recorded.scales.assign(own.scales.as<float>(), own.scales.as<float>() + own.scales.numel());
    return recorded;
  }
  QuantizationStats reconcile(QuantizedActivation& own, const RecordedQuantization& recorded) {
    QuantizationStats stats;
    testing::reconcile_quantization(input_.as<float>(), own, recorded, 0, stats);
    return stats;
  }
  float value(const QuantizedActivation& own, int64_t i) const {
    return e4m3_to_f32(own.values.as<uint8_t>()[i]) * own.scales.as<float>()[0];
  }

  std::unique_ptr<Backend> backend_ = make_cpu_backend(1);
  Tensor input_;
  const Fp8ActivationLayout channel_{Fp8Scaling::Channel, 0};
};

TEST_F(QuantizationReplayTest, AnIdenticalRecordingChangesNothing) {
  QuantizedActivation own = quantize({{448.0f, 100.0f, 1.5625f, -3.0f}}, channel_);
  ASSERT_EQ(own.scales.as<float>()[0], 1.0f);
  ASSERT_EQ(value(own, 1), 96.0f);  // 100 is the midpoint of 96 and 104: ties to even
  const QuantizationStats stats = reconcile(own, copy_of(own));
  EXPECT_EQ(stats.elements, 4);
  EXPECT_EQ(stats.code_flips + stats.scale_flips + stats.mismatches, 0);
}

TEST_F(QuantizationReplayTest, AStepAtAMidpointIsAdopted) {
  QuantizedActivation own = quantize({{448.0f, 100.0f, 1.5625f, -3.0f}}, channel_);
  RecordedQuantization recorded = copy_of(own);
  recorded.values[1] = 104.0f;
  const QuantizationStats stats = reconcile(own, recorded);
  EXPECT_EQ(stats.code_flips, 1);
  EXPECT_EQ(stats.mismatches, 0);
  EXPECT_EQ(value(own, 1), 104.0f);
}

TEST_F(QuantizationReplayTest, AStepAwayFromTheMidpointIsAMismatch) {
  QuantizedActivation own = quantize({{448.0f, 97.0f, 1.5625f, -3.0f}}, channel_);
  ASSERT_EQ(value(own, 1), 96.0f);
  RecordedQuantization recorded = copy_of(own);
  recorded.values[1] = 104.0f;  // 97 is 3 from the midpoint 100: beyond 97/128 + 448/1024
  const QuantizationStats stats = reconcile(own, recorded);
  EXPECT_EQ(stats.mismatches, 1);
  EXPECT_EQ(stats.code_flips, 0);
  EXPECT_EQ(value(own, 1), 96.0f);  // kept
  EXPECT_NE(stats.first_mismatch.find("column 1: input 97"), std::string::npos) << stats.first_mismatch;
}

TEST_F(QuantizationReplayTest, TwoStepsAreAMismatchEvenAtTheMidpoint) {
  QuantizedActivation own = quantize({{448.0f, 100.0f, 1.5625f, -3.0f}}, channel_);
  RecordedQuantization recorded = copy_of(own);
  recorded.values[1] = 112.0f;
  EXPECT_EQ(reconcile(own, recorded).mismatches, 1);
}

TEST_F(QuantizationReplayTest, ScalesApartByABf16UlpAreAdoptedAndByMoreAreNot) {
  QuantizedActivation own = quantize({{448.0f, 100.0f, 1.5625f, -3.0f}}, channel_);
  RecordedQuantization close = copy_of(own);
  close.scales[0] = 1.0f + 1.0f / 256;
  const QuantizationStats adopted = reconcile(own, close);
  EXPECT_EQ(adopted.scale_flips, 1);
  EXPECT_EQ(adopted.mismatches, 0);
  EXPECT_EQ(own.scales.as<float>()[0], close.scales[0]);

  QuantizedActivation other = quantize({{448.0f, 100.0f, 1.5625f, -3.0f}}, channel_);
  RecordedQuantization far = copy_of(other);
  far.scales[0] = 1.0f + 1.0f / 64;
  EXPECT_GE(reconcile(other, far).mismatches, 1);
  EXPECT_EQ(other.scales.as<float>()[0], 1.0f);  // kept
}

TEST_F(QuantizationReplayTest, BlockGroupsAreReconciledOneByOne) {
  std::vector<float> row(256, 1.0f);
  row[0] = 448.0f;    // group 0's amax: scale 1
  row[128] = 448.0f;  // group 1's
  row[200] = 97.0f;
  QuantizedActivation own = quantize({row}, Fp8ActivationLayout{Fp8Scaling::Block, 128});
  RecordedQuantization recorded = copy_of(own);
  recorded.values[200] = 104.0f;
  const QuantizationStats stats = reconcile(own, recorded);
  EXPECT_EQ(stats.elements, 256);
  EXPECT_EQ(stats.mismatches, 1);
  EXPECT_NE(stats.first_mismatch.find("group 1"), std::string::npos) << stats.first_mismatch;
}

}  // namespace
}  // namespace rackserve
