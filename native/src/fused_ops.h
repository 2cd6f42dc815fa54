// Fused autograd nodes (fused_ops.cc) that other bindings call.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace embtune {

// [B, Nkv, L, D] → [B, Nkv·n, L, D], each kv head serving n consecutive query heads (repeat_kv).
at::Tensor RepeatKv(const at::Tensor& x, int64_t n);
// Throws unless `q_heads` query heads can share `kv_heads` key/value heads (a positive divisor).
void CheckGqaHeads(int64_t q_heads, int64_t kv_heads);
// Throws unless q, k, v are 4-D ([B, heads, L, D]), k and v have as many heads, and those serve q's heads.
void CheckAttentionHeads(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// softmax(q·kᵀ·scale + mask)·v with k, v [B, Nkv, L, D] serving Nq/Nkv query heads each, as one
// autograd node that keeps q, k, v (not the probabilities) and recomputes the rest in backward.
at::Tensor AttentionRecomputed(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::optional<at::Tensor>& mask, double scale);

}  // namespace embtune
