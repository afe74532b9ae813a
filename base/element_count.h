// The number of elements of a shape: the product of its dimensions (1 for a scalar's []).
//
//   ElementCount(shape)                   // a shape already checked to fit (e.g. by the below)
//   CappedElementCount(shape, limit)      // an untrusted shape: never overflows
//
// `dims`: anything iterable giving integers (std::vector<int64_t>, absl::Span, a protobuf
// RepeatedField<int64_t>).
#ifndef GRADSERVE_BASE_ELEMENT_COUNT_H_
#define GRADSERVE_BASE_ELEMENT_COUNT_H_

#include <cstdint>

namespace gradserve {

// The product of `dims`. Only for shapes whose dimensions are non-negative and whose product is
// known to fit in int64_t (validated on the way in); otherwise use CappedElementCount.
template <typename Dims>
constexpr int64_t ElementCount(const Dims& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// The product of non-negative `dims` if it is at most `limit`, else limit + 1; 0 whenever a
// dimension is 0, however large the others. No intermediate product exceeds limit + 1, so it
// cannot overflow for any 0 <= limit < INT64_MAX. Callers reject negative dimensions first.
template <typename Dims>
constexpr int64_t CappedElementCount(const Dims& dims, int64_t limit) {
  for (int64_t d : dims) {
    if (d == 0) return 0;
  }
  int64_t n = 1;
  for (int64_t d : dims) n = n > limit / d ? limit + 1 : n * d;
  return n;
}

}  // namespace gradserve

#endif  // GRADSERVE_BASE_ELEMENT_COUNT_H_
