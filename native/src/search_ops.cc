// Kernels for exact top-k search (src/mine/search.ts), where a composition of tensor ops would
// cost more than the matrix product it follows: merging a block of scores into per-query running
// top-k heaps in one pass over the block, in parallel over queries.
#include <ATen/Parallel.h>

#include <limits>
#include <stdexcept>
#include <utility>
#include <string>

#include "bind.h"

namespace embtune {
namespace {

// Row heap: root = the worst entry kept — the lowest score, and among equal scores the highest
// corpus index — so the kept set is the top k by (score descending, index ascending).
struct RowHeap {
  float* score;
  int32_t* index;

  bool Worse(int64_t a, int64_t b) const { return score[a] < score[b] || (score[a] == score[b] && index[a] > index[b]); }

  void Swap(int64_t a, int64_t b) const {
    std::swap(score[a], score[b]);
    std::swap(index[a], index[b]);
  }

  void Push(int64_t size, float s, int32_t i) const {
    score[size] = s;
    index[size] = i;
    for (int64_t child = size; child > 0;) {
      const int64_t parent = (child - 1) >> 1;
      if (!Worse(child, parent)) break;
      Swap(child, parent);
      child = parent;
    }
  }

  void SiftDown(int64_t size, int64_t from) const {
    for (int64_t parent = from;;) {
      const int64_t left = 2 * parent + 1;
      if (left >= size) return;
      const int64_t right = left + 1;
      const int64_t worst = right < size && Worse(right, left) ? right : left;
      if (!Worse(worst, parent)) return;
      Swap(worst, parent);
      parent = worst;
    }
  }
};

// Everything the merge loop trusts, checked before it runs: the tensors' devices, dtypes, shapes
// and layouts, the block's place among the heaps, corpus indices that fit int32, and every heap
// size the block touches within [0, k] (a size outside it would index past the row).
void CheckHeapArgs(const at::Tensor& block, const at::Tensor& scores, const at::Tensor& indices, const at::Tensor& sizes, int64_t q0, int64_t c0) {
  if (block.dim() != 2 || block.scalar_type() != at::kFloat || !block.is_contiguous() || !block.device().is_cpu()) throw std::invalid_argument("the block must be a contiguous 2-D float32 CPU tensor");
  if (scores.dim() != 2 || scores.scalar_type() != at::kFloat || !scores.is_contiguous() || !scores.device().is_cpu()) throw std::invalid_argument("heap scores must be a contiguous [queries, k] float32 tensor on the CPU");
  if (indices.sizes() != scores.sizes() || indices.scalar_type() != at::kInt || !indices.is_contiguous() || !indices.device().is_cpu()) throw std::invalid_argument("heap indices must be a contiguous int32 tensor on the CPU, shaped as the heap scores");
  if (sizes.dim() != 1 || sizes.size(0) != scores.size(0) || sizes.scalar_type() != at::kInt || !sizes.is_contiguous() || !sizes.device().is_cpu()) throw std::invalid_argument("heap sizes must be a contiguous int32 [queries] tensor on the CPU");
  if (q0 < 0 || q0 > scores.size(0) - block.size(0)) throw std::invalid_argument("block rows fall outside the heaps (q0 " + std::to_string(q0) + ", " + std::to_string(block.size(0)) + " rows, " + std::to_string(scores.size(0)) + " heaps)");
  if (c0 < 0 || c0 > std::numeric_limits<int32_t>::max() - block.size(1)) throw std::invalid_argument("corpus indices c0 " + std::to_string(c0) + " + " + std::to_string(block.size(1)) + " columns do not fit int32");
  const int64_t k = scores.size(1);
  const int32_t* heap_sizes = sizes.data_ptr<int32_t>();
  for (int64_t q = q0; q < q0 + block.size(0); ++q) {
    if (heap_sizes[q] < 0 || heap_sizes[q] > k) throw std::invalid_argument("heap size " + std::to_string(heap_sizes[q]) + " of query " + std::to_string(q) + " is outside [0, k = " + std::to_string(k) + "]");
  }
}

// Offers block[r, j] (query q0 + r, corpus entry c0 + j) to the heaps. Corpus indices only grow
// from one call to the next, so a score equal to a full heap's root comes from a higher index and
// loses the tie: the strict `>` against the root is the tie rule. NaN never passes `>`.
void OfferBlock(const at::Tensor& block, at::Tensor& scores, at::Tensor& indices, at::Tensor& sizes, int64_t q0, int64_t c0) {
  CheckHeapArgs(block, scores, indices, sizes, q0, c0);
  const int64_t rows = block.size(0);
  const int64_t cols = block.size(1);
  const int64_t k = scores.size(1);
  if (k == 0) return;
  const float* data = block.data_ptr<float>();
  float* heap_scores = scores.data_ptr<float>();
  int32_t* heap_indices = indices.data_ptr<int32_t>();
  int32_t* heap_sizes = sizes.data_ptr<int32_t>();
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t q = q0 + r;
      const RowHeap heap{heap_scores + q * k, heap_indices + q * k};
      int64_t size = heap_sizes[q];
      float threshold = size < k ? -std::numeric_limits<float>::infinity() : heap.score[0];
      const float* row = data + r * cols;
      for (int64_t j = 0; j < cols; ++j) {
        const float s = row[j];
        if (!(s > threshold)) continue;
        const int32_t index = static_cast<int32_t>(c0 + j);
        if (size < k) {
          heap.Push(size++, s, index);
          if (size == k) threshold = heap.score[0];
        } else {
          heap.score[0] = s;
          heap.index[0] = index;
          heap.SiftDown(k, 0);
          threshold = heap.score[0];
        }
      }
      heap_sizes[q] = static_cast<int32_t>(size);
    }
  });
}

}  // namespace

void RegisterSearchOps(Napi::Env env, Napi::Object exports) {
  // out ← a·b into an existing tensor (at::mm_out): the search reuses one score buffer.
  Def(env, exports, "mmOut", [](Args& a) {
    at::Tensor out = a.tensor(0);
    const at::Tensor& x = a.tensor(1);
    const at::Tensor& y = a.tensor(2);
    // at::mm_out would resize (reallocate) an out of another shape with a warning; the caller's
    // reused buffer must be exactly the product's.
    if (x.dim() != 2 || y.dim() != 2) throw std::invalid_argument("a and b must be matrices");
    if (out.dim() != 2 || out.size(0) != x.size(0) || out.size(1) != y.size(1) || !out.is_contiguous()) {
      throw std::invalid_argument("out must be a contiguous [" + std::to_string(x.size(0)) + ", " + std::to_string(y.size(1)) + "] tensor (the product's shape)");
    }
    at::mm_out(out, x, y);
    return true;
  });
  Def(env, exports, "topkHeapOffer", [](Args& a) {
    at::Tensor scores = a.tensor(1);
    at::Tensor indices = a.tensor(2);
    at::Tensor sizes = a.tensor(3);
    OfferBlock(a.tensor(0), scores, indices, sizes, a.i64(4), a.i64(5));
    return true;
  });
}

}  // namespace embtune
