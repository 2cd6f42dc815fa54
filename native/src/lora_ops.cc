// `dropout_linear`: linear(dropout(x.to(w.dtype), p), w) as one autograd node — the first half of
// a LoRA branch, lora_A(dropout(x)) (PEFT). The composition saves, for every adapted linear, the
// dropped input and a float32 noise tensor; this node saves x itself (which the frozen base linear
// keeps anyway, so no new memory) and a bool mask, and recomputes the dropped input in backward.
// The noise is drawn exactly as at::dropout draws it (a float bernoulli_ of x's shape, divided by
// 1 − p) and the dropped input is recomputed with the same ops, so values and gradients are
// bit-identical to the composition.
#include <torch/csrc/autograd/custom_function.h>

#include <stdexcept>

#include "bind.h"

namespace embtune {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor Noise(const at::Tensor& mask, double p, at::ScalarType dtype) { return mask.to(dtype).div_(1 - p); }

struct DropoutLinear : public torch::autograd::Function<DropoutLinear> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double p) {
    const at::Tensor input = x.to(weight.scalar_type());
    at::Tensor noise = at::empty_like(input).bernoulli_(1 - p);
    const at::Tensor mask = noise.to(at::kBool);
    noise.div_(1 - p);
    const at::Tensor out = at::linear(input * noise, weight);
    ctx->save_for_backward({x, weight, mask});
    ctx->saved_data["p"] = p;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor& mask = saved[2];
    const double p = ctx->saved_data["p"].toDouble();
    const at::Tensor& grad = grads[0];
    const at::Tensor noise = Noise(mask, p, weight.scalar_type());
    at::Tensor grad_x, grad_weight;
    if (ctx->needs_input_grad(0)) grad_x = (at::matmul(grad, weight) * noise).to(x.scalar_type());
    if (ctx->needs_input_grad(1)) {
      const at::Tensor dropped = x.to(weight.scalar_type()) * noise;
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
    return DropoutLinear::apply(a.tensor(0), a.tensor(1), p);
  });
}

}  // namespace embtune
