// The tensors that JS owns, in a table of slots. JS holds a tensor as a plain number (its
// handle: slot and generation), so no JS object carries a native finalizer: Node defers those
// to the event loop, and a synchronous training loop would pile them up. dispose() frees the
// slot at once; a stale handle (disposed, or never issued) is refused, never dereferenced.
// The bytes of CPU tensors whose lifetime rests with the GC (outside every scope) are reported
// to V8 as external memory, so the collector sees that pressure; scoped tensors are freed
// deterministically, and reporting their churn would only trigger needless GCs.
#pragma once

#include <napi.h>
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace embtune {

using HandleId = double;  // a JS number: kHandleBase + generation · 2^24 + slot

namespace tensor_table {

/** Stores `t` in a free slot and returns its handle. */
HandleId Add(Napi::Env env, at::Tensor t);
/** Reports the tensor's CPU bytes to V8 as external memory (until it is released). */
void ReportExternal(Napi::Env env, double id);
/** The tensor behind `id`; nullptr when the handle is stale or not a handle. */
const at::Tensor* Find(double id);
/** Frees the slot behind `id`; false when it was already free (idempotent). */
bool Release(Napi::Env env, double id);
/** Whether a JS value is shaped like a handle (a number in the handle range). */
bool LooksLikeHandle(double id);
int64_t LiveCount();
/** Bytes currently reported to V8 as external memory. */
int64_t ReportedBytes();

}  // namespace tensor_table
}  // namespace embtune
