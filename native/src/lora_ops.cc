// `dropout_linear`: linear(dropout(x.to(w.dtype), p), w) as one autograd node — the first half of
// a LoRA branch, lora_A(dropout(x)) (PEFT). The composition saves, for every adapted linear, the
// dropped input and a float32 noise tensor; this node saves x itself (which the frozen base linear
// keeps anyway, so no new memory) and the mask packed 8 elements a byte, and recomputes the
// dropped input in backward.
// The noise is drawn exactly as at::dropout draws it (a float bernoulli_ of x's shape, divided by
// 1 − p) and the dropped input is recomputed with the same ops, so values and gradients are
// bit-identical to the composition.
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <stdexcept>

#include "bind.h"

namespace embtune {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The value a kept element is scaled by: what `mask.to(dtype).div_(1 - p)` gives for a 1, computed
// by that very op so that the fused loops below multiply by the same bits.
double KeepScale(double p, at::ScalarType dtype) { return at::ones({1}, at::TensorOptions().dtype(dtype)).div_(1 - p).item<double>(); }

// Draws the dropout noise exactly as at::dropout does (a float bernoulli_(1 − p) of the input's
// shape), then in one pass writes input·noise and, when `bits` is given, the mask packed 8
// elements a byte (element i in bit i % 8 of byte i / 8). input: contiguous, weight's dtype.
at::Tensor DropAndPack(const at::Tensor& input, double p, at::Tensor* bits) {
  const at::Tensor noise = at::empty_like(input).bernoulli_(1 - p);
  at::Tensor dropped = at::empty_like(input);
  const int64_t n = input.numel();
  if (bits != nullptr) *bits = at::empty({(n + 7) / 8}, input.options().dtype(at::kByte));
  uint8_t* packed = bits != nullptr ? bits->data_ptr<uint8_t>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(), "dropout_linear", [&] {
    const auto scale = static_cast<scalar_t>(KeepScale(p, input.scalar_type()));
    const scalar_t* in = input.data_ptr<scalar_t>();
    const scalar_t* keep = noise.data_ptr<scalar_t>();
    scalar_t* out = dropped.data_ptr<scalar_t>();
    at::parallel_for(0, (n + 7) / 8, 1 << 12, [&](int64_t begin, int64_t end) {
      for (int64_t byte = begin; byte < end; ++byte) {
        uint8_t word = 0;
        for (int64_t i = byte * 8, j = 0; j < 8 && i < n; ++i, ++j) {
          const bool kept = keep[i] != scalar_t(0);
          out[i] = in[i] * (kept ? scale : scalar_t(0));
          word |= static_cast<uint8_t>(kept) << j;
        }
        if (packed != nullptr) packed[byte] = word;
      }
    });
  });
  return dropped;
}

// t · noise in place, the noise rebuilt from the packed mask (t contiguous, any floating dtype).
void ApplyMask(at::Tensor& t, const at::Tensor& bits, double p) {
  const int64_t n = t.numel();
  const uint8_t* packed = bits.data_ptr<uint8_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, t.scalar_type(), "dropout_linear_backward", [&] {
    const auto scale = static_cast<scalar_t>(KeepScale(p, t.scalar_type()));
    scalar_t* data = t.data_ptr<scalar_t>();
    at::parallel_for(0, n, 1 << 15, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) data[i] = data[i] * (((packed[i >> 3] >> (i & 7)) & 1) ? scale : scalar_t(0));
    });
  });
}

struct DropoutLinear : public torch::autograd::Function<DropoutLinear> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double p) {
    at::Tensor bits;
    const at::Tensor dropped = DropAndPack(x.to(weight.scalar_type()).contiguous(), p, &bits);
    ctx->saved_data["mask"] = bits;
    ctx->saved_data["p"] = p;
    ctx->save_for_backward({x, weight});
    return at::linear(dropped, weight);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor bits = ctx->saved_data["mask"].toTensor();
    const double p = ctx->saved_data["p"].toDouble();
    const at::Tensor& grad = grads[0];
    at::Tensor grad_x, grad_weight;
    if (ctx->needs_input_grad(0)) {
      at::Tensor g = at::matmul(grad, weight).contiguous();
      ApplyMask(g, bits, p);
      grad_x = g.to(x.scalar_type());
    }
    if (ctx->needs_input_grad(1)) {
      // A copy of x in the weight's dtype (a new tensor either way: the mask is applied in place).
      at::Tensor dropped = x.scalar_type() == weight.scalar_type() ? x.contiguous().clone() : x.to(weight.scalar_type()).contiguous();
      ApplyMask(dropped, bits, p);
      grad_weight = at::mm(grad.reshape({-1, grad.size(-1)}).t(), dropped.reshape({-1, dropped.size(-1)}));
    }
    return {grad_x, grad_weight, at::Tensor()};
  }
};

}  // namespace

void RegisterLoraOps(Napi::Env env, Napi::Object exports) {
  Def(env, exports, "dropoutLinear", [](Args& a) {
    const double p = a.f64(2);
    if (!(p > 0 && p < 1)) throw std::invalid_argument("p must be in (0, 1); without dropout use linear");
    const at::Tensor& x = a.tensor(0);
    const at::Tensor& weight = a.tensor(1);
    if (x.device() != weight.device()) throw std::invalid_argument("x (" + x.device().str() + ") and weight (" + weight.device().str() + ") must be on one device");
    if (!at::isFloatingType(weight.scalar_type())) throw std::invalid_argument(std::string("weight must be a floating-point tensor, got ") + c10::toString(weight.scalar_type()));
    if (weight.dim() != 2 || x.dim() < 1 || x.size(-1) != weight.size(1)) throw std::invalid_argument("x [..., in] and weight [out, in] do not fit");
    // The fused loops read host memory: elsewhere (CUDA) the composition, whose kernels draw on
    // that device's generator (gradient checkpointing replays CPU draws only there).
    if (!x.device().is_cpu()) return at::linear(at::dropout(x.to(weight.scalar_type()), p, true), weight);
    // No graph to record (no_grad, or nothing that trains): the same draws and values, no mask kept.
    if (!c10::GradMode::is_enabled() || !(x.requires_grad() || weight.requires_grad())) {
      return at::linear(DropAndPack(x.to(weight.scalar_type()).contiguous(), p, nullptr), weight);
    }
    return DropoutLinear::apply(x, weight, p);
  });
}

}  // namespace embtune
