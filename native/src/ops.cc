// The tensor ops, one line each where possible, named as in PyTorch. Only bindings live here:
// any composition (RMSNorm, normalize, optimizers) is written in TypeScript over these.
#include <torch/version.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "bind.h"
#include "attention_inference.h"
#include "fused_ops.h"

namespace embtune {
namespace {

using Opt = std::optional<at::Tensor>;
c10::optional<at::Tensor> C10(const Opt& t) { return t ? c10::optional<at::Tensor>(*t) : c10::nullopt; }
template <typename T>
c10::optional<T> C10(const std::optional<T>& v) {
  return v ? c10::optional<T>(*v) : c10::nullopt;
}

at::TensorOptions Options(const Args& a, size_t dtype_at, size_t device_at, at::ScalarType fallback = at::kFloat) {
  at::TensorOptions o = at::TensorOptions().dtype(a.has(dtype_at) ? a.dtype(dtype_at) : fallback);
  if (a.has(device_at)) o = o.device(a.device(device_at));
  return o;
}

int64_t Reduction(const std::string& name) {
  if (name == "none") return 0;
  if (name == "mean") return 1;
  if (name == "sum") return 2;
  throw std::invalid_argument("reduction must be 'none', 'mean' or 'sum', got '" + name + "'");
}

// Binary ops come in PyTorch's two overloads: `name` (Tensor, Tensor) and `nameScalar`
// (Tensor, number). Handles are numbers too, so the caller picks the overload.
#define BINARY(name, expr_tt, expr_ts)                                                              \
  Def(env, exports, name, [](Args& a) -> at::Tensor {                                               \
    const at::Tensor& x = a.tensor(0);                                                              \
    const at::Tensor& y = a.tensor(1);                                                              \
    return expr_tt;                                                                                 \
  });                                                                                               \
  Def(env, exports, name "Scalar", [](Args& a) -> at::Tensor {                                      \
    const at::Tensor& x = a.tensor(0);                                                              \
    at::Scalar y = a.scalar(1);                                                                     \
    return expr_ts;                                                                                 \
  })
#define UNARY(name, expr) Def(env, exports, name, [](Args& a) -> at::Tensor { const at::Tensor& x = a.tensor(0); return expr; })
// In-place ops return nothing; the TS method returns `this`, as `x.mul_(2)` returns x.
#define INPLACE(name, stmt)                                   \
  Def(env, exports, name, [](Args& a) -> Napi::Value {        \
    at::Tensor x = a.tensor(0);                               \
    stmt;                                                     \
    return a.env().Undefined();                               \
  })

// k, v with fewer heads than q (GQA) are repeated to q's heads first (repeat_kv), except on the
// 1.13 path, whose fused node (fused_ops.cc) repeats them itself and keeps them un-repeated.
at::Tensor RepeatHeads(const at::Tensor& x, int64_t heads) {
  CheckGqaHeads(heads, x.size(1));
  return RepeatKv(x, heads / x.size(1));
}

at::Tensor ScaledDotProductAttention(const at::Tensor& q, const at::Tensor& k_in, const at::Tensor& v_in, const Opt& mask, double dropout_p,
                                     bool is_causal, std::optional<double> scale, bool enable_gqa) {
  if (enable_gqa && q.dim() != 4) throw std::invalid_argument("enable_gqa needs q, k, v of [B, heads, L, D]");
#if TORCH_VERSION_MAJOR >= 2
  const at::Tensor k = enable_gqa ? RepeatHeads(k_in, q.size(1)) : k_in;
  const at::Tensor v = enable_gqa ? RepeatHeads(v_in, q.size(1)) : v_in;
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 1
  return at::scaled_dot_product_attention(q, k, v, C10(mask), dropout_p, is_causal, C10(scale));
#else
  // 2.0 has no `scale` argument: fold a custom scale into q (q·s·kᵀ/√d·√d = s·q·kᵀ).
  if (scale) {
    double d = static_cast<double>(q.size(-1));
    return at::scaled_dot_product_attention(q * (*scale * std::sqrt(d)), k, v, C10(mask), dropout_p, is_causal);
  }
  return at::scaled_dot_product_attention(q, k, v, C10(mask), dropout_p, is_causal);
#endif
#else
  // libtorch 1.13 has no fused kernel: the math of torch's reference implementation
  // (softmax(q·kᵀ·scale + mask)·v), with a boolean mask meaning "may attend".
  double s = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  // Inference in float32 on the CPU: one pass per query row (attention_inference.cc).
  if (dropout_p == 0 && !is_causal && AttentionInferenceApplies(q, k_in, v_in, mask)) return AttentionInference(q, k_in, v_in, mask, s);
  if (dropout_p == 0 && !is_causal && q.dim() == 4) {
    // One autograd node that recomputes the probabilities in backward (fused_ops.cc).
    return AttentionRecomputed(q, k_in, v_in, mask, s);
  }
  const at::Tensor k = enable_gqa ? RepeatHeads(k_in, q.size(1)) : k_in;
  const at::Tensor v = enable_gqa ? RepeatHeads(v_in, q.size(1)) : v_in;
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * s;
  if (is_causal) {
    at::Tensor keep = at::ones({q.size(-2), k.size(-2)}, q.options().dtype(at::kBool)).tril();
    scores = scores.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
  }
  if (mask) {
    if (mask->scalar_type() == at::kBool) {
      scores = scores.masked_fill(mask->logical_not(), -std::numeric_limits<double>::infinity());
    } else {
      scores = scores + *mask;
    }
  }
  // Softmax in float32 and back for half types, as transformers' eager attention does.
  bool half = q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf;
  at::Tensor probs = half ? at::softmax(scores, -1, at::kFloat).to(q.scalar_type()) : at::softmax(scores, -1);
  scores.reset();  // freed before the second product, as Python's refcounting would
  if (dropout_p > 0) probs = at::dropout(probs, dropout_p, true);
  return at::matmul(probs, v);
#endif
}

}  // namespace

void RegisterOps(Napi::Env env, Napi::Object exports) {
  // ---------------------------------------------------------------- creation
  Def(env, exports, "empty", [](Args& a) { return at::empty(a.intList(0), Options(a, 1, 2)); });
  Def(env, exports, "zeros", [](Args& a) { return at::zeros(a.intList(0), Options(a, 1, 2)); });
  Def(env, exports, "ones", [](Args& a) { return at::ones(a.intList(0), Options(a, 1, 2)); });
  Def(env, exports, "full", [](Args& a) { return at::full(a.intList(0), a.scalar(1), Options(a, 2, 3)); });
  Def(env, exports, "arange", [](Args& a) { return at::arange(a.scalar(0), a.scalar(1), a.scalar(2), Options(a, 3, 4, at::kLong)); });
  Def(env, exports, "randn", [](Args& a) { return at::randn(a.intList(0), Options(a, 1, 2)); });
  Def(env, exports, "rand", [](Args& a) { return at::rand(a.intList(0), Options(a, 1, 2)); });
  Def(env, exports, "randint", [](Args& a) { return at::randint(a.i64(0), a.i64(1), a.intList(2), Options(a, 3, 4, at::kLong)); });
  Def(env, exports, "randperm", [](Args& a) { return at::randperm(a.i64(0), Options(a, 1, 2, at::kLong)); });
  Def(env, exports, "eye", [](Args& a) { return at::eye(a.i64(0), Options(a, 1, 2)); });
  UNARY("zerosLike", at::zeros_like(x));
  UNARY("onesLike", at::ones_like(x));

  // ---------------------------------------------------------------- metadata and conversion
  Def(env, exports, "shape", [](Args& a) -> Napi::Value {
    const at::Tensor& t = a.tensor(0);
    Napi::Array out = Napi::Array::New(a.env(), t.dim());
    for (int64_t i = 0; i < t.dim(); ++i) out.Set(static_cast<uint32_t>(i), Napi::Number::New(a.env(), static_cast<double>(t.size(i))));
    return out;
  });
  Def(env, exports, "dtype", [](Args& a) { return static_cast<int64_t>(a.tensor(0).scalar_type()); });
  Def(env, exports, "device", [](Args& a) { return a.tensor(0).device().str(); });
  Def(env, exports, "numel", [](Args& a) { return static_cast<int64_t>(a.tensor(0).numel()); });
  Def(env, exports, "isContiguous", [](Args& a) { return a.tensor(0).is_contiguous(); });
  Def(env, exports, "requiresGrad", [](Args& a) { return a.tensor(0).requires_grad(); });
  Def(env, exports, "isLeaf", [](Args& a) { return a.tensor(0).is_leaf(); });
  Def(env, exports, "item", [](Args& a) -> Napi::Value {
    const at::Tensor& t = a.tensor(0);
    if (t.numel() != 1) throw std::invalid_argument("item() needs a tensor with one element, got shape " + c10::str(t.sizes()));
    if (t.scalar_type() == at::kBool) return Napi::Boolean::New(a.env(), t.item<bool>());
    return Napi::Number::New(a.env(), t.item<double>());
  });
  Def(env, exports, "to", [](Args& a) {
    const at::Tensor& x = a.tensor(0);
    at::TensorOptions o = x.options().dtype(a.has(1) ? a.dtype(1) : x.scalar_type());
    if (a.has(2)) o = o.device(a.device(2));
    return x.to(o, a.boolean(3, false), a.boolean(4, false));
  });
  UNARY("clone", x.clone());
  UNARY("detach", x.detach());
  UNARY("contiguous", x.contiguous());

  // ---------------------------------------------------------------- elementwise
  BINARY("add", at::add(x, y, a.has(2) ? a.scalar(2) : at::Scalar(1)), at::add(x, y, a.has(2) ? a.scalar(2) : at::Scalar(1)));
  BINARY("sub", at::sub(x, y, a.has(2) ? a.scalar(2) : at::Scalar(1)), at::sub(x, y, a.has(2) ? a.scalar(2) : at::Scalar(1)));
  BINARY("mul", at::mul(x, y), at::mul(x, y));
  BINARY("div", at::div(x, y), at::div(x, y));
  BINARY("pow", at::pow(x, y), at::pow(x, y));
  BINARY("eq", at::eq(x, y), at::eq(x, y));
  BINARY("ne", at::ne(x, y), at::ne(x, y));
  BINARY("lt", at::lt(x, y), at::lt(x, y));
  BINARY("le", at::le(x, y), at::le(x, y));
  BINARY("gt", at::gt(x, y), at::gt(x, y));
  BINARY("ge", at::ge(x, y), at::ge(x, y));
  BINARY("maximum", at::maximum(x, y), at::clamp_min(x, y));
  BINARY("minimum", at::minimum(x, y), at::clamp_max(x, y));
  Def(env, exports, "logicalAnd", [](Args& a) { return at::logical_and(a.tensor(0), a.tensor(1)); });
  Def(env, exports, "logicalOr", [](Args& a) { return at::logical_or(a.tensor(0), a.tensor(1)); });
  UNARY("logicalNot", at::logical_not(x));
  UNARY("neg", at::neg(x));
  UNARY("abs", at::abs(x));
  UNARY("sign", at::sign(x));
  UNARY("sqrt", at::sqrt(x));
  UNARY("rsqrt", at::rsqrt(x));
  UNARY("square", at::square(x));
  UNARY("reciprocal", at::reciprocal(x));
  UNARY("exp", at::exp(x));
  UNARY("log", at::log(x));
  UNARY("log1p", at::log1p(x));
  UNARY("erf", at::erf(x));
  UNARY("tanh", at::tanh(x));
  UNARY("sigmoid", at::sigmoid(x));
  UNARY("silu", at::silu(x));
  UNARY("relu", at::relu(x));
  UNARY("cos", at::cos(x));
  UNARY("sin", at::sin(x));
  Def(env, exports, "gelu", [](Args& a) { return at::gelu(a.tensor(0), a.has(1) ? a.str(1) : "none"); });
  Def(env, exports, "clamp", [](Args& a) { return at::clamp(a.tensor(0), C10(a.optScalar(1)), C10(a.optScalar(2))); });
  // where(cond, input, other, inputIsTensor, otherIsTensor)
  Def(env, exports, "where", [](Args& a) -> at::Tensor {
    const at::Tensor& cond = a.tensor(0);
    bool input_tensor = a.boolean(3, true);
    bool other_tensor = a.boolean(4, true);
    if (input_tensor && other_tensor) return at::where(cond, a.tensor(1), a.tensor(2));
    if (input_tensor) return at::where(cond, a.tensor(1), a.scalar(2));
    if (other_tensor) return at::where(cond, a.scalar(1), a.tensor(2));
    return at::where(cond, a.scalar(1), a.scalar(2));
  });
  Def(env, exports, "maskedFill", [](Args& a) { return at::masked_fill(a.tensor(0), a.tensor(1), a.tensor(2)); });
  Def(env, exports, "maskedFillScalar", [](Args& a) { return at::masked_fill(a.tensor(0), a.tensor(1), a.scalar(2)); });
  Def(env, exports, "tril", [](Args& a) { return at::tril(a.tensor(0), a.has(1) ? a.i64(1) : 0); });
  Def(env, exports, "triu", [](Args& a) { return at::triu(a.tensor(0), a.has(1) ? a.i64(1) : 0); });

  // ---------------------------------------------------------------- reductions
  // (x, dims | undefined, keepdim, dtype | undefined); no dims reduces over everything.
  Def(env, exports, "sum", [](Args& a) {
    const at::Tensor& x = a.tensor(0);
    if (!a.has(1)) return at::sum(x, C10(a.optDtype(3)));
    return at::sum(x, a.intList(1), a.boolean(2, false), C10(a.optDtype(3)));
  });
  Def(env, exports, "mean", [](Args& a) {
    const at::Tensor& x = a.tensor(0);
    if (!a.has(1)) return at::mean(x, C10(a.optDtype(3)));
    return at::mean(x, a.intList(1), a.boolean(2, false), C10(a.optDtype(3)));
  });
  UNARY("amax", at::max(x));
  UNARY("amin", at::min(x));
  Def(env, exports, "maxDim", [](Args& a) { return at::max(a.tensor(0), a.i64(1), a.boolean(2, false)); });
  Def(env, exports, "minDim", [](Args& a) { return at::min(a.tensor(0), a.i64(1), a.boolean(2, false)); });
  Def(env, exports, "argmax", [](Args& a) { return at::argmax(a.tensor(0), C10(a.optI64(1)), a.boolean(2, false)); });
  Def(env, exports, "argmin", [](Args& a) { return at::argmin(a.tensor(0), C10(a.optI64(1)), a.boolean(2, false)); });
  Def(env, exports, "norm", [](Args& a) {
    const at::Tensor& x = a.tensor(0);
    at::Scalar p = a.has(1) ? a.scalar(1) : at::Scalar(2.0);
    if (!a.has(2)) return at::norm(x, p);
    return at::norm(x, p, a.intList(2), a.boolean(3, false));
  });
  Def(env, exports, "logsumexp", [](Args& a) { return at::logsumexp(a.tensor(0), a.intList(1), a.boolean(2, false)); });
  Def(env, exports, "cumsum", [](Args& a) { return at::cumsum(a.tensor(0), a.i64(1), C10(a.optDtype(2))); });
  UNARY("all", at::all(x));
  UNARY("any", at::any(x));
  Def(env, exports, "softmax", [](Args& a) { return at::softmax(a.tensor(0), a.i64(1), C10(a.optDtype(2))); });
  Def(env, exports, "logSoftmax", [](Args& a) { return at::log_softmax(a.tensor(0), a.i64(1), C10(a.optDtype(2))); });
  Def(env, exports, "topk", [](Args& a) { return at::topk(a.tensor(0), a.i64(1), a.has(2) ? a.i64(2) : -1, a.boolean(3, true), a.boolean(4, true)); });
  Def(env, exports, "sort", [](Args& a) {
    return at::sort(a.tensor(0), c10::optional<bool>(a.boolean(3, false)), a.has(1) ? a.i64(1) : -1, a.boolean(2, false));
  });
  Def(env, exports, "argsort", [](Args& a) { return std::get<1>(at::sort(a.tensor(0), c10::optional<bool>(a.boolean(3, false)), a.has(1) ? a.i64(1) : -1, a.boolean(2, false))); });

  // ---------------------------------------------------------------- linear algebra and nn
  Def(env, exports, "matmul", [](Args& a) { return at::matmul(a.tensor(0), a.tensor(1)); });
  Def(env, exports, "mm", [](Args& a) { return at::mm(a.tensor(0), a.tensor(1)); });
  Def(env, exports, "bmm", [](Args& a) { return at::bmm(a.tensor(0), a.tensor(1)); });
  Def(env, exports, "linear", [](Args& a) { return at::linear(a.tensor(0), a.tensor(1), C10(a.optTensor(2))); });
  Def(env, exports, "layerNorm", [](Args& a) {
    return at::layer_norm(a.tensor(0), a.intList(1), C10(a.optTensor(2)), C10(a.optTensor(3)), a.has(4) ? a.f64(4) : 1e-5);
  });
  // Half-split rotary embedding: x·cos + rotate_half(x)·sin, rotate_half(x) = cat(−x₂, x₁).
  Def(env, exports, "rotaryEmbedding", [](Args& a) {
    const at::Tensor& x = a.tensor(0);
    int64_t half = x.size(-1) / 2;
    at::Tensor rotated = at::cat({x.slice(-1, half).neg(), x.slice(-1, 0, half)}, -1);
    return x * a.tensor(1) + rotated * a.tensor(2);
  });
  Def(env, exports, "embedding", [](Args& a) { return at::embedding(a.tensor(0), a.tensor(1), a.has(2) ? a.i64(2) : -1); });
  Def(env, exports, "dropout", [](Args& a) { return at::dropout(a.tensor(0), a.f64(1), a.boolean(2, true)); });
  Def(env, exports, "crossEntropy", [](Args& a) {
    return at::cross_entropy_loss(a.tensor(0), a.tensor(1), C10(a.optTensor(2)), Reduction(a.has(3) ? a.str(3) : "mean"),
                                  a.has(4) ? a.i64(4) : -100, a.has(5) ? a.f64(5) : 0.0);
  });
  Def(env, exports, "scaledDotProductAttention", [](Args& a) {
    return ScaledDotProductAttention(a.tensor(0), a.tensor(1), a.tensor(2), a.optTensor(3), a.has(4) ? a.f64(4) : 0.0, a.boolean(5, false), a.optF64(6), a.boolean(7, false));
  });

  // ---------------------------------------------------------------- indexing, joining, shapes
  Def(env, exports, "indexSelect", [](Args& a) { return at::index_select(a.tensor(0), a.i64(1), a.tensor(2)); });
  Def(env, exports, "gather", [](Args& a) { return at::gather(a.tensor(0), a.i64(1), a.tensor(2)); });
  // An explicit TensorList: 2.x takes an ITensorListRef, which a std::vector only reaches through it.
  Def(env, exports, "cat", [](Args& a) {
    std::vector<at::Tensor> list = a.tensorList(0);
    return at::cat(at::TensorList(list), a.has(1) ? a.i64(1) : 0);
  });
  Def(env, exports, "stack", [](Args& a) {
    std::vector<at::Tensor> list = a.tensorList(0);
    return at::stack(at::TensorList(list), a.has(1) ? a.i64(1) : 0);
  });
  Def(env, exports, "split", [](Args& a) -> std::vector<at::Tensor> {
    int64_t dim = a.has(2) ? a.i64(2) : 0;
    if (a.raw(1).IsArray()) return at::split_with_sizes(a.tensor(0), a.intList(1), dim);
    return at::split(a.tensor(0), a.i64(1), dim);
  });
  Def(env, exports, "chunk", [](Args& a) { return at::chunk(a.tensor(0), a.i64(1), a.has(2) ? a.i64(2) : 0); });
  Def(env, exports, "narrow", [](Args& a) { return at::narrow(a.tensor(0), a.i64(1), a.i64(2), a.i64(3)); });
  Def(env, exports, "slice", [](Args& a) {
    return at::slice(a.tensor(0), a.i64(1), C10(a.optI64(2)), C10(a.optI64(3)), a.has(4) ? a.i64(4) : 1);
  });
  Def(env, exports, "select", [](Args& a) { return at::select(a.tensor(0), a.i64(1), a.i64(2)); });
  Def(env, exports, "reshape", [](Args& a) { return at::reshape(a.tensor(0), a.intList(1)); });
  Def(env, exports, "view", [](Args& a) { return a.tensor(0).view(a.intList(1)); });
  Def(env, exports, "transpose", [](Args& a) { return at::transpose(a.tensor(0), a.i64(1), a.i64(2)); });
  Def(env, exports, "permute", [](Args& a) { return at::permute(a.tensor(0), a.intList(1)); });
  Def(env, exports, "unsqueeze", [](Args& a) { return at::unsqueeze(a.tensor(0), a.i64(1)); });
  Def(env, exports, "squeeze", [](Args& a) { return a.has(1) ? at::squeeze(a.tensor(0), a.i64(1)) : at::squeeze(a.tensor(0)); });
  Def(env, exports, "expand", [](Args& a) { return a.tensor(0).expand(a.intList(1)); });
  Def(env, exports, "flatten", [](Args& a) { return at::flatten(a.tensor(0), a.has(1) ? a.i64(1) : 0, a.has(2) ? a.i64(2) : -1); });
  Def(env, exports, "repeat", [](Args& a) { return a.tensor(0).repeat(a.intList(1)); });
  Def(env, exports, "repeatInterleave", [](Args& a) { return at::repeat_interleave(a.tensor(0), a.i64(1), C10(a.optI64(2))); });

  // ---------------------------------------------------------------- in place
  INPLACE("add_", x.add_(a.tensor(1), a.has(2) ? a.scalar(2) : at::Scalar(1)));
  INPLACE("addScalar_", x.add_(a.scalar(1), a.has(2) ? a.scalar(2) : at::Scalar(1)));
  INPLACE("sub_", x.sub_(a.tensor(1), a.has(2) ? a.scalar(2) : at::Scalar(1)));
  INPLACE("subScalar_", x.sub_(a.scalar(1), a.has(2) ? a.scalar(2) : at::Scalar(1)));
  INPLACE("mul_", x.mul_(a.tensor(1)));
  INPLACE("mulScalar_", x.mul_(a.scalar(1)));
  INPLACE("div_", x.div_(a.tensor(1)));
  INPLACE("divScalar_", x.div_(a.scalar(1)));
  INPLACE("addcmul_", x.addcmul_(a.tensor(1), a.tensor(2), a.has(3) ? a.scalar(3) : at::Scalar(1)));
  INPLACE("addcdiv_", x.addcdiv_(a.tensor(1), a.tensor(2), a.has(3) ? a.scalar(3) : at::Scalar(1)));
  INPLACE("copy_", x.copy_(a.tensor(1)));
  INPLACE("zero_", x.zero_());
  INPLACE("fill_", x.fill_(a.scalar(1)));
  INPLACE("sqrt_", x.sqrt_());
  INPLACE("clamp_", x.clamp_(C10(a.optScalar(1)), C10(a.optScalar(2))));
  INPLACE("maskedFill_", x.masked_fill_(a.tensor(1), a.tensor(2)));
  INPLACE("maskedFillScalar_", x.masked_fill_(a.tensor(1), a.scalar(2)));
  INPLACE("requiresGrad_", x.requires_grad_(a.boolean(1, true)));
  INPLACE("uniform_", x.uniform_(a.f64(1), a.f64(2)));
  INPLACE("normal_", x.normal_(a.f64(1), a.f64(2)));

  // ---------------------------------------------------------------- autograd
  Def(env, exports, "backward", [](Args& a) -> Napi::Value {
    a.tensor(0).backward(a.has(1) ? a.tensor(1) : at::Tensor(), a.has(2) ? c10::optional<bool>(a.boolean(2, false)) : c10::nullopt,
                         a.boolean(3, false));
    return a.env().Undefined();
  });
  Def(env, exports, "grad", [](Args& a) -> Napi::Value {
    const at::Tensor& g = a.tensor(0).grad();
    if (!g.defined()) return a.env().Undefined();
    return Handle(a.env(), g);
  });
  Def(env, exports, "setGrad", [](Args& a) -> Napi::Value {
    a.tensor(0).mutable_grad() = a.has(1) ? a.tensor(1) : at::Tensor();
    return a.env().Undefined();
  });
}

}  // namespace embtune
