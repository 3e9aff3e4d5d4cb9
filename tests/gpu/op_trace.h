// Tracing<Backend>: records on the host the output of every op a model step
// issues, so two backends running the same model code can be compared op by op;
// the first op where they part names the kernel (or the oracle rule) at fault,
// which the logits alone cannot. Off by default (`tracing`): recording
// downloads every output, which also blocks each op. Only the model's own calls
// are recorded: an op a backend implements with other ops (the CPU oracle's
// rms_norm_fp8 is rms_norm then quantize_fp8) records once, under its own name.
// Quantized activations are recorded dequantized (value x its group's scale),
// so a differing e4m3 code shows as a relative difference of at least 2^-4 in
// that element.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "support/call_depth.h"
#include "support/similarity.h"

namespace rackserve::testing {

struct TracedOp {
  std::string label;
  std::vector<float> values;
};

template <class Base>
class Tracing : public Base {
 public:
  using Base::Base;

  Tensor rms_norm(const Tensor &x, const Tensor &weight, float eps) override {
    return record("rms_norm", nested([&] { return Base::rms_norm(x, weight, eps); }));
  }
  Tensor add_rms_norm(const Tensor &residual, const Tensor &x, const Tensor &weight, float eps) override {
    return record("add_rms_norm", nested([&] { return Base::add_rms_norm(residual, x, weight, eps); }));
  }
  Tensor linear(const Tensor &x, const Tensor &weight) override {
    return record("linear", nested([&] { return Base::linear(x, weight); }));
  }
  Tensor linear_f32(const Tensor &x, const Tensor &weight) override {
    return record("linear_f32", nested([&] { return Base::linear_f32(x, weight); }));
  }
  using Base::linear_fp8;
  Tensor linear_fp8(const QuantizedActivation &x, const QuantizedWeight &w) override {
    return record("linear_fp8", nested([&] { return Base::linear_fp8(x, w); }));
  }
  std::pair<Tensor, Tensor> linear_split(const Tensor &x, const Tensor &weight, int64_t first_rows) override {
    auto out = nested([&] { return Base::linear_split(x, weight, first_rows); });
    record("linear_split (first)", out.first);
    record("linear_split (second)", out.second);
    return out;
  }
  std::pair<Tensor, Tensor> linear_fp8_split(const QuantizedActivation &x, const QuantizedWeight &w,
                                             int64_t first_rows) override {
    auto out = nested([&] { return Base::linear_fp8_split(x, w, first_rows); });
    record("linear_fp8_split (first)", out.first);
    record("linear_fp8_split (second)", out.second);
    return out;
  }
  Tensor silu_mul(const Tensor &gate_up) override {
    return record("silu_mul", nested([&] { return Base::silu_mul(gate_up); }));
  }
  QuantizedActivation quantize_fp8(const Tensor &x, const Fp8ActivationLayout &layout) override {
    return record("quantize_fp8", nested([&] { return Base::quantize_fp8(x, layout); }));
  }
  NormedActivation rms_norm_fp8(const Tensor &x, const Tensor &weight, float eps,
                                const Fp8ActivationLayout &layout) override {
    NormedActivation out = nested([&] { return Base::rms_norm_fp8(x, weight, eps, layout); });
    record("rms_norm_fp8 (bf16)", out.normed);
    record("rms_norm_fp8 (e4m3)", out.fp8);
    return out;
  }
  NormedActivation add_rms_norm_fp8(const Tensor &residual, const Tensor &x, const Tensor &weight, float eps,
                                    const Fp8ActivationLayout &layout) override {
    NormedActivation out = nested([&] { return Base::add_rms_norm_fp8(residual, x, weight, eps, layout); });
    record("add_rms_norm_fp8 (bf16)", out.normed);
    record("add_rms_norm_fp8 (e4m3)", out.fp8);
    return out;
  }
  QuantizedActivation silu_mul_fp8(const Tensor &gate_up, const Fp8ActivationLayout &layout) override {
    return record("silu_mul_fp8", nested([&] { return Base::silu_mul_fp8(gate_up, layout); }));
  }
  Tensor mla_attention(const MlaAttention &args) override {
    return record("mla_attention", nested([&] { return Base::mla_attention(args); }));
  }
  Tensor moe_experts(const Tensor &x, const MoeRouting &routing, const ExpertWeights &experts) override {
    return record("moe_experts", nested([&] { return Base::moe_experts(x, routing, experts); }));
  }
  Tensor moe_experts(const QuantizedActivation &x, const MoeRouting &routing, const ExpertWeights &experts) override {
    return record("moe_experts (e4m3 x)", nested([&] { return Base::moe_experts(x, routing, experts); }));
  }

  bool tracing = false;
  std::vector<TracedOp> trace;

 private:
  int depth_ = 0;  // > 0 inside an op of the base backend

 private:
  // Runs one op of the base backend with recording off for the ops it calls in
  // turn.
  template <class Op>
  auto nested(const Op &op) {
    return run_nested(depth_, op);
  }
  bool recording() const { return tracing && depth_ == 0; }

  Tensor record(const char *label, Tensor out) {
    if (recording()) trace.push_back({label, this->download_f32(out)});
    return out;
  }
  QuantizedActivation record(const char *label, QuantizedActivation out) {
    if (!recording()) return out;
    std::vector<float> values = this->download_f32(out.values);
    const std::vector<float> scales = this->download_f32(out.scales);
    const int64_t width = out.width();
    const bool block = out.layout.scaling == Fp8Scaling::Block;
    for (size_t i = 0; i < values.size(); ++i) {
      const int64_t row = static_cast<int64_t>(i) / width, column = static_cast<int64_t>(i) % width;
      values[i] *= scales[block ? row * (width / out.layout.group) + column / out.layout.group : row];
    }
    trace.push_back({label, std::move(values)});
    return out;
  }
};

// One line per op of `a` and `b` in issue order (stopping where the labels
// part): the cosine and the fraction of elements whose relative difference
// exceeds `relative` (NaN counts as differing in both). Returns the index of
// the first op whose cosine is below `min_cosine`, or -1.
inline int64_t print_trace_comparison(const std::vector<TracedOp> &a, const std::vector<TracedOp> &b, double min_cosine,
                                      double relative = 1.0 / 64) {
  int64_t first_below = -1;
  const size_t count = std::min(a.size(), b.size());
  std::printf(
      "  op trace (%zu vs %zu ops): index, op, elements, cosine, "
      "fraction differing by > %.3g relative\n",
      a.size(), b.size(), relative);
  for (size_t i = 0; i < count; ++i) {
    if (a[i].label != b[i].label || a[i].values.size() != b[i].values.size()) {
      std::printf("  %4zu the traces part: %s [%zu] vs %s [%zu]\n", i, a[i].label.c_str(), a[i].values.size(),
                  b[i].label.c_str(), b[i].values.size());
      return first_below < 0 ? static_cast<int64_t>(i) : first_below;
    }
    const std::vector<float> &x = a[i].values;
    const std::vector<float> &y = b[i].values;
    size_t differing = 0;
    for (size_t k = 0; k < x.size(); ++k) {
      const double scale = std::max(std::fabs(double(y[k])), 1e-6);
      if (!(std::fabs(double(x[k]) - y[k]) <= relative * scale)) ++differing;
    }
    const double value = cosine(x, y);
    if (first_below < 0 && !(value >= min_cosine)) first_below = static_cast<int64_t>(i);
    std::printf("  %4zu %-30s %8zu %.7f %.5f%s\n", i, a[i].label.c_str(), x.size(), value,
                x.empty() ? 0.0 : double(differing) / x.size(), value >= min_cosine ? "" : "  <");
  }
  return first_below;
}

}  // namespace rackserve::testing
