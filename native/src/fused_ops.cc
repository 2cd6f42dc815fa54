// Fused autograd nodes for the decoder's memory-bound parts. Each computes its forward with the
// same ATen ops, in the same order, as the composition it replaces (so forward values are
// bit-identical), and differs only in what it keeps for backward:
//
//  - rms_norm (transformers' Qwen3RMSNorm): the composition keeps a float32 copy of x and the
//    normalised x as well as x; this node keeps x and the per-row 1/rms, and recomputes the rest.
//  - attention (eager: softmax(q·kᵀ·scale + mask)·v, softmax in float32 for half types, GQA):
//    the composition keeps the [B, N, L, L] probabilities (twice for half types: float32 and
//    cast) and k, v repeated to every query head; this node keeps q and the un-repeated k, v,
//    and recomputes the probabilities in backward — one more q·kᵀ, under 1% of a layer's work.
//    Past a memory budget for the scores (EMBTUNE_ATTENTION_CHUNK_MIB, default 256 MiB) it runs
//    over blocks of query rows, forward and backward: each row's softmax is its own, so the
//    output is the same, and the [B, N, L, L] scores never exist at once — a 4,000-token step
//    then needs B·N·chunk·L floats instead of B·N·L² (k and v gradients are summed over the
//    blocks, a different summation order: equal to float32 rounding, not bit for bit).
//  - silu(gate) ⊙ up (the SwiGLU MLP): the composition keeps silu(gate) beside gate and up.
//
// Together they cut a Qwen3 training layer's saved activations by about a third (bench/train),
// which is what lets a 28-layer step run without gradient checkpointing on a 24 GiB machine.
// Gradients follow the composition's autograd formulas (derivatives.yaml); float64 finite
// differences check them (test/torch/fused.test.ts).
#include <ATen/ExpandUtils.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <vector>

#include "bind.h"
#include "fused_ops.h"

namespace embtune {

at::Tensor RepeatKv(const at::Tensor& x, int64_t n) {
  if (n == 1) return x;
  const auto s = x.sizes();
  return x.unsqueeze(2).expand({s[0], s[1], n, s[2], s[3]}).reshape({s[0], s[1] * n, s[2], s[3]});
}

void CheckGqaHeads(int64_t q_heads, int64_t kv_heads) {
  if (kv_heads == 0 || q_heads % kv_heads != 0) {
    throw std::invalid_argument("the query heads (" + std::to_string(q_heads) + ") must be a multiple of the key/value heads (" + std::to_string(kv_heads) + ")");
  }
}

void CheckAttentionHeads(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) throw std::invalid_argument("q, k and v must be [B, heads, L, D]");
  if (k.size(1) != v.size(1)) throw std::invalid_argument("k and v must have as many heads (" + std::to_string(k.size(1)) + " and " + std::to_string(v.size(1)) + ")");
  CheckGqaHeads(q.size(1), k.size(1));
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool IsHalf(at::ScalarType t) { return t == at::kBFloat16 || t == at::kHalf; }

// ------------------------------------------------------------------------------- rms_norm

// 1/sqrt(mean(h², -1) + eps) of h = x (float32 for half types): the composition's own ops.
at::Tensor InverseRms(const at::Tensor& h, double eps) { return at::rsqrt(h.pow(2).mean(-1, true) + eps); }

struct RmsNorm : public torch::autograd::Function<RmsNorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps) {
    const bool half = IsHalf(x.scalar_type());
    const at::Tensor h = half ? x.to(at::kFloat) : x;
    const at::Tensor rstd = InverseRms(h, eps);
    const at::Tensor normed = h * rstd;
    ctx->save_for_backward({x, weight, rstd});
    return weight * (half ? normed.to(x.scalar_type()) : normed);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor& rstd = saved[2];
    const at::Tensor& grad = grads[0];
    const bool half = IsHalf(x.scalar_type());
    const at::Tensor h = half ? x.to(at::kFloat) : x;
    at::Tensor grad_x, grad_weight;
    if (ctx->needs_input_grad(1)) {
      const at::Tensor normed = half ? (h * rstd).to(x.scalar_type()) : h * rstd;
      grad_weight = at::sum_to(grad * normed, weight.sizes()).to(weight.scalar_type());
    }
    if (ctx->needs_input_grad(0)) {
      // normed = h·r with r = (mean(h²) + eps)^-½, so ∂r/∂h_j = −r³·h_j/n and
      // ∂L/∂h = r·g − h·r³·mean(g·h).
      const at::Tensor g = (grad * weight).to(h.scalar_type());
      const at::Tensor mean_gh = (g * h).mean(-1, true);
      grad_x = (rstd * g - h * rstd.pow(3) * mean_gh).to(x.scalar_type());
    }
    return {grad_x, grad_weight, at::Tensor()};
  }
};

// ------------------------------------------------------------------------------- attention

// The inverse of RepeatKv for gradients: the n query heads' contributions summed per kv head.
at::Tensor SumRepeats(const at::Tensor& g, int64_t n) {
  if (n == 1) return g;
  const auto s = g.sizes();
  return g.view({s[0], s[1] / n, n, s[2], s[3]}).sum(2);
}

// scores = q·kᵀ·scale, masked (bool: "may attend"; float: added), as the composition has them.
at::Tensor Scores(const at::Tensor& q, const at::Tensor& k_rep, const at::Tensor& mask, double scale) {
  at::Tensor scores = at::matmul(q, k_rep.transpose(-2, -1)) * scale;
  if (!mask.defined()) return scores;
  if (mask.scalar_type() == at::kBool) return scores.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
  return scores + mask;
}

// softmax over keys: in float32 for half types (transformers' eager attention), as `probs`.
at::Tensor Softmax(const at::Tensor& scores) {
  return IsHalf(scores.scalar_type()) ? at::softmax(scores, -1, at::kFloat) : at::softmax(scores, -1);
}

// Bytes the scores of one block of query rows may take (EMBTUNE_ATTENTION_CHUNK_MIB, read once).
int64_t AttentionChunkBytes() {
  static const int64_t bytes = [] {
    const char* env = std::getenv("EMBTUNE_ATTENTION_CHUNK_MIB");
    const double mib = env ? std::atof(env) : 256.0;
    return static_cast<int64_t>((mib > 0 ? mib : 256.0) * 1024 * 1024);
  }();
  return bytes;
}

// Query rows per block: all of them when the float32 scores fit the budget (the exact path).
int64_t AttentionRowsPerBlock(const at::Tensor& q, const at::Tensor& k) {
  const int64_t rows = q.size(2);
  const int64_t per_row = q.size(0) * q.size(1) * k.size(2) * static_cast<int64_t>(sizeof(float));
  if (per_row * rows <= AttentionChunkBytes()) return rows;
  return std::max<int64_t>(1, AttentionChunkBytes() / std::max<int64_t>(per_row, 1));
}

// The mask's rows [start, start + n) when it has a row per query, else the mask (broadcast).
at::Tensor MaskRows(const at::Tensor& mask, int64_t rows, int64_t start, int64_t n) {
  if (!mask.defined() || mask.dim() < 2 || mask.size(-2) != rows || (n == rows && start == 0)) return mask;
  return mask.narrow(-2, start, n);
}

struct Attention : public torch::autograd::Function<Attention> {
  // The mask is optional (an undefined tensor cannot be an autograd input); absent, it is saved as None.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const c10::optional<at::Tensor>& maybe_mask,
                            double scale) {
    const at::Tensor mask = maybe_mask ? *maybe_mask : at::Tensor();
    const int64_t n_rep = q.size(1) / k.size(1);
    const int64_t rows = q.size(2);
    const int64_t block = AttentionRowsPerBlock(q, k);
    const at::Tensor k_rep = RepeatKv(k, n_rep);
    const at::Tensor v_rep = RepeatKv(v, n_rep);
    std::vector<at::Tensor> outs;
    for (int64_t start = 0; start < rows; start += block) {
      const int64_t n = std::min(block, rows - start);
      const at::Tensor q_rows = n == rows ? q : q.narrow(2, start, n);
      at::Tensor probs;
      {
        at::Tensor scores = Scores(q_rows, k_rep, MaskRows(mask, rows, start, n), scale);
        probs = Softmax(scores).to(q.scalar_type());
      }  // scores freed before the second product, as Python's refcounting would
      outs.push_back(at::matmul(probs, v_rep));
    }
    const at::Tensor out = outs.size() == 1 ? outs[0] : at::cat(outs, 2);
    ctx->save_for_backward({q, k, v});
    ctx->saved_data["mask"] = maybe_mask;
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& q = saved[0];
    const at::Tensor& k = saved[1];
    const at::Tensor& v = saved[2];
    const c10::IValue& saved_mask = ctx->saved_data["mask"];
    const at::Tensor mask = saved_mask.isNone() ? at::Tensor() : saved_mask.toTensor();
    const double scale = ctx->saved_data["scale"].toDouble();
    const at::Tensor& grad = grads[0];
    const int64_t n_rep = q.size(1) / k.size(1);
    const at::Tensor k_rep = RepeatKv(k, n_rep);
    const at::Tensor v_rep = RepeatKv(v, n_rep);
    const int64_t rows = q.size(2);
    const int64_t block = AttentionRowsPerBlock(q, k);
    const bool mask_trains = mask.defined() && mask.scalar_type() != at::kBool && ctx->needs_input_grad(3);
    std::vector<at::Tensor> grad_q_blocks;
    std::vector<at::Tensor> grad_mask_blocks;
    at::Tensor grad_k_rep, grad_v_rep, grad_mask;
    for (int64_t start = 0; start < rows; start += block) {
      const int64_t n = std::min(block, rows - start);
      const bool whole = n == rows;
      const at::Tensor q_rows = whole ? q : q.narrow(2, start, n);
      const at::Tensor g_rows = whole ? grad : grad.narrow(2, start, n);
      const at::Tensor mask_rows = MaskRows(mask, rows, start, n);
      // Recompute the probabilities exactly as forward did (same ops, same values).
      at::Tensor grad_scores;
      {
        const at::Tensor scores = Scores(q_rows, k_rep, mask_rows, scale);
        const at::Tensor p = Softmax(scores);  // float32 for half types
        const at::Tensor probs = p.to(q.scalar_type());
        if (ctx->needs_input_grad(2)) {
          const at::Tensor gv = at::matmul(probs.transpose(-2, -1), g_rows);
          grad_v_rep = grad_v_rep.defined() ? grad_v_rep.add_(gv) : gv;
        }
        const at::Tensor grad_probs = at::matmul(g_rows, v_rep.transpose(-2, -1)).to(p.scalar_type());
        // softmax(x, dtype=float32) is x.to(float32) then softmax on the CPU: its backward is
        // softmax's in float32, cast back.
        grad_scores = at::_softmax_backward_data(grad_probs, p, -1, p.scalar_type()).to(scores.scalar_type());
      }
      if (mask_rows.defined() && mask_rows.scalar_type() == at::kBool) grad_scores = grad_scores.masked_fill(mask_rows.logical_not(), 0);
      else if (mask_trains) {
        // An additive mask that trains: its gradient is the scores' summed to its shape, by block
        // when it has a row per query, else over every block.
        const at::Tensor gm = at::sum_to(grad_scores, mask_rows.sizes());
        if (mask.size(-2) == rows && !whole) grad_mask_blocks.push_back(gm);
        else grad_mask = grad_mask.defined() ? grad_mask.add_(gm) : gm;
      }
      grad_scores = grad_scores * scale;
      if (ctx->needs_input_grad(0)) grad_q_blocks.push_back(at::matmul(grad_scores, k_rep));
      if (ctx->needs_input_grad(1)) {
        const at::Tensor gk = at::matmul(grad_scores.transpose(-2, -1), q_rows);
        grad_k_rep = grad_k_rep.defined() ? grad_k_rep.add_(gk) : gk;
      }
    }
    if (!grad_mask_blocks.empty()) grad_mask = at::cat(grad_mask_blocks, -2);
    at::Tensor grad_q, grad_k, grad_v;
    if (!grad_q_blocks.empty()) grad_q = grad_q_blocks.size() == 1 ? grad_q_blocks[0] : at::cat(grad_q_blocks, 2);
    if (grad_k_rep.defined()) grad_k = SumRepeats(grad_k_rep, n_rep);
    if (grad_v_rep.defined()) grad_v = SumRepeats(grad_v_rep, n_rep);
    return {grad_q, grad_k, grad_v, grad_mask, at::Tensor()};
  }
};

// ------------------------------------------------------------------------------- silu(gate) ⊙ up

struct SiluMul : public torch::autograd::Function<SiluMul> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up) {
    ctx->save_for_backward({gate, up});
    return at::silu(gate) * up;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& gate = saved[0];
    const at::Tensor& up = saved[1];
    const at::Tensor& grad = grads[0];
    at::Tensor grad_gate, grad_up;
    if (ctx->needs_input_grad(1)) grad_up = at::sum_to(grad * at::silu(gate), up.sizes());
    if (ctx->needs_input_grad(0)) grad_gate = at::silu_backward(at::sum_to(grad * up, gate.sizes()), gate);
    return {grad_gate, grad_up};
  }
};

}  // namespace

at::Tensor AttentionRecomputed(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::optional<at::Tensor>& mask, double scale) {
  CheckAttentionHeads(q, k, v);
  return Attention::apply(q, k, v, mask ? c10::optional<at::Tensor>(*mask) : c10::nullopt, scale);
}

void RegisterFusedOps(Napi::Env env, Napi::Object exports) {
  // RMSNorm as transformers' Qwen3RMSNorm (REFERENCE §6.2): in float32 for half types,
  // x · rsqrt(mean(x², -1) + eps), cast back, then times weight.
  Def(env, exports, "rmsNorm", [](Args& a) { return RmsNorm::apply(a.tensor(0), a.tensor(1), a.f64(2)); });
  Def(env, exports, "siluMul", [](Args& a) { return SiluMul::apply(a.tensor(0), a.tensor(1)); });
}

}  // namespace embtune
