// The pool of tensor buffers: big blocks are reused (their pages stay mapped), every buffer is
// 64-byte aligned and writable over its whole size, small ones come from malloc.
#include "server/buffer_pool.h"

#include <cstdint>
#include <cstring>

#include "gtest/gtest.h"

namespace gradserve {
namespace {

bool Aligned64(const void* p) { return reinterpret_cast<uintptr_t>(p) % 64 == 0; }

TEST(BufferPoolTest, ABigBlockGivenBackIsReusedForTheNextCallOfItsSize) {
  char* first = AcquireBuffer(16 << 20);
  std::memset(first, 1, 16 << 20);  // writable over its whole size
  ReleaseBuffer(first);
  char* second = AcquireBuffer((16 << 20) - 1000);  // nearly the same size: the same block
  EXPECT_EQ(second, first);
  ReleaseBuffer(second);
}

TEST(BufferPoolTest, BlocksInUseAreDistinctAndAligned) {
  char* a = AcquireBuffer(3 << 20);
  char* b = AcquireBuffer(3 << 20);
  char* small = AcquireBuffer(100);
  EXPECT_NE(a, b);
  EXPECT_TRUE(Aligned64(a) && Aligned64(b) && Aligned64(small));
  std::memset(a, 2, 3 << 20);
  std::memset(b, 3, 3 << 20);
  std::memset(small, 4, 100);
  EXPECT_EQ(a[(3 << 20) - 1], 2);
  EXPECT_EQ(b[0], 3);
  ReleaseBuffer(a);
  ReleaseBuffer(b);
  ReleaseBuffer(small);
  ReleaseBuffer(nullptr);  // ignored
}

TEST(BufferPoolTest, ASmallerRequestTakesTheSmallestBlockThatFits) {
  char* big = AcquireBuffer(40 << 20);
  char* medium = AcquireBuffer(8 << 20);
  ReleaseBuffer(big);
  ReleaseBuffer(medium);
  char* again = AcquireBuffer(6 << 20);
  EXPECT_EQ(again, medium);
  char* next = AcquireBuffer(30 << 20);
  EXPECT_EQ(next, big);
  ReleaseBuffer(again);
  ReleaseBuffer(next);
}

}  // namespace
}  // namespace gradserve
