#include "server/buffer_pool.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

namespace gradserve {
namespace {

// Each block starts with a header line holding its capacity; the caller's bytes follow it, so
// the pointer handed out stays 64-byte aligned and ReleaseBuffer needs no size.
constexpr size_t kHeader = 64;
// Blocks are mapped in huge pages of this size where the kernel offers them (transparent huge
// pages, "madvise" mode): a 16 MB block is then 8 page faults instead of 4,000, which matters
// for a block's first use (and on these VMs a fault costs tens of microseconds). Sizes are
// rounded up to it, so that requests of nearly the same size share blocks.
constexpr size_t kHugePage = size_t{2} << 20;

// A fresh block of kHeader + capacity bytes, huge-page aligned; its capacity in the header.
char* MapBlock(size_t bytes) {
  const size_t length = (kHeader + bytes + kHugePage - 1) / kHugePage * kHugePage;
  // Mapped one huge page longer and trimmed, so the block starts on a huge-page boundary.
  void* p = mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(p, aligned - start);
  const uintptr_t end = start + length + kHugePage, block_end = aligned + length;
  if (end > block_end) munmap(reinterpret_cast<void*>(block_end), end - block_end);
  char* block = reinterpret_cast<char*>(aligned);
  madvise(block, length, MADV_HUGEPAGE);  // advice only: without THP, ordinary pages
  const size_t capacity = length - kHeader;
  __builtin_memcpy(block, &capacity, sizeof capacity);
  return block;
}

void UnmapBlock(char* block, size_t capacity) { munmap(block, kHeader + capacity); }

// Below this a buffer comes from malloc (capacity 0 in its header marks it): a huge page for a
// few hundred kilobytes would waste most of it, and malloc's heap reuses such sizes well.
constexpr size_t kPooledBytes = size_t{1} << 20;

struct Pool {
  std::mutex mu;
  std::vector<char*> free;  // block starts (headers)
  size_t free_bytes = 0;
};

Pool& ThePool() {
  static Pool* pool = new Pool;  // never destroyed: slices may be released during exit
  return *pool;
}

size_t Capacity(const char* block) {
  size_t c;
  __builtin_memcpy(&c, block, sizeof c);
  return c;
}

}  // namespace

char* AcquireBuffer(size_t bytes) {
  if (bytes < kPooledBytes) {
    char* block = static_cast<char*>(std::aligned_alloc(64, kHeader + (bytes + 63) / 64 * 64));
    if (block == nullptr) throw std::bad_alloc();
    const size_t unpooled = 0;
    __builtin_memcpy(block, &unpooled, sizeof unpooled);
    return block + kHeader;
  }
  Pool& pool = ThePool();
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    // The smallest block that fits, so a big one is not taken by a smaller request.
    size_t best = pool.free.size();
    for (size_t k = 0; k < pool.free.size(); ++k) {
      const size_t c = Capacity(pool.free[k]);
      if (c >= bytes && (best == pool.free.size() || c < Capacity(pool.free[best]))) best = k;
    }
    if (best != pool.free.size()) {
      char* block = pool.free[best];
      pool.free[best] = pool.free.back();
      pool.free.pop_back();
      pool.free_bytes -= Capacity(block);
      return block + kHeader;
    }
  }
  return MapBlock(bytes) + kHeader;
}

void ReleaseBuffer(void* buffer) {
  if (buffer == nullptr) return;
  char* block = static_cast<char*>(buffer) - kHeader;
  const size_t capacity = Capacity(block);
  if (capacity == 0) {
    std::free(block);
    return;
  }
  Pool& pool = ThePool();
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    if (pool.free_bytes + capacity <= kBufferPoolBytes) {
      pool.free.push_back(block);
      pool.free_bytes += capacity;
      return;
    }
  }
  UnmapBlock(block, capacity);
}

}  // namespace gradserve
