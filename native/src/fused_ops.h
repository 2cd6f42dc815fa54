// Fused autograd nodes (fused_ops.cc) that other bindings call.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace embtune {

// softmax(q·kᵀ·scale + mask)·v with k, v [B, Nkv, L, D] serving Nq/Nkv query heads each, as one
// autograd node that keeps q, k, v (not the probabilities) and recomputes the rest in backward.
at::Tensor AttentionRecomputed(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::optional<at::Tensor>& mask, double scale);

}  // namespace embtune
