// Half precision against float32: the fused cross-entropy gradient (mean loss and dL/dz for
// class-index targets) and softmax, on one thread, for the same shapes. The half forms widen
// blocks of rows to float32, run the float32 kernel and round the outputs back, so the ratio
// half / float32 is the cost of the conversions (against half the bytes moved).
//
//   build/tests/gradserve_half_bench --benchmark_filter='256/4096' --benchmark_repetitions=3
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "lib/cross_entropy.h"
#include "lib/half_rows.h"
#include "lib/softmax.h"

namespace gradserve {
namespace {

struct Inputs {
  Inputs(int64_t n, int64_t c, HalfType t) : z32(n * c), z16(n * c), labels(n) {
    std::mt19937_64 rng(1);
    std::normal_distribution<double> normal(0.0, 3.0);
    for (size_t k = 0; k < z32.size(); ++k) {
      z16[k] = DoubleToHalf(t, normal(rng));
      z32[k] = HalfToFloat(t, z16[k]);
    }
    std::uniform_int_distribution<int64_t> label(0, c - 1);
    for (auto& y : labels) y = label(rng);
  }
  std::vector<float> z32;
  std::vector<uint16_t> z16;
  std::vector<int64_t> labels;
};

ExecContext OneThread() {
  ExecContext ctx;
  ctx.max_threads = 1;
  return ctx;
}

void BM_FusedF32(benchmark::State& state) {
  const int64_t n = state.range(0), c = state.range(1);
  Inputs in(n, c, HalfType::kBFloat16);
  std::vector<float> grad(n * c);
  float loss;
  const LossProblem<float> p{ConstMatrixMap<float>(in.z32.data(), n, c), Targets<float>::ClassIndices(in.labels), {}};
  for (auto _ : state) {
    benchmark::DoNotOptimize(CrossEntropy<float>(p, {}, Method::kFused,
                                                 {absl::MakeSpan(&loss, 1), MatrixMap<float>(grad.data(), n, c)}, OneThread()));
  }
  state.SetItemsProcessed(state.iterations() * n * c);
}

void BM_FusedHalf(benchmark::State& state, HalfType t) {
  const int64_t n = state.range(0), c = state.range(1);
  Inputs in(n, c, t);
  std::vector<uint16_t> grad(n * c);
  uint16_t loss;
  const HalfLossProblem p{t, HalfMatrix(in.z16.data(), n, c), HalfTargets::ClassIndices(in.labels), {}};
  for (auto _ : state) {
    benchmark::DoNotOptimize(HalfCrossEntropy(p, {}, Method::kFused,
                                              {absl::MakeSpan(&loss, 1), HalfMatrixOut(grad.data(), n, c)}, OneThread()));
  }
  state.SetItemsProcessed(state.iterations() * n * c);
}

void BM_SoftmaxF32(benchmark::State& state) {
  const int64_t n = state.range(0), c = state.range(1);
  Inputs in(n, c, HalfType::kBFloat16);
  std::vector<float> out(n * c);
  for (auto _ : state) {
    benchmark::DoNotOptimize(Softmax<float>(ConstMatrixMap<float>(in.z32.data(), n, c), MatrixMap<float>(out.data(), n, c),
                                            NoMatrix<float>(), OneThread()));
  }
  state.SetItemsProcessed(state.iterations() * n * c);
}

void BM_SoftmaxHalf(benchmark::State& state, HalfType t) {
  const int64_t n = state.range(0), c = state.range(1);
  Inputs in(n, c, t);
  std::vector<uint16_t> out(n * c);
  for (auto _ : state) {
    benchmark::DoNotOptimize(HalfSoftmax(t, HalfMatrix(in.z16.data(), n, c), HalfMatrixOut(out.data(), n, c),
                                         NoMatrix<uint16_t>(), OneThread()));
  }
  state.SetItemsProcessed(state.iterations() * n * c);
}

#define GRADSERVE_SHAPES ->Args({256, 4096})->Args({8, 50000})->Args({4096, 10})->Unit(benchmark::kMicrosecond)
BENCHMARK(BM_FusedF32) GRADSERVE_SHAPES;
BENCHMARK_CAPTURE(BM_FusedHalf, f16, HalfType::kFloat16) GRADSERVE_SHAPES;
BENCHMARK_CAPTURE(BM_FusedHalf, bf16, HalfType::kBFloat16) GRADSERVE_SHAPES;
BENCHMARK(BM_SoftmaxF32) GRADSERVE_SHAPES;
BENCHMARK_CAPTURE(BM_SoftmaxHalf, f16, HalfType::kFloat16) GRADSERVE_SHAPES;
BENCHMARK_CAPTURE(BM_SoftmaxHalf, bf16, HalfType::kBFloat16) GRADSERVE_SHAPES;

}  // namespace
}  // namespace gradserve

BENCHMARK_MAIN();
