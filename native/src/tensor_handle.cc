#include "tensor_handle.h"

#include <atomic>
#include <stdexcept>
#include <utility>

namespace embtune {
namespace {

// Distinguishes our handles from any other object passed in (napi_type_tag).
const napi_type_tag kHandleTag = {0x656d6274756e6554ULL, 0x656e736f72486e64ULL};

std::atomic<int64_t> live_handles{0};
// The tensor handed to the constructor by Wrap (constructors take JS arguments only).
thread_local at::Tensor* pending_tensor = nullptr;

struct InstanceData {
  Napi::FunctionReference constructor;
};

int64_t HostBytes(const at::Tensor& t) {
  if (!t.defined() || !t.device().is_cpu()) return 0;
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

}  // namespace

void TensorHandle::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "TensorHandle",
                                    {InstanceMethod("dispose", &TensorHandle::JsDispose),
                                     InstanceAccessor("disposed", &TensorHandle::JsDisposed, nullptr)});
  auto* data = new InstanceData{Napi::Persistent(ctor)};
  env.SetInstanceData<InstanceData>(data);
  exports.Set("TensorHandle", ctor);
}

Napi::Object TensorHandle::Wrap(Napi::Env env, at::Tensor tensor) {
  pending_tensor = &tensor;
  Napi::Object obj = env.GetInstanceData<InstanceData>()->constructor.New({});
  pending_tensor = nullptr;
  return obj;
}

bool TensorHandle::IsHandle(Napi::Env env, Napi::Value value) {
  if (!value.IsObject()) return false;
  bool tagged = false;
  napi_check_object_type_tag(env, value, &kHandleTag, &tagged);
  return tagged;
}

TensorHandle* TensorHandle::From(Napi::Env env, Napi::Value value) {
  if (!IsHandle(env, value)) throw std::invalid_argument("expected a Tensor");
  TensorHandle* handle = Unwrap(value.As<Napi::Object>());
  if (handle->disposed_) throw std::invalid_argument("the tensor was disposed (use keep() or return it from tidy() to keep it)");
  return handle;
}

int64_t TensorHandle::LiveCount() { return live_handles.load(); }

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {
  Napi::Env env = info.Env();
  napi_type_tag_object(env, info.This(), &kHandleTag);
  if (pending_tensor == nullptr) {
    disposed_ = true;  // constructed from JS: an empty, unusable handle
    return;
  }
  tensor_ = std::move(*pending_tensor);
  reported_bytes_ = HostBytes(tensor_);
  if (reported_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env, reported_bytes_);
  live_handles.fetch_add(1);
}

void TensorHandle::Release(Napi::Env env) {
  if (disposed_) return;
  disposed_ = true;
  tensor_ = at::Tensor();
  if (reported_bytes_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -reported_bytes_);
  reported_bytes_ = 0;
  live_handles.fetch_sub(1);
}

void TensorHandle::Dispose(Napi::Env env) { Release(env); }

void TensorHandle::Finalize(Napi::Env env) { Release(env); }

TensorHandle::~TensorHandle() {
  if (!disposed_) live_handles.fetch_sub(1);
}

Napi::Value TensorHandle::JsDispose(const Napi::CallbackInfo& info) {
  Release(info.Env());
  return info.Env().Undefined();
}

Napi::Value TensorHandle::JsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed_);
}

}  // namespace embtune
