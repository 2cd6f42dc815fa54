// Attention for inference on the CPU in float32 (attention_inference.cc).
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace embtune {

// Sets whether this thread is in inference mode (torch.inferenceMode in JS); returns the previous setting.
bool SetInferenceMode(bool on);
// Whether AttentionInference serves this call: inference mode, float32 CPU q, k, v (4-D) and mask, heads of up to 64, no gradient wanted.
bool AttentionInferenceApplies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::optional<at::Tensor>& mask);
// softmax(q·kᵀ·scale + mask)·v with k, v [B, Nkv, Lk, D] serving Nq/Nkv query heads each; the
// additive float mask broadcasts to [B, Nq, Lq, Lk]. Equal to the composition to float32 rounding.
at::Tensor AttentionInference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::optional<at::Tensor>& mask, double scale);

}  // namespace embtune
