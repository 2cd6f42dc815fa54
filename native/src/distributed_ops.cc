// torch.distributed over libtorch's own c10d: a Gloo process group, rendezvous through a
// TCPStore (rank 0 hosts it, as torchrun's MASTER_ADDR/MASTER_PORT say) or a FileStore, and the
// collectives data-parallel training needs (all-reduce, all-gather, broadcast, barrier).
//
// Why these choices:
// - Every collective waits on its Work with the group's timeout, and Gloo's own operations run
//   under the same timeout, so a dead or stuck peer ends in an error that names the operation,
//   never in a hang. A c10d/Gloo exception becomes a JS Error "distributed.<op>(…): rank r of n: …".
// - The group belongs to the JS environment that created it (like the tensor table), through a
//   thread_local pointer and an environment cleanup hook: a worker thread never sees, races on or
//   outlives another environment's group.
// - Gloo headers come from libgloo-dev. build.mjs defines USE_C10D_GLOO only when it finds them;
//   without them the addon still loads and every function here throws an error saying so.
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

#include "bind.h"

namespace embtune {
namespace {

constexpr const char* kNoGloo =
    "this embtune addon was built without Gloo (torch.distributed needs it): install libgloo-dev "
    "(apt-get install -y libgloo-dev) and rebuild the addon with `npm run build:native`";

#ifdef USE_C10D_GLOO

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank = 0;
  int size = 1;
  std::chrono::milliseconds timeout{0};
};

// One per JS environment; see the file comment.
struct DistState {
  std::unique_ptr<Group> group;
};

thread_local DistState* current_state = nullptr;

DistState& State() {
  if (current_state == nullptr) throw std::runtime_error("torch.distributed was not initialised in this JS environment");
  return *current_state;
}

Group& Need(const char* op) {
  DistState& s = State();
  if (!s.group) {
    throw std::runtime_error(std::string("the default process group is not initialised; call initProcessGroup() before ") + op);
  }
  return *s.group;
}

std::string Where(const Group& g) { return "rank " + std::to_string(g.rank) + " of " + std::to_string(g.size) + ": "; }

// Waits for `work` under the group's timeout. Gloo's operations time out on their own at the same
// limit; this wait is the backstop, so that nothing blocks longer even if Gloo does not notice.
void Wait(const Group& g, const c10::intrusive_ptr<c10d::Work>& work) {
  bool finished = false;
  try {
    finished = work->wait(g.timeout);
  } catch (const std::exception& e) {
    if (!work->isCompleted()) {
      throw std::runtime_error(Where(g) + "timed out after " + std::to_string(g.timeout.count()) +
                               " ms waiting for the other ranks (one may have died, hung, or not made the same call)");
    }
    const std::string what = e.what();
    const bool peer_gone = what.find("closed by peer") != std::string::npos || what.find("reset by peer") != std::string::npos ||
                           what.find("Connection refused") != std::string::npos;
    throw std::runtime_error(Where(g) + (peer_gone ? "a peer rank is gone (died or closed its group): " : "") + what);
  }
  if (!finished) throw std::runtime_error(Where(g) + "the operation was aborted");
}

const at::Tensor& Collectible(const at::Tensor& t, const char* what) {
  if (!t.device().is_cpu()) throw std::invalid_argument(std::string("the Gloo backend works on CPU tensors; ") + what + " is on " + c10::str(t.device()));
  if (t.layout() != at::kStrided) throw std::invalid_argument(std::string(what) + " must be a dense (strided) tensor");
  if (!t.is_contiguous()) throw std::invalid_argument(std::string(what) + " must be contiguous (call .contiguous(), reduce that, and copy back)");
  return t;
}

c10d::ReduceOp ParseOp(const std::string& name) {
  if (name == "sum" || name == "avg") return c10d::ReduceOp::SUM;
  if (name == "product") return c10d::ReduceOp::PRODUCT;
  if (name == "min") return c10d::ReduceOp::MIN;
  if (name == "max") return c10d::ReduceOp::MAX;
  throw std::invalid_argument("unknown reduce op '" + name + "' (expected sum, avg, product, min or max)");
}

std::shared_ptr<::gloo::transport::Device> MakeDevice(const std::string& spec) {
  // "hostname:H" binds Gloo's TCP transport to the address H resolves to (127.0.0.1 on one
  // machine); "interface:I" to a network interface (GLOO_SOCKET_IFNAME); "default" to this
  // machine's hostname, falling back to loopback, as PyTorch does without GLOO_SOCKET_IFNAME.
  if (spec.rfind("hostname:", 0) == 0) return c10d::ProcessGroupGloo::createDeviceForHostname(spec.substr(9));
  if (spec.rfind("interface:", 0) == 0) return c10d::ProcessGroupGloo::createDeviceForInterface(spec.substr(10));
  if (spec == "default") return c10d::ProcessGroupGloo::createDefaultDevice();
  throw std::invalid_argument("unknown Gloo device '" + spec + "' (expected hostname:H, interface:I or default)");
}

#endif  // USE_C10D_GLOO

// Def with the user-facing name in its errors ("distributed.allReduce(…)").
template <typename Fn>
void DefDist(Napi::Env env, Napi::Object exports, const char* name, const char* shown, Fn fn) {
  Def(env, exports, name, fn, shown);
}

}  // namespace

void RegisterDistributedOps(Napi::Env env, Napi::Object exports) {
#ifdef USE_C10D_GLOO
  if (current_state == nullptr) {
    auto* state = new DistState();
    current_state = state;
    // Runs on this environment's thread when it exits: the group (its Gloo threads, the store's
    // server on rank 0) goes with the environment that made it.
    env.AddCleanupHook([state]() {
      if (current_state == state) current_state = nullptr;
      delete state;
    });
  }
#endif

  Def(env, exports, "distIsAvailable", [](Args&) {
#ifdef USE_C10D_GLOO
    return true;
#else
    return false;
#endif
  });

  // distInit(method 'tcp'|'file', hostOrPath, port, rank, worldSize, timeoutMs, device)
  DefDist(env, exports, "distInit", "distributed.initProcessGroup", [](Args& a) -> Napi::Value {
#ifdef USE_C10D_GLOO
    DistState& s = State();
    if (s.group) throw std::runtime_error("the default process group is already initialised (call destroyProcessGroup() first)");
    const std::string method = a.str(0);
    const std::string where = a.str(1);
    const int64_t port = a.i64(2);
    const int64_t rank = a.i64(3);
    const int64_t size = a.i64(4);
    const int64_t timeout_ms = a.i64(5);
    const std::string device = a.str(6);
    if (size < 1 || size > 65536) throw std::invalid_argument("world size must be in [1, 65536], got " + std::to_string(size));
    if (rank < 0 || rank >= size) throw std::invalid_argument("rank must be in [0, world size " + std::to_string(size) + "), got " + std::to_string(rank));
    if (timeout_ms < 1) throw std::invalid_argument("timeout must be at least 1 ms, got " + std::to_string(timeout_ms));
    const std::chrono::milliseconds timeout(timeout_ms);

    auto group = std::make_unique<Group>();
    const std::string who = "rank " + std::to_string(rank) + " of " + std::to_string(size) + ": ";
    // Rendezvous errors from c10d are terse ("Socket Timeout"); say what was being waited for.
    auto rethrow = [&](const char* phase, const std::exception& e) {
      const std::string what = e.what();
      throw std::runtime_error(who + phase + " (timeout " + std::to_string(timeout_ms) + " ms; are all " + std::to_string(size) +
                               " ranks started with the same rendezvous?): " + what.substr(0, what.find('\n')));
    };
    try {
      if (method == "tcp") {
        if (port < 1 || port > 65535) throw std::invalid_argument("master port must be in [1, 65535], got " + std::to_string(port));
        c10d::TCPStoreOptions opts;
        opts.port = static_cast<std::uint16_t>(port);
        opts.isServer = rank == 0;
        opts.numWorkers = static_cast<std::size_t>(size);
        opts.waitWorkers = true;
        opts.timeout = timeout;
        group->store = c10::make_intrusive<c10d::TCPStore>(where, opts);
      } else if (method == "file") {
        group->store = c10::make_intrusive<c10d::FileStore>(where, static_cast<int>(size));
        group->store->setTimeout(timeout);
      } else {
        throw std::invalid_argument("unknown rendezvous '" + method + "' (expected tcp or file)");
      }
    } catch (const std::invalid_argument&) {
      throw;
    } catch (const std::exception& e) {
      rethrow(method == "tcp" ? "the TCP store rendezvous failed" : "the file store rendezvous failed", e);
    }
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    opts->devices.push_back(MakeDevice(device));
    try {
      group->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(group->store, static_cast<int>(rank), static_cast<int>(size), opts);
    } catch (const std::exception& e) {
      rethrow("connecting the Gloo process group failed", e);
    }
    group->rank = static_cast<int>(rank);
    group->size = static_cast<int>(size);
    group->timeout = timeout;
    s.group = std::move(group);
    return a.env().Undefined();
#else
    throw std::runtime_error(kNoGloo);
#endif
  });

  DefDist(env, exports, "distIsInitialized", "distributed.isInitialized", [](Args&) {
#ifdef USE_C10D_GLOO
    return current_state != nullptr && current_state->group != nullptr;
#else
    return false;
#endif
  });

  // distInfo() → [rank, worldSize]
  DefDist(env, exports, "distInfo", "distributed.getRank", [](Args& a) -> Napi::Value {
#ifdef USE_C10D_GLOO
    const Group& g = Need("getRank() or getWorldSize()");
    Napi::Array out = Napi::Array::New(a.env(), 2);
    out.Set(uint32_t{0}, Napi::Number::New(a.env(), g.rank));
    out.Set(uint32_t{1}, Napi::Number::New(a.env(), g.size));
    return out;
#else
    throw std::runtime_error(kNoGloo);
#endif
  });

  // distAllReduce(t, op): in place, as torch.distributed.all_reduce; 'avg' sums and divides.
  DefDist(env, exports, "distAllReduce", "distributed.allReduce", [](Args& a) -> Napi::Value {
#ifdef USE_C10D_GLOO
    // Arguments first, so that an error message describes them whatever goes wrong next.
    at::Tensor t = Collectible(a.tensor(0), "the tensor");
    const std::string op = a.has(1) ? a.str(1) : "sum";
    const Group& g = Need("allReduce()");
    c10d::AllreduceOptions opts;
    opts.reduceOp = ParseOp(op);
    if (op == "avg" && !at::isFloatingType(t.scalar_type())) throw std::invalid_argument("op 'avg' needs a floating-point tensor, got " + std::string(c10::toString(t.scalar_type())));
    std::vector<at::Tensor> tensors{t};
    Wait(g, g.pg->allreduce(tensors, opts));
    if (op == "avg") t.div_(g.size);
    return a.env().Undefined();
#else
    throw std::runtime_error(kNoGloo);
#endif
  });

  // distAllGather(t) → one new tensor per rank, in rank order.
  DefDist(env, exports, "distAllGather", "distributed.allGather", [](Args& a) -> Napi::Value {
#ifdef USE_C10D_GLOO
    // Gloo needs a contiguous input; a copy of a strided view serves (the outputs are new).
    std::vector<at::Tensor> inputs{a.tensor(0).detach().contiguous()};
    Collectible(inputs[0], "the tensor");
    const Group& g = Need("allGather()");
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < g.size; ++r) outputs[0].push_back(at::empty_like(inputs[0], at::MemoryFormat::Contiguous));
    Wait(g, g.pg->allgather(outputs, inputs));
    return ToJs(a.env(), outputs[0]);
#else
    throw std::runtime_error(kNoGloo);
#endif
  });

  // distBroadcast(t, src): in place; every rank ends with src's values.
  DefDist(env, exports, "distBroadcast", "distributed.broadcast", [](Args& a) -> Napi::Value {
#ifdef USE_C10D_GLOO
    at::Tensor t = Collectible(a.tensor(0), "the tensor");
    const int64_t src = a.i64(1);
    const Group& g = Need("broadcast()");
    if (src < 0 || src >= g.size) throw std::invalid_argument("src must be a rank in [0, " + std::to_string(g.size) + "), got " + std::to_string(src));
    c10d::BroadcastOptions opts;
    opts.rootRank = src;
    opts.rootTensor = 0;
    std::vector<at::Tensor> tensors{t};
    Wait(g, g.pg->broadcast(tensors, opts));
    return a.env().Undefined();
#else
    throw std::runtime_error(kNoGloo);
#endif
  });

  DefDist(env, exports, "distBarrier", "distributed.barrier", [](Args& a) -> Napi::Value {
#ifdef USE_C10D_GLOO
    const Group& g = Need("barrier()");
    Wait(g, g.pg->barrier());
    return a.env().Undefined();
#else
    throw std::runtime_error(kNoGloo);
#endif
  });

  // distStoreAdd(key, delta) → the key's value after adding delta: c10d Store::add on the group's
  // rendezvous store, atomic across every process using it (0 before the first add), under the
  // store's timeout. Lets workers claim work items dynamically (embed --claim-shards).
  DefDist(env, exports, "distStoreAdd", "distributed.storeAdd", [](Args& a) -> Napi::Value {
#ifdef USE_C10D_GLOO
    const std::string key = a.str(0);
    const int64_t delta = a.i64(1);
    const Group& g = Need("storeAdd()");
    if (key.rfind("embtune/", 0) != 0) throw std::invalid_argument("store keys must start with 'embtune/' (the others are c10d's and Gloo's), got '" + key + "'");
    return ToJs(a.env(), g.store->add(key, delta));
#else
    throw std::runtime_error(kNoGloo);
#endif
  });

  // distDestroy() → whether there was a group to destroy.
  DefDist(env, exports, "distDestroy", "distributed.destroyProcessGroup", [](Args&) {
#ifdef USE_C10D_GLOO
    DistState& s = State();
    const bool had = s.group != nullptr;
    s.group.reset();  // joins Gloo's threads; rank 0 stops the store's server
    return had;
#else
    return false;
#endif
  });
}

}  // namespace embtune
