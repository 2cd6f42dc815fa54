// Argument parsing and result conversion shared by the bindings, and `Def`, which turns a
// C++ lambda into a JS function whose every libtorch error becomes a JS Error that names the
// op and the shapes and dtypes it was given. No exception escapes to abort the process.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "tensor_table.h"

namespace embtune {

class Args {
 public:
  explicit Args(const Napi::CallbackInfo& info) : info_(info), env_(info.Env()), tensor_args_(info.Length(), false) {}

  Napi::Env env() const { return env_; }
  size_t size() const { return info_.Length(); }
  bool has(size_t i) const { return i < info_.Length() && !info_[i].IsUndefined() && !info_[i].IsNull(); }
  Napi::Value raw(size_t i) const { return info_[i]; }

  const at::Tensor& tensor(size_t i) const;
  std::optional<at::Tensor> optTensor(size_t i) const;
  /** Whether argument i was read as a tensor or tensor list (for error messages). */
  bool readAsTensor(size_t i) const { return i < tensor_args_.size() && tensor_args_[i]; }
  std::vector<at::Tensor> tensorList(size_t i) const;
  int64_t i64(size_t i) const;
  std::optional<int64_t> optI64(size_t i) const;
  double f64(size_t i) const;
  std::optional<double> optF64(size_t i) const;
  bool boolean(size_t i, bool fallback) const;
  std::string str(size_t i) const;
  std::vector<int64_t> intList(size_t i) const;
  std::optional<std::vector<int64_t>> optIntList(size_t i) const;
  at::Scalar scalar(size_t i) const;
  std::optional<at::Scalar> optScalar(size_t i) const;
  at::ScalarType dtype(size_t i) const;
  std::optional<at::ScalarType> optDtype(size_t i) const;
  at::Device device(size_t i) const;
  std::optional<at::Device> optDevice(size_t i) const;

 private:
  void need(size_t i, const char* what) const;
  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  mutable std::vector<bool> tensor_args_;
};

inline Napi::Value ToJs(Napi::Env env, Napi::Value v) { return v; }
inline Napi::Value Handle(Napi::Env env, const at::Tensor& t) { return Napi::Number::New(env, tensor_table::Add(env, t)); }
inline Napi::Value ToJs(Napi::Env env, const at::Tensor& t) { return Handle(env, t); }
inline Napi::Value ToJs(Napi::Env env, bool v) { return Napi::Boolean::New(env, v); }
inline Napi::Value ToJs(Napi::Env env, double v) { return Napi::Number::New(env, v); }
inline Napi::Value ToJs(Napi::Env env, int64_t v) { return Napi::Number::New(env, static_cast<double>(v)); }
inline Napi::Value ToJs(Napi::Env env, const std::string& v) { return Napi::String::New(env, v); }
inline Napi::Value ToJs(Napi::Env env, const std::vector<at::Tensor>& list) {
  Napi::Array out = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); ++i) out.Set(i, Handle(env, list[i]));
  return out;
}
inline Napi::Value ToJs(Napi::Env env, const std::tuple<at::Tensor, at::Tensor>& pair) {
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(uint32_t{0}, Handle(env, std::get<0>(pair)));
  out.Set(uint32_t{1}, Handle(env, std::get<1>(pair)));
  return out;
}

/** "Tensor[2, 3] Float, 0.5, [1, 2]": what an op was called with, for error messages. */
std::string DescribeArgs(const Args& args);
[[noreturn]] void ThrowOpError(const Args& args, const char* op, const std::string& why);

// `shown`: the name errors give the operation (default `name`, e.g. "distributed.allReduce" for
// the export "distAllReduce").
template <typename Fn>
void Def(Napi::Env env, Napi::Object exports, const char* name, Fn fn, const char* shown = nullptr) {
  const char* op = shown ? shown : name;
  auto wrapped = [op, fn](const Napi::CallbackInfo& info) -> Napi::Value {
    Args args(info);
    try {
      return ToJs(info.Env(), fn(args));
    } catch (const Napi::Error&) {
      throw;
    } catch (const c10::Error& e) {
      ThrowOpError(args, op, e.what_without_backtrace());
    } catch (const std::exception& e) {
      ThrowOpError(args, op, e.what());
    } catch (...) {
      // Anything else thrown across the addon boundary would terminate the process.
      ThrowOpError(args, op, "an unknown C++ exception");
    }
  };
  exports.Set(name, Napi::Function::New(env, wrapped, name));
}

void RegisterOps(Napi::Env env, Napi::Object exports);
void RegisterSearchOps(Napi::Env env, Napi::Object exports);
void RegisterLoraOps(Napi::Env env, Napi::Object exports);
void RegisterFusedOps(Napi::Env env, Napi::Object exports);
void RegisterDistributedOps(Napi::Env env, Napi::Object exports);
void RegisterRuntime(Napi::Env env, Napi::Object exports);

}  // namespace embtune
