// `dropout_linear`: linear(dropout(x.to(w.dtype), p), w) as one autograd node — the first half of
// a LoRA branch, lora_A(dropout(x)) (PEFT). The composition saves, for every adapted linear, the
// dropped input and a float32 noise tensor; this node saves x itself (which the frozen base linear
// keeps anyway, so no new memory) and the mask packed 8 elements a byte, and recomputes the
// dropped input in backward.
// The noise is drawn exactly as at::dropout draws it (a float bernoulli_ of x's shape, divided by
// 1 − p) and the dropped input is recomputed with the same ops, so values and gradients are
// bit-identical to the composition.
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <stdexcept>

#include "bind.h"

namespace embtune {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor Noise(const at::Tensor& mask, double p, at::ScalarType dtype) { return mask.to(dtype).div_(1 - p); }

// A bool tensor as bits, element i in bit i % 8 of byte i / 8 (uint8 [ceil(n / 8)]).
at::Tensor PackBits(const at::Tensor& mask) {
  const at::Tensor flat = mask.contiguous().view({-1});
  const int64_t n = flat.numel();
  at::Tensor packed = at::zeros({(n + 7) / 8}, flat.options().dtype(at::kByte));
  const bool* in = flat.data_ptr<bool>();
  uint8_t* out = packed.data_ptr<uint8_t>();
  at::parallel_for(0, packed.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t byte = begin; byte < end; ++byte) {
      uint8_t bits = 0;
      const int64_t first = byte * 8;
      for (int64_t j = 0; j < 8 && first + j < n; ++j) bits |= static_cast<uint8_t>(in[first + j]) << j;
      out[byte] = bits;
    }
  });
  return packed;
}

at::Tensor UnpackBits(const at::Tensor& packed, at::IntArrayRef shape) {
  at::Tensor mask = at::empty(shape, packed.options().dtype(at::kBool));
  const int64_t n = mask.numel();
  const uint8_t* in = packed.data_ptr<uint8_t>();
  bool* out = mask.data_ptr<bool>();
  at::parallel_for(0, n, 1 << 17, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = (in[i >> 3] >> (i & 7)) & 1;
  });
  return mask;
}

struct DropoutLinear : public torch::autograd::Function<DropoutLinear> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double p) {
    const at::Tensor input = x.to(weight.scalar_type());
    at::Tensor noise = at::empty_like(input).bernoulli_(1 - p);
    ctx->saved_data["mask"] = PackBits(noise.to(at::kBool));
    noise.div_(1 - p);
    const at::Tensor out = at::linear(input * noise, weight);
    ctx->save_for_backward({x, weight});
    ctx->saved_data["p"] = p;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor mask = UnpackBits(ctx->saved_data["mask"].toTensor(), x.sizes());
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
