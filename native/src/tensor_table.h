// The tensors that JS owns, in a table of slots. JS holds a tensor as a plain number (its
// handle: slot and generation), so no JS object carries a native finalizer: Node defers those
// to the event loop, and a synchronous training loop would pile them up. dispose() frees the
// slot at once; a stale handle (disposed, or never issued) is refused, never dereferenced.
// The bytes of CPU tensors are reported to V8 as external memory so the GC sees them.
#pragma once

#include <napi.h>
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace embtune {

using HandleId = double;  // a JS number: kHandleBase + generation · 2^24 + slot

namespace tensor_table {

/** Stores `t` in a free slot and returns its handle. */
HandleId Add(Napi::Env env, at::Tensor t);
/** The tensor behind `id`; nullptr when the handle is stale or not a handle. */
const at::Tensor* Find(double id);
/** Frees the slot behind `id`; false when it was already free (idempotent). */
bool Release(Napi::Env env, double id);
/** Whether a JS value is shaped like a handle (a number in the handle range). */
bool LooksLikeHandle(double id);
int64_t LiveCount();

}  // namespace tensor_table
}  // namespace embtune
