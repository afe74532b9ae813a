// Big uninitialised buffers for tensor bytes, reused from call to call.
//
// A fresh 16 MB block is 4,000 pages the kernel must fault in and zero on first touch, which on
// these virtual machines costs more than the math; a block handed back is kept (up to a bound)
// and given to the next call, whose pages are then already mapped. Blocks are 64-byte aligned
// and never zero-filled: every user writes all of its bytes before reading any. Buffers under
// 1 MiB come from malloc, whose heap serves such sizes well.
//
//   char* p = AcquireBuffer(bytes);
//   ... fill p ...
//   ReleaseBuffer(p);  // or hand it to a grpc::Slice whose destroy callback is ReleaseBuffer
#ifndef GRADSERVE_SERVER_BUFFER_POOL_H_
#define GRADSERVE_SERVER_BUFFER_POOL_H_

#include <cstddef>

namespace gradserve {

// A 64-byte aligned buffer of at least `bytes` (any size, 0 included).
char* AcquireBuffer(size_t bytes);

// Gives back a buffer from AcquireBuffer (nullptr is ignored). Thread-safe; takes void* so that
// it can be a slice's destroy callback.
void ReleaseBuffer(void* buffer);

// The bytes the pool keeps for reuse at most; blocks given back beyond it are freed. Enough for
// a request's gathered input and its output at the default 64 MiB message limit, so that even
// the biggest calls reuse their pages (glibc would mmap, fault in and unmap each block above
// 32 MiB on every call).
inline constexpr size_t kBufferPoolBytes = size_t{160} << 20;

}  // namespace gradserve

#endif  // GRADSERVE_SERVER_BUFFER_POOL_H_
