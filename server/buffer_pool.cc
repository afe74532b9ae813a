#include "server/buffer_pool.h"

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
// Capacities are rounded up to this, so that requests of nearly the same size share blocks.
constexpr size_t kGranule = size_t{1} << 20;

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
  const size_t capacity = (bytes + kGranule - 1) / kGranule * kGranule + (bytes == 0 ? kGranule : 0);
  char* block = static_cast<char*>(std::aligned_alloc(64, kHeader + capacity));
  if (block == nullptr) throw std::bad_alloc();
  __builtin_memcpy(block, &capacity, sizeof capacity);
  return block + kHeader;
}

void ReleaseBuffer(void* buffer) {
  if (buffer == nullptr) return;
  char* block = static_cast<char*>(buffer) - kHeader;
  const size_t capacity = Capacity(block);
  Pool& pool = ThePool();
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    if (pool.free_bytes + capacity <= kBufferPoolBytes) {
      pool.free.push_back(block);
      pool.free_bytes += capacity;
      return;
    }
  }
  std::free(block);
}

}  // namespace gradserve
