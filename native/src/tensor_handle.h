// The JS object that owns one at::Tensor. Ownership is explicit: dispose() frees the tensor at
// once; the GC finalizer is only a backstop. The bytes a tensor holds on the CPU are reported
// to V8 as external memory so that the collector sees native pressure.
#pragma once

#include <napi.h>
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace embtune {

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  /** A new JS handle that owns `tensor`. */
  static Napi::Object Wrap(Napi::Env env, at::Tensor tensor);
  static bool IsHandle(Napi::Env env, Napi::Value value);
  /** The handle behind `value`; throws std::invalid_argument if it is not one or was disposed. */
  static TensorHandle* From(Napi::Env env, Napi::Value value);
  /** Number of handles whose tensor is alive (not disposed, not collected). */
  static int64_t LiveCount();

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;
  void Finalize(Napi::Env env) override;

  const at::Tensor& tensor() const { return tensor_; }
  bool disposed() const { return disposed_; }
  void Dispose(Napi::Env env);

 private:
  Napi::Value JsDispose(const Napi::CallbackInfo& info);
  Napi::Value JsDisposed(const Napi::CallbackInfo& info);
  void Release(Napi::Env env);

  at::Tensor tensor_;
  int64_t reported_bytes_ = 0;
  bool disposed_ = false;
};

}  // namespace embtune
