// A caching allocator for large CPU tensors, installed as libtorch's CPU allocator.
//
// Why: a training step allocates and frees the same large tensors (activations, their gradients,
// attention scores) layer after layer, step after step. Through glibc, blocks above the mmap
// threshold are mapped and unmapped every time (each page faulted and zeroed again), and blocks
// below it fragment the heap: in a 28-layer Qwen3 LoRA step, RSS ended ~3.5 GB above what was
// live (bench/train). Lowering the threshold cures the fragmentation but makes the step ~75%
// slower (page faults). So, like PyTorch's CUDA caching allocator: blocks of 1 MiB or more are
// mapped once, kept when freed, and handed out again for a request of the same size or up to twice
// smaller (best fit; a block more than twice too large is split, its rest kept). A request the cache
// cannot serve maps a new block, unless the footprint (live + cached) would pass 1.25× the most
// ever live at once: then cached blocks are unmapped to make room. The cache thus holds what the
// next step will ask for again, and peak RSS stays near peak use.
// Smaller tensors go to c10's own alloc_cpu.
//
// EMBTUNE_ALLOCATOR=malloc keeps libtorch's default allocator (and glibc's defaults);
// EMBTUNE_ALLOCATOR_HUGEPAGES=1 asks for transparent huge pages (off: with the kernel's default
// `defrag=madvise` a fault may compact memory synchronously, which cost more than it saved here);
// EMBTUNE_ALLOCATOR_SLACK is the fraction above peak use the footprint may reach (default 0.25);
// EMBTUNE_ALLOCATOR_CACHE_BYTES caps the bytes kept cached (default: no cap beyond the above).
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <sys/mman.h>
#include <torch/version.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "bind.h"
#include "cpu_allocator.h"

namespace embtune {
namespace {

constexpr size_t kCachedFrom = size_t{1} << 20;  // smaller requests: c10::alloc_cpu
constexpr size_t kGranule = size_t{64} << 10;    // block sizes are multiples of 64 KiB
constexpr size_t kHugePage = size_t{2} << 20;

size_t Slack(size_t peak_live);

bool UseHugePages() {
  static const bool on = [] {
    const char* text = std::getenv("EMBTUNE_ALLOCATOR_HUGEPAGES");
    return text != nullptr && std::string(text) == "1";
  }();
  return on;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  struct Block {
    size_t size;       // mapped
    size_t requested;  // by the tensor using it (0 while cached)
  };

  explicit CachingCpuAllocator(size_t cache_limit) : cache_limit_(cache_limit) {}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  c10::DataPtr allocate(size_t n) override { return Allocate(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
#else
  c10::DataPtr allocate(size_t n) const override { return Allocate(n); }
#endif

  c10::DeleterFnPtr raw_deleter() const override { return &Release; }

  AllocatorStats Stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {live_bytes_, cached_bytes_, blocks_.size(), hits_, misses_};
  }

  void EmptyCache() {
    std::lock_guard<std::mutex> lock(mutex_);
    UnmapCachedDownTo(0);
  }

 private:
  c10::DataPtr Allocate(size_t n) const {
    auto* self = const_cast<CachingCpuAllocator*>(this);
    void* p = n < kCachedFrom ? c10::alloc_cpu(n) : self->Take(n);
    return {p, p, &Release, c10::Device(c10::DeviceType::CPU)};
  }

  // A cached block of at least n bytes (split when more than twice that), or a newly mapped one.
  void* Take(size_t n) {
    const size_t size = (n + kGranule - 1) / kGranule * kGranule;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Best fit among the cached blocks: the smallest at least this large. One more than twice
      // too large is split (its pages are one mapping; each piece can be unmapped on its own):
      // the front serves this request, the rest stays cached — reuse without page faults, as
      // glibc's heap splits chunks, and no block held far above its use.
      auto it = free_.lower_bound(size);
      if (it != free_.end()) {
        void* p = it->second;
        const size_t block = it->first;
        free_.erase(it);
        cached_bytes_ -= block;
        if (block >= 2 * size) {
          void* rest = static_cast<char*>(p) + size;
          blocks_[rest] = Block{block - size, 0};
          free_.emplace(block - size, rest);
          cached_bytes_ += block - size;
          blocks_[p].size = size;
        }
        live_bytes_ += blocks_[p].size;
        Use(blocks_[p], n);
        ++hits_;
        return p;
      }
      ++misses_;
      // Mapping more would take the footprint past the most ever asked for at once (plus the
      // slack): unmap cached blocks (all smaller than this request) to make room.
      const size_t footprint = live_bytes_ + cached_bytes_ + size;
      const size_t allowed = peak_live_ + Slack(peak_live_);
      if (footprint > allowed) MakeRoom(footprint - allowed);
    }
    void* p = Map(size);
    if (p == nullptr) {
      EmptyCache();  // give the cache back to the system and try once more
      p = Map(size);
    }
    TORCH_CHECK(p != nullptr, "embtune CPU allocator: out of memory: cannot map ", size, " bytes (", Stats().live_bytes, " bytes in use)");
    std::lock_guard<std::mutex> lock(mutex_);
    blocks_[p] = Block{size, 0};
    live_bytes_ += size;
    Use(blocks_[p], n);
    return p;
  }

  void Use(Block& block, size_t requested) {
    block.requested = requested;
    live_requested_ += requested;
    peak_live_ = std::max(peak_live_, live_requested_);
  }

  static void* Map(size_t size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
#ifdef MADV_HUGEPAGE
    if (size >= kHugePage && UseHugePages()) madvise(p, size, MADV_HUGEPAGE);  // fewer, larger page faults
#endif
    return p;
  }

  static void Release(void* p);

  void Give(void* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = blocks_.find(p);
    if (it == blocks_.end()) {
      c10::free_cpu(p);  // a small block (c10::alloc_cpu)
      return;
    }
    live_bytes_ -= it->second.size;
    live_requested_ -= it->second.requested;
    it->second.requested = 0;
    cached_bytes_ += it->second.size;
    free_.emplace(it->second.size, p);
    if (cached_bytes_ > cache_limit_) UnmapCachedDownTo(cache_limit_);
  }

  // Unmaps at least `bytes` of cached blocks: first those too small to serve a request of
  // `bytes` (largest first), then the largest (mutex held).
  void MakeRoom(size_t bytes) {
    size_t freed = 0;
    while (freed < bytes && !free_.empty()) {
      auto it = free_.lower_bound(bytes);
      it = it != free_.begin() ? std::prev(it) : std::prev(free_.end());
      freed += it->first;
      Unmap(it);
    }
  }

  void Unmap(std::multimap<size_t, void*>::iterator it) {
    munmap(it->second, it->first);
    blocks_.erase(it->second);
    cached_bytes_ -= it->first;
    free_.erase(it);
  }

  // Unmaps the largest cached blocks until at most `limit` bytes stay cached (mutex held).
  void UnmapCachedDownTo(size_t limit) {
    while (cached_bytes_ > limit && !free_.empty()) Unmap(std::prev(free_.end()));
  }

  const size_t cache_limit_;
  std::mutex mutex_;
  std::unordered_map<void*, Block> blocks_;  // every mapped block, live or cached
  std::multimap<size_t, void*> free_;         // cached blocks by size
  size_t live_bytes_ = 0;      // in live blocks (their mapped sizes)
  size_t live_requested_ = 0;  // asked for by the tensors in them
  size_t peak_live_ = 0;       // the most ever asked for at once
  size_t cached_bytes_ = 0;
  size_t hits_ = 0;
  size_t misses_ = 0;
};

CachingCpuAllocator* g_allocator = nullptr;

void CachingCpuAllocator::Release(void* p) {
  if (p != nullptr) g_allocator->Give(p);
}

// How far above the most ever live the footprint may go before a miss unmaps cached blocks.
size_t Slack(size_t peak_live) {
  static const double fraction = [] {
    const char* text = std::getenv("EMBTUNE_ALLOCATOR_SLACK");
    return text != nullptr ? std::atof(text) : 0.25;
  }();
  static const size_t floor_bytes = [] {
    const char* text = std::getenv("EMBTUNE_ALLOCATOR_SLACK_MIN");
    return text != nullptr ? static_cast<size_t>(std::strtoull(text, nullptr, 10)) : size_t{0};
  }();
  return std::max(floor_bytes, static_cast<size_t>(static_cast<double>(peak_live) * fraction));
}

size_t CacheLimitFromEnv() {
  const char* text = std::getenv("EMBTUNE_ALLOCATOR_CACHE_BYTES");
  if (text == nullptr || *text == '\0') return SIZE_MAX;
  return static_cast<size_t>(std::strtoull(text, nullptr, 10));
}

}  // namespace

bool InstallCachingCpuAllocator() {
  const char* mode = std::getenv("EMBTUNE_ALLOCATOR");
  if (mode != nullptr && std::string(mode) == "malloc") return false;
  // Every JS environment (the main thread, each worker thread) initialises the addon, possibly at
  // the same time: install once. The allocator itself serialises its state under its mutex.
  static std::once_flag installed;
  std::call_once(installed, [] {
    g_allocator = new CachingCpuAllocator(CacheLimitFromEnv());  // lives as long as the process: tensors may outlive any owner
    c10::SetCPUAllocator(g_allocator, /*priority=*/1);
  });
  return c10::GetCPUAllocator() == g_allocator;
}

std::optional<AllocatorStats> CachingAllocatorStats() {
  if (g_allocator == nullptr || c10::GetCPUAllocator() != g_allocator) return std::nullopt;
  return g_allocator->Stats();
}

void EmptyCpuCache() {
  if (g_allocator != nullptr) g_allocator->EmptyCache();
}

}  // namespace embtune
