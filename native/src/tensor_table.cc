#include "tensor_table.h"

#include <cmath>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace embtune::tensor_table {
namespace {

// Handles start at 2^44 so that no small number (a scalar passed by mistake) is ever a handle,
// and stay below 2^53 so that a JS number holds them exactly: 22 slot bits, 6 tag bits and
// 24 generation bits above the base.
constexpr double kHandleBase = 17592186044416.0;  // 2^44
constexpr uint64_t kSlotBits = 22;
constexpr uint64_t kSlotMask = (uint64_t{1} << kSlotBits) - 1;
constexpr uint64_t kTagBits = 6;
constexpr uint64_t kTagMask = (uint64_t{1} << kTagBits) - 1;
constexpr uint64_t kGenerationMask = (uint64_t{1} << 24) - 1;

struct Slot {
  at::Tensor tensor;
  uint32_t generation = 0;
  int64_t reported_bytes = 0;
  bool used = false;
};

struct Table {
  uint32_t tag = 0;
  std::vector<Slot> slots;
  std::vector<uint32_t> free_slots;
  int64_t live = 0;
  int64_t reported_total = 0;
};

// Tags of the tables alive now (one per environment), so that two live environments never
// share one: 64 at most at once.
std::mutex tags_mutex;
uint64_t tags_in_use = 0;

// The table of the environment running on this thread (each Node environment has its own thread).
thread_local Table* current = nullptr;

uint32_t TakeTag() {
  std::lock_guard<std::mutex> lock(tags_mutex);
  for (uint32_t tag = 0; tag <= kTagMask; ++tag) {
    if ((tags_in_use & (uint64_t{1} << tag)) == 0) {
      tags_in_use |= uint64_t{1} << tag;
      return tag;
    }
  }
  throw std::runtime_error("the embtune addon is loaded in more than 64 threads at once");
}

void FreeTable(Napi::Env, Table* table) {
  {
    std::lock_guard<std::mutex> lock(tags_mutex);
    tags_in_use &= ~(uint64_t{1} << table->tag);
  }
  if (current == table) current = nullptr;
  delete table;  // frees every tensor the environment still held
}

Table& Current() {
  if (current == nullptr) throw std::runtime_error("this thread has no tensor table: the embtune addon was not initialised in its JS environment");
  return *current;
}

int64_t HostBytes(const at::Tensor& t) {
  if (!t.defined() || !t.device().is_cpu()) return 0;
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

struct Decoded {
  uint64_t slot;
  uint64_t tag;
  uint64_t generation;
};

bool Decode(double id, Decoded* out) {
  if (!LooksLikeHandle(id)) return false;
  uint64_t bits = static_cast<uint64_t>(id - kHandleBase);
  out->slot = bits & kSlotMask;
  out->tag = (bits >> kSlotBits) & kTagMask;
  out->generation = bits >> (kSlotBits + kTagBits);
  return true;
}

Slot* Lookup(double id) {
  Decoded d{};
  if (current == nullptr || !Decode(id, &d) || d.tag != current->tag || d.slot >= current->slots.size()) return nullptr;
  Slot& s = current->slots[d.slot];
  return s.used && s.generation == d.generation ? &s : nullptr;
}

}  // namespace

void InitEnvironment(Napi::Env env) {
  if (current != nullptr) return;
  auto* table = new Table();
  table->tag = TakeTag();
  env.SetInstanceData<Table, FreeTable>(table);
  current = table;
}

HandleId Add(Napi::Env, at::Tensor t) {
  Table& table = Current();
  uint32_t index;
  if (!table.free_slots.empty()) {
    index = table.free_slots.back();
    table.free_slots.pop_back();
  } else {
    if (table.slots.size() > kSlotMask) throw std::runtime_error("too many live tensors (4,194,304); dispose() tensors or use tidy()");
    index = static_cast<uint32_t>(table.slots.size());
    table.slots.emplace_back();
  }
  Slot& s = table.slots[index];
  s.tensor = std::move(t);
  s.used = true;
  s.reported_bytes = 0;
  ++table.live;
  const uint64_t high = (static_cast<uint64_t>(s.generation) << kTagBits) | table.tag;
  return kHandleBase + static_cast<double>((high << kSlotBits) | index);
}

void ReportExternal(Napi::Env env, double id) {
  Slot* s = Lookup(id);
  if (s == nullptr || s->reported_bytes > 0) return;
  s->reported_bytes = HostBytes(s->tensor);
  if (s->reported_bytes > 0) Napi::MemoryManagement::AdjustExternalMemory(env, s->reported_bytes);
  current->reported_total += s->reported_bytes;
}

const at::Tensor* Find(double id) {
  Slot* s = Lookup(id);
  return s ? &s->tensor : nullptr;
}

bool Release(Napi::Env env, double id) {
  Slot* s = Lookup(id);
  if (s == nullptr) return false;
  Table& table = *current;
  s->tensor = at::Tensor();
  s->used = false;
  s->generation = (s->generation + 1) & kGenerationMask;
  if (s->reported_bytes > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -s->reported_bytes);
  table.reported_total -= s->reported_bytes;
  s->reported_bytes = 0;
  table.free_slots.push_back(static_cast<uint32_t>(s - table.slots.data()));
  --table.live;
  return true;
}

bool LooksLikeHandle(double id) { return id >= kHandleBase && std::floor(id) == id && id < 9007199254740992.0; }

bool IsForeign(double id) {
  Decoded d{};
  return current != nullptr && Decode(id, &d) && d.tag != current->tag;
}

int64_t LiveCount() { return current ? current->live : 0; }

int64_t ReportedBytes() { return current ? current->reported_total : 0; }

}  // namespace embtune::tensor_table
