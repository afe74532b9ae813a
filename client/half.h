// The two 16-bit float formats of the wire (API revision 4): IEEE 754 binary16 (FLOAT16) and
// bfloat16 (the upper half of a float32), converted to and from double.
//
// Narrowing rounds once, to nearest with ties to even, straight from the double (rounding to
// float first and then to 16 bits would round twice and could land on the wrong neighbour);
// values beyond the largest finite half become ±Inf, NaN stays NaN, signed zeros and subnormals
// are kept. Widening is exact: every half value is a double.
//
//   uint16_t h = DoubleToHalf(0.1);        // 0x2e66
//   double back = HalfToDouble(h);          // 0.0999755859375
//   uint16_t b = DoubleToBfloat16(1.0 / 3); // 0x3eab
#ifndef GRADSERVE_CLIENT_HALF_H_
#define GRADSERVE_CLIENT_HALF_H_

#include <cstdint>

namespace gradserve::client {

uint16_t DoubleToHalf(double v);
uint16_t DoubleToBfloat16(double v);
double HalfToDouble(uint16_t bits);
double Bfloat16ToDouble(uint16_t bits);

}  // namespace gradserve::client

#endif  // GRADSERVE_CLIENT_HALF_H_
