// Kernel benchmarks: the fused softmax cross-entropy gradient against memory floors that read
// and write the same bytes with the same threads: floor_* with ordinary stores (a plain copy),
// floor_stream_* with the non-temporal stores the kernels use for outputs of 4 MiB or more (the
// faster of the two, so the fair floor for those sizes).
//
//   build/tests/gradserve_kernel_bench --benchmark_filter='4096/1000' --benchmark_repetitions=5
//
// Compare fused_f32/4096/1000 with the floors from the same run: the machines are shared and
// their bandwidth moves between runs.
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "lib/cross_entropy.h"
#include "lib/parallel.h"
#include "lib/row_kernels.h"

namespace gradserve {
namespace {

template <typename T>
struct Inputs {
  Inputs(int64_t n, int64_t c) : logits(n, c), grad(n, c), labels(n) {
    std::mt19937_64 rng(1);
    std::normal_distribution<double> normal(0.0, 3.0);
    for (int64_t k = 0; k < logits.size(); ++k) logits.data()[k] = static_cast<T>(normal(rng));
    std::uniform_int_distribution<int64_t> label(0, c - 1);
    for (auto& y : labels) y = label(rng);
  }
  RowMatrix<T> logits, grad;
  std::vector<int64_t> labels;
};

// Forward + backward: mean loss and dL/dz for class-index targets, as a training step needs.
template <typename T>
void BM_Fused(benchmark::State& state) {
  const int64_t n = state.range(0), c = state.range(1);
  Inputs<T> in(n, c);
  const LossProblem<T> problem{ConstView(in.logits), Targets<T>::ClassIndices(in.labels), {}};
  T loss;
  const LossOutputs<T> out{absl::MakeSpan(&loss, 1), View(in.grad)};
  for (auto _ : state) {
    auto s = CrossEntropy<T>(problem, {}, Method::kFused, out, ExecContext{});
    if (!s.ok()) state.SkipWithError(std::string(s.status().message()).c_str());
    benchmark::DoNotOptimize(loss);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * c * sizeof(T) * 2);
}

// The floor: read the logits, write the gradient, row by row on the same threads.
template <typename T>
void BM_Floor(benchmark::State& state) {
  const int64_t n = state.range(0), c = state.range(1);
  Inputs<T> in(n, c);
  for (auto _ : state) {
    auto s = ParallelForRows(n, c, ExecContext{}, [&](int64_t b, int64_t e) {
      in.grad.middleRows(b, e - b) = in.logits.middleRows(b, e - b);
    });
    benchmark::DoNotOptimize(s);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * c * sizeof(T) * 2);
}

// The floor with non-temporal stores: each row copied (times 1) as the kernels write theirs.
template <typename T>
void BM_FloorStream(benchmark::State& state) {
  const int64_t n = state.range(0), c = state.range(1);
  Inputs<T> in(n, c);
  const bool stream = internal::StreamsOutput<T>(n * c);
  for (auto _ : state) {
    auto s = ParallelForRows(n, c, ExecContext{}, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        internal::ScaleInto(in.logits.row(i).data(), T(1), in.grad.row(i).data(), c, stream);
      }
      internal::VecOps<T>::StreamFence();
    });
    benchmark::DoNotOptimize(s);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * c * sizeof(T) * 2);
}

void Shapes(benchmark::internal::Benchmark* b) {
  b->Args({4096, 1000})->Args({1, 10})->Args({512, 32000})->Unit(benchmark::kMicrosecond)->UseRealTime();
}

BENCHMARK(BM_Fused<float>)->Name("fused_f32")->Apply(Shapes);
BENCHMARK(BM_Floor<float>)->Name("floor_f32")->Apply(Shapes);
BENCHMARK(BM_FloorStream<float>)->Name("floor_stream_f32")->Apply(Shapes);
BENCHMARK(BM_Fused<double>)->Name("fused_f64")->Args({4096, 1000})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Floor<double>)->Name("floor_f64")->Args({4096, 1000})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_FloorStream<double>)->Name("floor_stream_f64")->Args({4096, 1000})->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace gradserve

BENCHMARK_MAIN();
