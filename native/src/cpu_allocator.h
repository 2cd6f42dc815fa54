// The caching CPU allocator (cpu_allocator.cc).
#pragma once

#include <cstddef>
#include <optional>

namespace embtune {

struct AllocatorStats {
  size_t live_bytes;    // in large blocks handed out and not yet freed
  size_t cached_bytes;  // in large blocks freed and kept for reuse
  size_t blocks;        // large blocks mapped (live or cached)
  size_t hits;          // large requests served from the cache
  size_t misses;        // large requests that mapped a new block
};

// Installs it as libtorch's CPU allocator unless EMBTUNE_ALLOCATOR=malloc; whether it is in use.
bool InstallCachingCpuAllocator();
// Its counters, if it is the allocator in use.
std::optional<AllocatorStats> CachingAllocatorStats();
// Unmaps every cached block.
void EmptyCpuCache();

}  // namespace embtune
