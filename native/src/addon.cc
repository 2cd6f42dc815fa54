// Module entry: argument parsing, error messages, and the runtime functions (version, threads,
// devices, seeds, grad mode, buffers). The tensor ops themselves are in ops.cc.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/GradMode.h>
#include <c10/util/Logging.h>
#include <torch/version.h>

#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "attention_inference.h"
#include "bind.h"
#include "cpu_allocator.h"

#ifndef EMBTUNE_LIBTORCH_ROOT
#define EMBTUNE_LIBTORCH_ROOT "unknown"
#endif

namespace embtune {

// ---------------------------------------------------------------- argument parsing

void Args::need(size_t i, const char* what) const {
  if (i >= info_.Length() || info_[i].IsUndefined() || info_[i].IsNull()) {
    throw std::invalid_argument(std::string("argument ") + std::to_string(i) + " is missing (expected " + what + ")");
  }
}

namespace {
const at::Tensor& Resolve(Napi::Value v, const std::string& where) {
  if (!v.IsNumber()) throw std::invalid_argument(where + " must be a Tensor");
  double id = v.As<Napi::Number>().DoubleValue();
  const at::Tensor* t = tensor_table::Find(id);
  if (t != nullptr) return *t;
  if (tensor_table::IsForeign(id)) throw std::invalid_argument(where + ": the tensor belongs to another thread (JS environment); tensors cannot cross worker threads, send its data (toTypedArray) instead");
  if (tensor_table::LooksLikeHandle(id)) throw std::invalid_argument(where + ": the tensor was disposed (use keep() or return it from tidy() to keep it)");
  throw std::invalid_argument(where + " must be a Tensor");
}
}  // namespace

const at::Tensor& Args::tensor(size_t i) const {
  need(i, "a Tensor");
  if (i < tensor_args_.size()) tensor_args_[i] = true;
  return Resolve(info_[i], "argument " + std::to_string(i));
}

std::optional<at::Tensor> Args::optTensor(size_t i) const {
  if (!has(i)) return std::nullopt;
  return tensor(i);
}

std::vector<at::Tensor> Args::tensorList(size_t i) const {
  need(i, "an array of Tensors");
  if (!info_[i].IsArray()) throw std::invalid_argument("argument " + std::to_string(i) + " must be an array of Tensors");
  tensor_args_[i] = true;
  Napi::Array arr = info_[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) out.push_back(Resolve(arr.Get(k), "element " + std::to_string(k) + " of argument " + std::to_string(i)));
  return out;
}

namespace {
// int64 from a JS number: whole and within [−2^63, 2^63) — casting anything else is undefined behaviour.
int64_t WholeInt64(double v, const std::string& where) {
  if (!std::isfinite(v) || std::floor(v) != v) throw std::invalid_argument(where + " must be an integer, got " + c10::str(v));
  if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) throw std::invalid_argument(where + " = " + c10::str(v) + " is outside the int64 range");
  return static_cast<int64_t>(v);
}

// int64 from a JS BigInt, refused when it does not fit (N-API would wrap it silently).
int64_t BigInt64(Napi::Value v, const std::string& where) {
  bool lossless = true;
  const int64_t out = v.As<Napi::BigInt>().Int64Value(&lossless);
  if (!lossless) throw std::invalid_argument(where + " (a BigInt) is outside the int64 range");
  return out;
}
}  // namespace

int64_t Args::i64(size_t i) const {
  need(i, "an integer");
  const std::string where = "argument " + std::to_string(i);
  if (info_[i].IsBigInt()) return BigInt64(info_[i], where);
  if (!info_[i].IsNumber()) throw std::invalid_argument(where + " must be an integer");
  return WholeInt64(info_[i].As<Napi::Number>().DoubleValue(), where);
}

std::optional<int64_t> Args::optI64(size_t i) const {
  if (!has(i)) return std::nullopt;
  return i64(i);
}

double Args::f64(size_t i) const {
  need(i, "a number");
  if (!info_[i].IsNumber()) throw std::invalid_argument("argument " + std::to_string(i) + " must be a number");
  return info_[i].As<Napi::Number>().DoubleValue();
}

std::optional<double> Args::optF64(size_t i) const {
  if (!has(i)) return std::nullopt;
  return f64(i);
}

bool Args::boolean(size_t i, bool fallback) const {
  if (!has(i)) return fallback;
  return info_[i].ToBoolean().Value();
}

std::string Args::str(size_t i) const {
  need(i, "a string");
  if (!info_[i].IsString()) throw std::invalid_argument("argument " + std::to_string(i) + " must be a string");
  return info_[i].As<Napi::String>().Utf8Value();
}

std::vector<int64_t> Args::intList(size_t i) const {
  need(i, "an array of integers");
  if (info_[i].IsNumber()) return {i64(i)};
  if (!info_[i].IsArray()) throw std::invalid_argument("argument " + std::to_string(i) + " must be an array of integers");
  Napi::Array arr = info_[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value v = arr.Get(k);
    const std::string where = "element " + std::to_string(k) + " of argument " + std::to_string(i);
    if (v.IsBigInt()) {
      out[k] = BigInt64(v, where);
      continue;
    }
    const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || std::floor(d) != d) throw std::invalid_argument("argument " + std::to_string(i) + " must hold integers only (" + where + " is " + (v.IsNumber() ? c10::str(d) : "not a number") + ")");
    out[k] = WholeInt64(d, where);
  }
  return out;
}

std::optional<std::vector<int64_t>> Args::optIntList(size_t i) const {
  if (!has(i)) return std::nullopt;
  return intList(i);
}

at::Scalar Args::scalar(size_t i) const {
  need(i, "a number");
  Napi::Value v = info_[i];
  if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
  if (v.IsBigInt()) return at::Scalar(BigInt64(v, "argument " + std::to_string(i)));
  if (!v.IsNumber()) throw std::invalid_argument("argument " + std::to_string(i) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  // A JS number that is a whole value within 2^53 behaves like a Python int (keeps integer
  // tensors integral); any other value is a Python float.
  if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) <= 9007199254740992.0) return at::Scalar(static_cast<int64_t>(d));
  return at::Scalar(d);
}

std::optional<at::Scalar> Args::optScalar(size_t i) const {
  if (!has(i)) return std::nullopt;
  return scalar(i);
}

at::ScalarType Args::dtype(size_t i) const {
  int64_t code = i64(i);
  if (code < 0 || code >= static_cast<int64_t>(at::ScalarType::NumOptions)) throw std::invalid_argument("unknown dtype code " + std::to_string(code));
  return static_cast<at::ScalarType>(code);
}

std::optional<at::ScalarType> Args::optDtype(size_t i) const {
  if (!has(i)) return std::nullopt;
  return dtype(i);
}

at::Device Args::device(size_t i) const { return at::Device(str(i)); }

std::optional<at::Device> Args::optDevice(size_t i) const {
  if (!has(i)) return std::nullopt;
  return device(i);
}

// ---------------------------------------------------------------- error messages

namespace {

std::string DescribeTensor(Napi::Value v) {
  if (!v.IsNumber()) return v.IsObject() ? "object" : "not a Tensor";
  double id = v.As<Napi::Number>().DoubleValue();
  const at::Tensor* t = tensor_table::Find(id);
  if (t == nullptr) {
    if (tensor_table::IsForeign(id)) return "Tensor(of another thread)";
    if (tensor_table::LooksLikeHandle(id)) return "Tensor(disposed)";
    std::ostringstream os;
    os << id;
    return os.str();
  }
  std::ostringstream os;
  os << "Tensor" << t->sizes() << " " << c10::toString(t->scalar_type());
  if (!t->device().is_cpu()) os << " " << t->device();
  return os.str();
}

std::string DescribeValue(Napi::Value v, bool as_tensor, int depth) {
  std::ostringstream os;
  if (as_tensor && !v.IsArray()) return DescribeTensor(v);
  if (v.IsArray() && depth < 1) {
    Napi::Array arr = v.As<Napi::Array>();
    os << "[";
    for (uint32_t k = 0; k < arr.Length() && k < 8; ++k) os << (k ? ", " : "") << DescribeValue(arr.Get(k), as_tensor, depth + 1);
    if (arr.Length() > 8) os << ", …";
    os << "]";
    return os.str();
  }
  if (v.IsNumber()) {
    os << v.As<Napi::Number>().DoubleValue();
    return os.str();
  }
  if (v.IsString()) return "'" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsUndefined() || v.IsNull()) return "None";
  return v.IsArray() ? "[…]" : "object";
}

}  // namespace

std::string DescribeArgs(const Args& args) {
  size_t last = args.size();
  while (last > 0 && !args.has(last - 1)) --last;
  std::string out;
  for (size_t i = 0; i < last; ++i) out += (i ? ", " : "") + DescribeValue(args.raw(i), args.readAsTensor(i), 0);
  return out;
}

void ThrowOpError(const Args& args, const char* op, const std::string& why) {
  std::string message = why;
  // libtorch messages can end in newlines; keep the human part.
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  Napi::Error err = Napi::Error::New(args.env(), std::string(op) + "(" + DescribeArgs(args) + "): " + message);
  err.Set("op", Napi::String::New(args.env(), op));
  throw err;
}

// ---------------------------------------------------------------- runtime

namespace {

// An OpenBLAS function by name. Debian's libtorch does its BLAS through whatever provides
// libblas.so.3 (OpenBLAS when installed), and at::set_num_threads does not govern OpenBLAS's own
// pool. The library is a dependency of libtorch, loaded in the addon's local scope, so look it up
// by name; nullptr when the BLAS is not OpenBLAS.
void* OpenBlasSymbol(const char* name) {
  for (const char* lib : {"libopenblas.so.0", "libblas.so.3"}) {
    void* handle = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) continue;
    void* fn = dlsym(handle, name);
    dlclose(handle);
    if (fn != nullptr) return fn;
  }
  return nullptr;
}

void SetOpenBlasThreads(int n) {
  if (auto fn = reinterpret_cast<void (*)(int)>(OpenBlasSymbol("openblas_set_num_threads"))) fn(n);
}

// OpenBLAS's pool size: one for the whole process (libtorch's intra-op count is per thread under
// OpenMP). -1 when the BLAS is not OpenBLAS.
int OpenBlasThreads() {
  auto fn = reinterpret_cast<int (*)()>(OpenBlasSymbol("openblas_get_num_threads"));
  return fn != nullptr ? fn() : -1;
}

int CudaDeviceCount() { return at::hasCUDA() ? static_cast<int>(at::detail::getCUDAHooks().getNumGPUs()) : 0; }

// Name and total memory of each CUDA device, asked of the CUDA driver (libcuda.so.1) at run time:
// its C API is the same in every CUDA version, so neither the CPU build nor a CUDA build needs the
// CUDA headers for it. Driver ordinals are the runtime's (both honour CUDA_VISIBLE_DEVICES).
struct CudaDeviceInfo {
  std::string name;
  int64_t total_memory;
};

std::vector<CudaDeviceInfo> CudaDeviceInfos() {
  const int count = CudaDeviceCount();
  if (count == 0) return {};
  void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);  // kept loaded: libtorch uses it too
  if (driver == nullptr) throw std::runtime_error(std::string("cannot load the CUDA driver (libcuda.so.1): ") + dlerror());
  using InitFn = int (*)(unsigned int);
  using GetFn = int (*)(int*, int);
  using NameFn = int (*)(char*, int, int);
  using MemFn = int (*)(size_t*, int);
  auto init = reinterpret_cast<InitFn>(dlsym(driver, "cuInit"));
  auto get = reinterpret_cast<GetFn>(dlsym(driver, "cuDeviceGet"));
  auto name = reinterpret_cast<NameFn>(dlsym(driver, "cuDeviceGetName"));
  auto mem = reinterpret_cast<MemFn>(dlsym(driver, "cuDeviceTotalMem_v2"));
  if (init == nullptr || get == nullptr || name == nullptr || mem == nullptr) throw std::runtime_error("the CUDA driver (libcuda.so.1) lacks cuInit/cuDeviceGet/cuDeviceGetName/cuDeviceTotalMem_v2");
  if (int rc = init(0); rc != 0) throw std::runtime_error("cuInit failed with CUDA driver error " + std::to_string(rc));
  std::vector<CudaDeviceInfo> out;
  for (int i = 0; i < count; ++i) {
    int dev = 0;
    char buf[256] = {0};
    size_t bytes = 0;
    if (int rc = get(&dev, i); rc != 0) throw std::runtime_error("cuDeviceGet(" + std::to_string(i) + ") failed with CUDA driver error " + std::to_string(rc));
    if (name(buf, sizeof(buf) - 1, dev) != 0) std::snprintf(buf, sizeof(buf), "unknown");
    if (mem(&bytes, dev) != 0) bytes = 0;
    out.push_back({buf, static_cast<int64_t>(bytes)});
  }
  return out;
}

Napi::Value CopyToBuffer(Napi::Env env, const at::Tensor& t) {
  at::Tensor host = t.detach().to(at::kCPU).contiguous();
  size_t bytes = static_cast<size_t>(host.numel()) * host.element_size();
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
  if (bytes > 0) std::memcpy(buf.Data(), host.data_ptr(), bytes);
  return buf;
}

}  // namespace

void RegisterRuntime(Napi::Env env, Napi::Object exports) {
  Def(env, exports, "version", [](Args&) { return std::string(TORCH_VERSION); });
  Def(env, exports, "libtorchRoot", [](Args&) { return std::string(EMBTUNE_LIBTORCH_ROOT); });
  Def(env, exports, "compiledWithCuda", [](Args&) {
#ifdef EMBTUNE_CUDA
    return true;
#else
    return false;
#endif
  });
  Def(env, exports, "cudaDeviceCount", [](Args&) { return static_cast<int64_t>(CudaDeviceCount()); });
  // cudaDeviceProperties() → [{name, totalMemory}] per CUDA device ([] without CUDA).
  Def(env, exports, "cudaDeviceProperties", [](Args& a) -> Napi::Value {
    const auto infos = CudaDeviceInfos();
    Napi::Array out = Napi::Array::New(a.env(), infos.size());
    for (size_t i = 0; i < infos.size(); ++i) {
      Napi::Object o = Napi::Object::New(a.env());
      o.Set("name", infos[i].name);
      o.Set("totalMemory", static_cast<double>(infos[i].total_memory));
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  });
  Def(env, exports, "parallelInfo", [](Args&) { return at::get_parallel_info(); });
  Def(env, exports, "getNumThreads", [](Args&) { return static_cast<int64_t>(at::get_num_threads()); });
  Def(env, exports, "blasNumThreads", [](Args&) { return static_cast<int64_t>(OpenBlasThreads()); });
  Def(env, exports, "setNumThreads", [](Args& a) {
    int64_t n = a.i64(0);
    if (n < 1 || n > 65536) throw std::invalid_argument("setNumThreads needs 1 <= n <= 65536, got " + std::to_string(n));
    at::set_num_threads(static_cast<int>(n));
    SetOpenBlasThreads(static_cast<int>(n));
    return a.env().Undefined();
  });
  Def(env, exports, "manualSeed", [](Args& a) {
    uint64_t seed = static_cast<uint64_t>(a.i64(0));
    {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_current_seed(seed);
    }
    for (int i = 0; i < CudaDeviceCount(); ++i) {
      auto gen = at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_current_seed(seed);
    }
    return a.env().Undefined();
  });
  // torch.get_rng_state / set_rng_state: the CPU generator's state as a uint8 tensor, so that a
  // recomputation (gradient checkpointing) can replay the random draws (dropout) of a forward.
  // An optional device picks that device's default generator (torch.cuda.get_rng_state(i)):
  // dropout on a GPU draws from the GPU's generator, so a replay must restore that one.
  Def(env, exports, "getRngState", [](Args& a) {
    at::Generator gen = a.has(0) ? at::globalContext().defaultGenerator(a.device(0)) : at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    return gen.get_state();
  });
  Def(env, exports, "setRngState", [](Args& a) {
    at::Generator gen = a.has(1) ? at::globalContext().defaultGenerator(a.device(1)) : at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(a.tensor(0));
    return true;
  });
  // A test seam for Def's last-resort handler: throws something that is not a std::exception.
  Def(env, exports, "throwNonStdExceptionForTest", [](Args&) -> bool { throw 42; });
  Def(env, exports, "isGradEnabled", [](Args&) { return c10::GradMode::is_enabled(); });
  Def(env, exports, "setGradEnabled", [](Args& a) {
    c10::GradMode::set_enabled(a.boolean(0, true));
    return a.env().Undefined();
  });
  // setInferenceMode(on) → the previous setting (this thread's; attention_inference.cc).
  Def(env, exports, "setInferenceMode", [](Args& a) { return SetInferenceMode(a.boolean(0, false)); });
  Def(env, exports, "liveTensors", [](Args&) { return tensor_table::LiveCount(); });
  Def(env, exports, "reportedBytes", [](Args&) { return tensor_table::ReportedBytes(); });
  // heapBytes() → bytes malloc has handed out and not had back (glibc's mallinfo2: heap chunks in
  // use plus mmapped blocks), or -1 where that is not known. Unlike RSS it does not count free
  // memory the allocator keeps, so it measures what tensors and autograd actually hold.
  Def(env, exports, "heapBytes", [](Args&) -> double {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 info = mallinfo2();
    const auto large = CachingAllocatorStats();
    return static_cast<double>(info.uordblks + info.hblkhd + (large ? large->live_bytes : 0));
#else
    return -1;
#endif
  });
  // allocatorStats() → the caching CPU allocator's counters, or null under EMBTUNE_ALLOCATOR=malloc.
  Def(env, exports, "allocatorStats", [](Args& a) -> Napi::Value {
    const auto stats = CachingAllocatorStats();
    if (!stats) return a.env().Null();
    Napi::Object out = Napi::Object::New(a.env());
    out.Set("liveBytes", static_cast<double>(stats->live_bytes));
    out.Set("cachedBytes", static_cast<double>(stats->cached_bytes));
    out.Set("blocks", static_cast<double>(stats->blocks));
    out.Set("hits", static_cast<double>(stats->hits));
    out.Set("misses", static_cast<double>(stats->misses));
    return out;
  });
  Def(env, exports, "emptyCache", [](Args& a) {
    EmptyCpuCache();
    return a.env().Undefined();
  });
  // dispose(handle) → whether it freed something (false for a handle already freed).
  Def(env, exports, "dispose", [](Args& a) { return tensor_table::Release(a.env(), a.f64(0)); });
  Def(env, exports, "reportExternal", [](Args& a) {
    tensor_table::ReportExternal(a.env(), a.f64(0));
    return a.env().Undefined();
  });
  Def(env, exports, "isDisposed", [](Args& a) { return tensor_table::Find(a.f64(0)) == nullptr; });

  // fromBuffer(bytes: ArrayBuffer|TypedArray, shape, dtype): always a copy, so the JS side may
  // reuse, mutate or transfer its buffer and libtorch never points into the V8 heap.
  Def(env, exports, "fromBuffer", [](Args& a) {
    Napi::Value v = a.raw(0);
    const uint8_t* data = nullptr;
    size_t length = 0;
    if (v.IsTypedArray()) {
      Napi::TypedArray ta = v.As<Napi::TypedArray>();
      data = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      length = ta.ByteLength();
    } else if (v.IsArrayBuffer()) {
      Napi::ArrayBuffer ab = v.As<Napi::ArrayBuffer>();
      data = static_cast<const uint8_t*>(ab.Data());
      length = ab.ByteLength();
    } else {
      throw std::invalid_argument("argument 0 must be a TypedArray or ArrayBuffer");
    }
    std::vector<int64_t> shape = a.intList(1);
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(a.dtype(2)));
    size_t expected = static_cast<size_t>(t.numel()) * t.element_size();
    if (expected != length) {
      throw std::invalid_argument("buffer holds " + std::to_string(length) + " bytes but shape " + c10::str(t.sizes()) + " of " +
                                  c10::toString(t.scalar_type()) + " needs " + std::to_string(expected));
    }
    if (length > 0) std::memcpy(t.data_ptr(), data, length);
    return t;
  });
  Def(env, exports, "toBuffer", [](Args& a) { return CopyToBuffer(a.env(), a.tensor(0)); });
  // dataView(t): zero-copy. The ArrayBuffer aliases the tensor's storage and keeps a reference
  // to it until the buffer is collected, so the bytes stay valid even after dispose().
  Def(env, exports, "dataView", [](Args& a) -> Napi::Value {
    const at::Tensor& t = a.tensor(0);
    if (!t.device().is_cpu() || !t.is_contiguous()) throw std::invalid_argument("dataView needs a contiguous CPU tensor; call .contiguous() or .to('cpu') first");
    auto* keep = new at::Tensor(t.detach());
    size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
    if (bytes == 0) {
      delete keep;
      return Napi::ArrayBuffer::New(a.env(), 0);
    }
    return Napi::ArrayBuffer::New(a.env(), keep->data_ptr(), bytes, [](Napi::Env, void*, at::Tensor* held) { delete held; }, keep);
  });
}

}  // namespace embtune

namespace embtune {
namespace {
// libtorch's errors (c10::Error) capture and symbolise a C++ backtrace when constructed: about
// 17 ms each here, paid on every bad input though the messages embtune shows never include it
// (what_without_backtrace). An empty fetcher makes them cost microseconds; EMBTUNE_CPP_BACKTRACES=1
// keeps them. Process-wide, so set once across JS environments.
void QuietLibtorchBacktraces() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* keep = std::getenv("EMBTUNE_CPP_BACKTRACES");
    if (keep != nullptr && std::strcmp(keep, "1") == 0) return;
    c10::SetStackTraceFetcher(std::function<std::string()>([] { return std::string("(C++ backtrace off; EMBTUNE_CPP_BACKTRACES=1 shows it)"); }));
  });
}
}  // namespace
}  // namespace embtune

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  embtune::QuietLibtorchBacktraces();
  embtune::tensor_table::InitEnvironment(env);  // one table per JS environment (main thread, each worker)
  embtune::InstallCachingCpuAllocator();
  embtune::RegisterRuntime(env, exports);
  embtune::RegisterOps(env, exports);
  embtune::RegisterSearchOps(env, exports);
  embtune::RegisterLoraOps(env, exports);
  embtune::RegisterFusedOps(env, exports);
  embtune::RegisterDistributedOps(env, exports);  // torch.distributed: one process group per environment
  return exports;
}

NODE_API_MODULE(embtune_torch, InitModule)
