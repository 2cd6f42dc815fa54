// The tensors that JS owns, in a table of slots. JS holds a tensor as a plain number (its
// handle: environment tag, slot and generation), so no JS object carries a native finalizer:
// Node defers those to the event loop, and a synchronous training loop would pile them up.
// dispose() frees the slot at once; a stale handle (disposed, or never issued) is refused, never
// dereferenced. The bytes of CPU tensors whose lifetime rests with the GC (outside every scope)
// are reported to V8 as external memory, so the collector sees that pressure; scoped tensors are
// freed deterministically, and reporting their churn would only trigger needless GCs.
//
// Threads: every JS environment that loads the addon (the main thread, each worker_threads
// Worker) gets its own table, owned by the environment through N-API instance data and freed —
// with every tensor still in it — when that environment exits. An environment runs on one
// thread, so a table is only ever touched by its own thread and needs no lock. A handle made in
// one environment and used in another (a number posted to a worker) is recognised by its tag and
// refused with a clear error instead of naming some other tensor.
#pragma once

#include <napi.h>
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace embtune {

using HandleId = double;  // a JS number: kHandleBase + (generation · 2^6 + tag) · 2^22 + slot

namespace tensor_table {

/** Creates this environment's table (once per environment, from the module's init). */
void InitEnvironment(Napi::Env env);
/** Stores `t` in a free slot and returns its handle. */
HandleId Add(Napi::Env env, at::Tensor t);
/** Reports the tensor's CPU bytes to V8 as external memory (until it is released). */
void ReportExternal(Napi::Env env, double id);
/** The tensor behind `id`; nullptr when the handle is stale, foreign or not a handle. */
const at::Tensor* Find(double id);
/** Frees the slot behind `id`; false when it was already free (idempotent) or is foreign. */
bool Release(Napi::Env env, double id);
/** Whether a JS value is shaped like a handle (a number in the handle range). */
bool LooksLikeHandle(double id);
/** Whether `id` is a handle issued by another JS environment (thread) of this process. */
bool IsForeign(double id);
/** Live tensors of the calling environment. */
int64_t LiveCount();
/** Bytes the calling environment currently reports to V8 as external memory. */
int64_t ReportedBytes();

}  // namespace tensor_table
}  // namespace embtune
