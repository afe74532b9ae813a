// Kernel benchmarks: the fused softmax cross-entropy gradient (fused_*) and the forward pass
// (forward_*: probabilities + loss) against memory floors that read and write the same bytes with
// the same threads: floor_* with ordinary stores (a plain copy), floor_stream_* with the
// non-temporal stores the kernels use for outputs of 4 MiB or more (the faster of the two, so the
// fair floor for those sizes). 1024/1000's 8 MB of logits and gradient stay in the last-level
// cache between iterations: there the exp work, not memory, sets the time.
//
//   build/tests/gradserve_kernel_bench --benchmark_filter='4096/1000' --benchmark_repetitions=5
//   build/tests/gradserve_kernel_bench --kernels=all     # also fused_f32@AVX2/... for each kernel
//   build/tests/gradserve_kernel_bench --threads=1       # every entry, floors too, on one thread
//
// The unsuffixed entries run the kernel dispatch picks for this CPU; --kernels=all (or a list,
// --kernels=AVX3,AVX2) adds entries that force each kernel, so one binary shows them side by side.
// Compare with the floors from the same run: the machines are shared and their bandwidth moves
// between runs.
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "benchmark/benchmark.h"
#include "lib/cross_entropy.h"
#include "lib/kernels/kernel_dispatch.h"
#include "lib/loss_pass.h"
#include "lib/parallel.h"
#include "lib/row_kernels.h"
#include "lib/softmax.h"

namespace gradserve {
namespace {

// --threads: the threads every entry may use (0: every core, as a server call does).
int g_threads = 0;
ExecContext Context() { return ExecContext{g_threads, {}}; }

template <typename T>
struct Inputs {
  Inputs(int64_t n, int64_t c) : logits(n, c), grad(n, c), labels(n) {
    std::mt19937_64 rng(1);
    std::normal_distribution<double> normal(0.0, 3.0);
    for (int64_t k = 0; k < logits.size(); ++k) logits.data()[k] = static_cast<T>(normal(rng));
    std::uniform_int_distribution<int64_t> label(0, c - 1);
    for (auto& y : labels) y = label(rng);
    // Touched now, so that no timed iteration pays the output's first-touch page faults.
    grad.setZero();
  }
  RowMatrix<T> logits, grad;
  std::vector<int64_t> labels;
};

// Runs a benchmark body with `kernel` forced ("" = dispatch's choice).
class KernelScope {
 public:
  KernelScope(benchmark::State& state, const std::string& kernel) : forced_(!kernel.empty()) {
    if (!forced_) return;
    const absl::Status s = ForceKernel(kernel);
    if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
  }
  ~KernelScope() {
    if (forced_) ForceKernel("").IgnoreError();
  }

 private:
  bool forced_;
};

// Forward + backward: mean loss and dL/dz for class-index targets, as a training step needs.
template <typename T>
void BM_Fused(benchmark::State& state, const std::string& kernel) {
  KernelScope scope(state, kernel);
  const int64_t n = state.range(0), c = state.range(1);
  Inputs<T> in(n, c);
  const LossProblem<T> problem{ConstView(in.logits), Targets<T>::ClassIndices(in.labels), {}};
  T loss;
  const LossOutputs<T> out{absl::MakeSpan(&loss, 1), View(in.grad)};
  for (auto _ : state) {
    auto s = CrossEntropy<T>(problem, {}, Method::kFused, out, Context());
    if (!s.ok()) state.SkipWithError(std::string(s.status().message()).c_str());
    benchmark::DoNotOptimize(loss);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * c * sizeof(T) * 2);
}

// The forward pass a Forward call makes: probabilities and the mean loss, in one LossPass.
template <typename T>
void BM_Forward(benchmark::State& state, const std::string& kernel) {
  KernelScope scope(state, kernel);
  const int64_t n = state.range(0), c = state.range(1);
  Inputs<T> in(n, c);
  const LossPassInputs<T> pass{ConstView(in.logits), Targets<T>::ClassIndices(in.labels)};
  T loss;
  const LossPassOutputs<T> out{View(in.grad), NoMatrix<T>(), absl::MakeSpan(&loss, 1)};
  for (auto _ : state) {
    const auto s = LossPass<T>(pass, out, Context());
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
    auto s = ParallelForRows(n, c, Context(), [&](int64_t b, int64_t e) {
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
    auto s = ParallelForRows(n, c, Context(), [&](int64_t b, int64_t e) {
      internal::ScaleRows(in.logits.row(b).data(), T(1), in.grad.row(b).data(), e - b, c, stream);
    });
    benchmark::DoNotOptimize(s);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * c * sizeof(T) * 2);
}

using Shape = std::vector<int64_t>;
const std::vector<Shape> kF32Shapes = {{4096, 1000}, {1024, 1000}, {1, 10}, {512, 32000}, {64, 128000}};
const std::vector<Shape> kForwardShapes = {{4096, 1000}};
const std::vector<Shape> kF64Shapes = {{4096, 1000}};

void Apply(benchmark::internal::Benchmark* b, const std::vector<Shape>& shapes) {
  for (const Shape& s : shapes) b->Args(s);
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

// The kernel benchmarks for `kernel` ("" = dispatch's choice, unsuffixed names).
void RegisterKernel(const std::string& kernel) {
  const std::string at = kernel.empty() ? "" : "@" + kernel;
  Apply(benchmark::RegisterBenchmark(("fused_f32" + at).c_str(), BM_Fused<float>, kernel), kF32Shapes);
  Apply(benchmark::RegisterBenchmark(("forward_f32" + at).c_str(), BM_Forward<float>, kernel),
        kForwardShapes);
  Apply(benchmark::RegisterBenchmark(("fused_f64" + at).c_str(), BM_Fused<double>, kernel), kF64Shapes);
}

void RegisterAll(const std::string& kernels) {
  RegisterKernel("");
  Apply(benchmark::RegisterBenchmark("floor_f32", BM_Floor<float>), kF32Shapes);
  Apply(benchmark::RegisterBenchmark("floor_stream_f32", BM_FloorStream<float>), kF32Shapes);
  Apply(benchmark::RegisterBenchmark("floor_f64", BM_Floor<double>), kF64Shapes);
  Apply(benchmark::RegisterBenchmark("floor_stream_f64", BM_FloorStream<double>), kF64Shapes);
  if (kernels.empty()) return;
  const std::vector<std::string> names =
      kernels == "all" ? SupportedKernels()
                       : std::vector<std::string>(absl::StrSplit(kernels, ',', absl::SkipEmpty()));
  for (const std::string& k : names) RegisterKernel(k);
}

}  // namespace
}  // namespace gradserve

int main(int argc, char** argv) {
  // --kernels and --threads are ours; everything else goes to Google Benchmark.
  std::string kernels;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (i > 0 && std::strncmp(argv[i], "--kernels=", 10) == 0) {
      kernels = argv[i] + 10;
    } else if (i > 0 && std::strncmp(argv[i], "--threads=", 10) == 0) {
      gradserve::g_threads = std::atoi(argv[i] + 10);
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 1;
  benchmark::AddCustomContext("kernel", gradserve::ChosenKernel());
  benchmark::AddCustomContext("threads",
                              std::to_string(gradserve::ResolveThreads(gradserve::g_threads)));
  gradserve::RegisterAll(kernels);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
