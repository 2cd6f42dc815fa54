// Attention for inference on the CPU in float32: softmax(q·kᵀ·scale + mask)·v, one query row at a
// time against its keys, with GQA (each kv head serves n consecutive query heads).
//
// Why: libtorch 1.13 computes eager attention as two batched products of many tiny matrices (one
// BLAS call per head, e.g. 96 calls of 30×16·16×92 for a 24-pair reranker batch), a [B, N, Lq, Lk]
// scores tensor written and read four times (scale, mask, softmax, cast) and the keys and values
// copied to every query head. On qwen3-tiny that made attention half of a served reranker batch's
// per-pair cost. Here a (batch, kv head) block transposes its keys once into a small scratch buffer,
// and every query row of its heads then runs scores, softmax and the weighted sum of values over
// cache-resident data, in 8-wide vectors (AVX2 and FMA where the CPU has them, chosen at run time).
// It serves heads of up to 64 dimensions, where it is faster (see AttentionInferenceApplies).
//
// The arithmetic is the composition's (scores scaled, then the mask added, softmax with its maximum
// subtracted, probabilities times values) but not bit for bit: the dot products accumulate in
// another order (with fused multiply-adds on AVX2) and exp is a Cephes-style polynomial (within
// 2 ulp). Results agree with the composition to float32 rounding (test/torch/attention_inference.test.ts).
// So it runs only inside `inferenceMode` (embedding, reranking, generation), never in training's
// no-grad forwards (gradient checkpointing, GradCache), which must equal the autograd node's
// forward (fused_ops.cc: the composition bit for bit).
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "attention_inference.h"
#include "fused_ops.h"

// The 8-float vector helpers are always inlined, so the ABI of passing them by value (which GCC
// warns differs with and without AVX) is never used.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace embtune {
namespace {

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
constexpr int64_t kLanes = 8;
constexpr int64_t kMaxHeadDim = 64;

inline __attribute__((always_inline)) v8f Load(const float* p) {
  v8f r;
  std::memcpy(&r, p, sizeof(r));
  return r;
}

inline __attribute__((always_inline)) void Store(float* p, v8f x) { std::memcpy(p, &x, sizeof(x)); }

inline __attribute__((always_inline)) v8f Splat(float x) { return v8f{x, x, x, x, x, x, x, x}; }

// e^x in 8 lanes: x = n·ln2 + r with n = round(x·log2 e) and ln2 in two parts (Cody–Waite), e^r by
// Cephes' degree-7 polynomial for expf, times 2^n built in the exponent bits. Below −87.3 (where
// e^x leaves float32's normal range; masked scores are about −3.4e38) the result is 0, as expf's.
inline __attribute__((always_inline)) v8f Exp(v8f x) {
  const v8f lo = Splat(-87.33654475f);
  const v8f hi = Splat(88.72283935f);
  const v8f zero = Splat(0.0f);
  const v8i underflow = x < lo;
  x = x > hi ? hi : x;
  x = x < lo ? lo : x;
  // Rounding to nearest through the float32 mantissa: adding 1.5·2^23 leaves the integer part.
  const v8f shifter = Splat(12582912.0f);
  v8f n = x * Splat(1.44269504088896341f) + shifter;
  const v8i bits = (v8i)n - (v8i)shifter;
  n = n - shifter;
  v8f r = x - n * Splat(0.693359375f);
  r = r - n * Splat(-2.12194440e-4f);
  v8f y = Splat(1.9875691500e-4f);
  y = y * r + Splat(1.3981999507e-3f);
  y = y * r + Splat(8.3334519073e-3f);
  y = y * r + Splat(4.1665795894e-2f);
  y = y * r + Splat(1.6666665459e-1f);
  y = y * r + Splat(5.0000001201e-1f);
  y = y * (r * r) + r + Splat(1.0f);
  const v8i scale_bits = (bits + 127) << 23;
  y = y * (v8f)scale_bits;
  // NaN stays NaN (a row whose every key is masked with −inf, as softmax gives); underflow is 0.
  return underflow ? zero : y;
}

inline __attribute__((always_inline)) float HorizontalMax(v8f x) {
  float m = x[0];
  for (int i = 1; i < kLanes; ++i) m = std::max(m, x[i]);
  return m;
}

inline __attribute__((always_inline)) float HorizontalSum(v8f x) {
  return ((x[0] + x[4]) + (x[1] + x[5])) + ((x[2] + x[6]) + (x[3] + x[7]));
}

struct Shapes {
  int64_t batch, q_heads, kv_heads, q_len, k_len, dim;
};

struct Views {
  const float* q;  // [B, Hq, Lq, D] contiguous
  const float* k;  // [B, Hkv, Lk, D] with unit stride in D
  const float* v;
  const float* mask;  // [B, Hq, Lq, Lk] with unit stride in Lk (broadcast dims stride 0), or null
  float* out;         // [B, Hq, Lq, D] contiguous
  int64_t k_stride[3], v_stride[3], mask_stride[3];
};

// [L, D] rows (unit stride in D, `stride` between rows) → [D, padded] with zeros past L.
inline __attribute__((always_inline)) void Transpose(const float* x, int64_t stride, int64_t length, int64_t dim, int64_t padded, std::vector<float>& out) {
  // Every element is written below, so the buffer is only resized (a fill of the whole [D, padded]
  // buffer per block was 3% of a served batch's time); the padding columns are zeroed alone.
  out.resize(dim * padded);
  float* t = out.data();
  for (int64_t j = 0; j < length; ++j) {
    const float* row = x + j * stride;
    for (int64_t d = 0; d < dim; ++d) t[d * padded + j] = row[d];
  }
  for (int64_t d = 0; d < dim; ++d) std::fill(t + d * padded + length, t + (d + 1) * padded, 0.0f);
}

// scores[j] = (q·k_j)·scale for every key block: four blocks at a time, so that four chains of
// multiply-adds are in flight (one chain is bound by the multiply-add's latency, not throughput).
inline __attribute__((always_inline)) void Scores(const float* q, const float* keys_t, int64_t dim, int64_t padded, float scale, float* scores) {
  int64_t j = 0;
  for (; j + 4 * kLanes <= padded; j += 4 * kLanes) {
    v8f a0 = Splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < dim; ++d) {
      const v8f qd = Splat(q[d]);
      const float* k = keys_t + d * padded + j;
      a0 += qd * Load(k);
      a1 += qd * Load(k + kLanes);
      a2 += qd * Load(k + 2 * kLanes);
      a3 += qd * Load(k + 3 * kLanes);
    }
    Store(scores + j, a0 * Splat(scale));
    Store(scores + j + kLanes, a1 * Splat(scale));
    Store(scores + j + 2 * kLanes, a2 * Splat(scale));
    Store(scores + j + 3 * kLanes, a3 * Splat(scale));
  }
  for (; j < padded; j += kLanes) {
    v8f a = Splat(0.0f);
    for (int64_t d = 0; d < dim; ++d) a += Splat(q[d]) * Load(keys_t + d * padded + j);
    Store(scores + j, a * Splat(scale));
  }
}

// out[d] = Σ_j p_j·v_j[d] · inverse, as dot products of p with the rows of vᵀ, four at a time.
inline __attribute__((always_inline)) void WeightedValues(const float* p, const float* values_t, int64_t dim, int64_t padded, float inverse, float* out) {
  int64_t d = 0;
  for (; d + 4 <= dim; d += 4) {
    // Named accumulators, so that they stay in registers.
    v8f a0 = Splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
    const float* v = values_t + d * padded;
    for (int64_t j = 0; j < padded; j += kLanes) {
      const v8f pj = Load(p + j);
      a0 += pj * Load(v + j);
      a1 += pj * Load(v + padded + j);
      a2 += pj * Load(v + 2 * padded + j);
      a3 += pj * Load(v + 3 * padded + j);
    }
    out[d] = HorizontalSum(a0) * inverse;
    out[d + 1] = HorizontalSum(a1) * inverse;
    out[d + 2] = HorizontalSum(a2) * inverse;
    out[d + 3] = HorizontalSum(a3) * inverse;
  }
  for (; d < dim; ++d) {
    v8f acc = Splat(0.0f);
    for (int64_t j = 0; j < padded; j += kLanes) acc += Load(p + j) * Load(values_t + d * padded + j);
    out[d] = HorizontalSum(acc) * inverse;
  }
}

// Every query row of the kv head `kv` of batch row `b`: its n_rep query heads.
inline __attribute__((always_inline)) void Block(const Shapes& s, const Views& t, float scale, int64_t b, int64_t kv, std::vector<float>& keys_t,
                                                 std::vector<float>& values_t, std::vector<float>& scores) {
  const int64_t padded = (s.k_len + kLanes - 1) / kLanes * kLanes;
  const int64_t n_rep = s.q_heads / s.kv_heads;
  // Keys and values transposed to [D, Lk] (zero-padded to whole vectors): a score and an output
  // element are then dot products of contiguous vectors.
  Transpose(t.k + b * t.k_stride[0] + kv * t.k_stride[1], t.k_stride[2], s.k_len, s.dim, padded, keys_t);
  Transpose(t.v + b * t.v_stride[0] + kv * t.v_stride[1], t.v_stride[2], s.k_len, s.dim, padded, values_t);
  scores.resize(padded);
  float* score = scores.data();
  const float minus_inf = -std::numeric_limits<float>::infinity();
  for (int64_t h = kv * n_rep; h < (kv + 1) * n_rep; ++h) {
    for (int64_t i = 0; i < s.q_len; ++i) {
      const float* q = t.q + ((b * s.q_heads + h) * s.q_len + i) * s.dim;
      float* out = t.out + ((b * s.q_heads + h) * s.q_len + i) * s.dim;
      Scores(q, keys_t.data(), s.dim, padded, scale, score);
      if (t.mask) {
        const float* mask = t.mask + b * t.mask_stride[0] + h * t.mask_stride[1] + i * t.mask_stride[2];
        int64_t j = 0;
        for (; j + kLanes <= s.k_len; j += kLanes) Store(score + j, Load(score + j) + Load(mask + j));
        for (; j < s.k_len; ++j) score[j] += mask[j];
      }
      // The padding lanes get probability 0.
      for (int64_t j = s.k_len; j < padded; ++j) score[j] = minus_inf;
      v8f max8 = Splat(minus_inf);
      for (int64_t j = 0; j < padded; j += kLanes) {
        const v8f x = Load(score + j);
        max8 = x > max8 ? x : max8;
      }
      const v8f max = Splat(HorizontalMax(max8));
      v8f sum8 = Splat(0.0f);
      for (int64_t j = 0; j < padded; j += kLanes) {
        const v8f e = Exp(Load(score + j) - max);
        Store(score + j, e);
        sum8 += e;
      }
      WeightedValues(score, values_t.data(), s.dim, padded, 1.0f / HorizontalSum(sum8), out);
    }
  }
}

// The same code compiled twice: for any x86-64 (or other) CPU, and for AVX2 with FMA.
inline __attribute__((always_inline)) void Blocks(const Shapes& s, const Views& t, float scale, int64_t begin, int64_t end) {
  std::vector<float> keys_t;
  std::vector<float> values_t;
  std::vector<float> scores;
  for (int64_t block = begin; block < end; ++block) Block(s, t, scale, block / s.kv_heads, block % s.kv_heads, keys_t, values_t, scores);
}

void RunBlocks(const Shapes& s, const Views& t, float scale, int64_t begin, int64_t end) { Blocks(s, t, scale, begin, end); }

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) void RunBlocksAvx2(const Shapes& s, const Views& t, float scale, int64_t begin, int64_t end) { Blocks(s, t, scale, begin, end); }

bool HasAvx2Fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#else
// Elsewhere (arm64: NEON) the compiler's own 8-wide lowering of the vector type serves.
void RunBlocksAvx2(const Shapes& s, const Views& t, float scale, int64_t begin, int64_t end) { Blocks(s, t, scale, begin, end); }

bool HasAvx2Fma() { return false; }
#endif

bool NeedsGrad(const at::Tensor& x) { return x.defined() && x.requires_grad(); }

std::string ShapeText(const at::Tensor& x) {
  std::string text = "[";
  for (int64_t i = 0; i < x.dim(); ++i) text += (i ? ", " : "") + std::to_string(x.size(i));
  return text + "]";
}

thread_local bool inference_mode = false;

}  // namespace

bool SetInferenceMode(bool on) {
  const bool before = inference_mode;
  inference_mode = on;
  return before;
}

bool AttentionInferenceApplies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::optional<at::Tensor>& mask) {
  // Only where the caller said the values feed no gradient later: gradient checkpointing and
  // GradCache run no-grad forwards that must equal the autograd forward bit for bit.
  if (!inference_mode) return false;
  const bool grad = at::GradMode::is_enabled() && (NeedsGrad(q) || NeedsGrad(k) || NeedsGrad(v) || (mask && NeedsGrad(*mask)));
  if (grad || q.dim() != 4 || k.dim() != 4 || v.dim() != 4) return false;
  // Up to 64 dimensions per head (qwen3-tiny 16, BERT-small encoders 64) this is 1.1–3× faster
  // than the composition on one thread; at 128 (Qwen3-0.6B and up) BLAS's products are 10–45%
  // faster, so those keep the composition.
  if (q.size(3) > kMaxHeadDim) return false;
  for (const at::Tensor* x : {&q, &k, &v}) {
    if (x->scalar_type() != at::kFloat || !x->device().is_cpu()) return false;
  }
  if (mask && (mask->scalar_type() != at::kFloat || !mask->device().is_cpu())) return false;
  return true;
}

at::Tensor AttentionInference(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in, const std::optional<at::Tensor>& mask_in, double scale) {
  CheckAttentionHeads(q_in, k_in, v_in);
  const Shapes s{q_in.size(0), q_in.size(1), k_in.size(1), q_in.size(2), k_in.size(2), q_in.size(3)};
  if (k_in.size(0) != s.batch || v_in.size(0) != s.batch || k_in.size(3) != s.dim || v_in.size(3) != s.dim || v_in.size(2) != s.k_len) {
    throw std::invalid_argument("attention: q " + ShapeText(q_in) + ", k " + ShapeText(k_in) + " and v " + ShapeText(v_in) + " do not fit q [B, Hq, Lq, D], k and v [B, Hkv, Lk, D]");
  }
  const at::Tensor q = q_in.contiguous();
  const at::Tensor k = k_in.stride(3) == 1 ? k_in : k_in.contiguous();
  const at::Tensor v = v_in.stride(3) == 1 ? v_in : v_in.contiguous();
  at::Tensor mask;
  if (mask_in) {
    // Broadcast to [B, Hq, Lq, Lk] as the composition's add would (a view: broadcast dims stride 0).
    mask = mask_in->expand({s.batch, s.q_heads, s.q_len, s.k_len});
    // Rows are read with unit stride: a mask broadcast over the keys (or strided there) is copied out.
    if (mask.stride(3) != 1) mask = mask.contiguous();
  }
  // No keys: softmax over nothing, and the composition's product is zeros.
  if (s.k_len == 0) return at::zeros({s.batch, s.q_heads, s.q_len, s.dim}, q.options());
  at::Tensor out = at::empty({s.batch, s.q_heads, s.q_len, s.dim}, q.options());
  Views t{q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), mask.defined() ? mask.data_ptr<float>() : nullptr, out.data_ptr<float>(), {}, {}, {}};
  for (int i = 0; i < 3; ++i) {
    t.k_stride[i] = k.stride(i);
    t.v_stride[i] = v.stride(i);
    t.mask_stride[i] = mask.defined() ? mask.stride(i) : 0;
  }
  const float f_scale = static_cast<float>(scale);
  const bool avx2 = HasAvx2Fma();
  // One task per (batch row, kv head); a task is Lq·n_rep query rows against Lk keys.
  const int64_t blocks = s.batch * s.kv_heads;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, s.q_len * (s.q_heads / s.kv_heads) * s.k_len));
  at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
    if (avx2) RunBlocksAvx2(s, t, f_scale, begin, end);
    else RunBlocks(s, t, f_scale, begin, end);
  });
  return out;
}

}  // namespace embtune
