#include "tensor_table.h"

#include <cmath>
#include <vector>

namespace embtune::tensor_table {
namespace {

// Handles start at 2^44 so that no small number (a scalar passed by mistake) is ever a handle.
constexpr double kHandleBase = 17592186044416.0;  // 2^44
constexpr uint64_t kSlotBits = 24;
constexpr uint64_t kSlotMask = (uint64_t{1} << kSlotBits) - 1;
constexpr uint64_t kGenerationMask = (uint64_t{1} << 28) - 1;  // keeps handles below 2^53

struct Slot {
  at::Tensor tensor;
  uint32_t generation = 0;
  int64_t reported_bytes = 0;
  bool used = false;
};

// One table per process. Handles are created and freed on the JS thread only.
std::vector<Slot> slots;
std::vector<uint32_t> free_slots;
int64_t live = 0;
int64_t reported_total = 0;

int64_t HostBytes(const at::Tensor& t) {
  if (!t.defined() || !t.device().is_cpu()) return 0;
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

bool Decode(double id, uint64_t* slot, uint64_t* generation) {
  if (!(id >= kHandleBase) || std::floor(id) != id || id >= 9007199254740992.0) return false;
  uint64_t bits = static_cast<uint64_t>(id - kHandleBase);
  *slot = bits & kSlotMask;
  *generation = bits >> kSlotBits;
  return *slot < slots.size();
}

Slot* Lookup(double id) {
  uint64_t slot = 0;
  uint64_t generation = 0;
  if (!Decode(id, &slot, &generation)) return nullptr;
  Slot& s = slots[slot];
  return s.used && s.generation == generation ? &s : nullptr;
}

}  // namespace

HandleId Add(Napi::Env env, at::Tensor t) {
  uint32_t index;
  if (!free_slots.empty()) {
    index = free_slots.back();
    free_slots.pop_back();
  } else {
    if (slots.size() > kSlotMask) throw std::runtime_error("too many live tensors (16,777,216); dispose() tensors or use tidy()");
    index = static_cast<uint32_t>(slots.size());
    slots.emplace_back();
  }
  Slot& s = slots[index];
  s.tensor = std::move(t);
  s.used = true;
  s.reported_bytes = 0;
  ++live;
  return kHandleBase + static_cast<double>((static_cast<uint64_t>(s.generation) << kSlotBits) | index);
}

void ReportExternal(Napi::Env env, double id) {
  Slot* s = Lookup(id);
  if (s == nullptr || s->reported_bytes > 0) return;
  s->reported_bytes = HostBytes(s->tensor);
  if (s->reported_bytes > 0) Napi::MemoryManagement::AdjustExternalMemory(env, s->reported_bytes);
  reported_total += s->reported_bytes;
}

const at::Tensor* Find(double id) {
  Slot* s = Lookup(id);
  return s ? &s->tensor : nullptr;
}

bool Release(Napi::Env env, double id) {
  Slot* s = Lookup(id);
  if (s == nullptr) return false;
  s->tensor = at::Tensor();
  s->used = false;
  s->generation = (s->generation + 1) & kGenerationMask;
  if (s->reported_bytes > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -s->reported_bytes);
  reported_total -= s->reported_bytes;
  s->reported_bytes = 0;
  free_slots.push_back(static_cast<uint32_t>(s - slots.data()));
  --live;
  return true;
}

bool LooksLikeHandle(double id) { return id >= kHandleBase && std::floor(id) == id && id < 9007199254740992.0; }

int64_t LiveCount() { return live; }

int64_t ReportedBytes() { return reported_total; }

}  // namespace embtune::tensor_table
