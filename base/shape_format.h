// Shapes in messages, bounded: a shape comes from the caller and can have any rank (a 0.6 MB
// request can carry 200,000 dimensions), and a status message must fit in gRPC's trailers. Up to
// kShapeEdgeItems · 2 dimensions print in full, "[2, 3]"; longer shapes keep their first and last
// kShapeEdgeItems dimensions, as numpy elides long arrays, and state the rank:
// "[1, 1, 1, ..., 1, 1, 1] (rank 200000)". Format only when reporting an error: it allocates.
//
//   FormatShape(std::vector<int64_t>{2, 3})   // "[2, 3]"
//   FormatShape(tensor.shape())               // a protobuf RepeatedField<int64_t> works too
#ifndef GRADSERVE_BASE_SHAPE_FORMAT_H_
#define GRADSERVE_BASE_SHAPE_FORMAT_H_

#include <cstddef>
#include <string>

namespace gradserve {

inline constexpr size_t kShapeEdgeItems = 3;

// `dims`: anything with size() and operator[] giving integers.
template <typename Dims>
std::string FormatShape(const Dims& dims) {
  const size_t rank = static_cast<size_t>(dims.size());
  const bool elide = rank > 2 * kShapeEdgeItems;
  std::string out = "[";
  for (size_t k = 0; k < rank; ++k) {
    if (elide && k == kShapeEdgeItems) {
      out += "..., ";
      k = rank - kShapeEdgeItems;
    }
    out += std::to_string(dims[k]);
    if (k + 1 < rank) out += ", ";
  }
  out += "]";
  if (elide) out += " (rank " + std::to_string(rank) + ")";
  return out;
}

}  // namespace gradserve

#endif  // GRADSERVE_BASE_SHAPE_FORMAT_H_
