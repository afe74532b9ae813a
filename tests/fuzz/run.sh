#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang-14; coverage + ASan + UBSan, see math_entry.h and
# request_entry.h) in their own build directory, replays the committed regressions, then runs each
# target for a smoke time. Any crash, sanitizer report, leak, timeout or property failure fails it.
#   tests/fuzz/run.sh [seconds per target]      (default 60)
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (default 2), FUZZ_TARGETS (default
# "request_fuzzer math_fuzzer"), FUZZ_WORK_DIR (new corpus entries and crash artifacts; default
# $FUZZ_BUILD_DIR/work). Needs the packages scripts/setup installs, plus the three below.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
build_dir="${FUZZ_BUILD_DIR:-build-fuzz}"
work_dir="${FUZZ_WORK_DIR:-$build_dir/work}"
targets=(${FUZZ_TARGETS:-request_fuzzer math_fuzzer})

# libFuzzer itself is in libclang-rt-14-dev (libclang_rt.fuzzer-x86_64.a).
packages=(clang-14 libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "fuzz: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 -DGRADSERVE_FUZZ=ON -DGRADSERVE_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build_dir" -j "${FUZZ_JOBS:-2}" --target "${targets[@]}"

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
status=0
for t in "${targets[@]}"; do
  bin="$build_dir/tests/fuzz/$t"
  seed="tests/fuzz/corpus/$t"
  regressions="tests/fuzz/regressions/$t"
  mkdir -p "$work_dir/corpus/$t" "$work_dir/artifacts/$t"
  log="$work_dir/$t.log"
  # Every target keeps at least one regression input; an empty replay would prove nothing.
  if ! [ -d "$regressions" ] || [ -z "$(ls -A "$regressions")" ]; then
    echo "fuzz: $t has no regression inputs in $regressions"; status=1; continue
  fi
  if ! [ -d "$seed" ] || [ -z "$(ls -A "$seed")" ]; then
    echo "fuzz: $t has no seed corpus in $seed"; status=1; continue
  fi
  "$bin" -runs=0 "$regressions" >"$log.regressions" 2>&1 || {
    echo "fuzz: $t fails on a committed regression input:"; tail -40 "$log.regressions"; status=1; continue; }
  echo "fuzz: $t for ${seconds} s"
  if "$bin" "$work_dir/corpus/$t" "$seed" -max_total_time="$seconds" -timeout=20 \
      -rss_limit_mb=2560 -max_len=4096 -print_final_stats=1 \
      -artifact_prefix="$work_dir/artifacts/$t/" >"$log" 2>&1; then
    { grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1
      grep -E 'stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log"
    } | sed "s/^/fuzz: $t: /" || true
  else
    echo "fuzz: $t FAILED (log $log, inputs in $work_dir/artifacts/$t/):"
    grep -E -A30 '^(==[0-9]+==ERROR|SUMMARY|[a-z_]+_fuzzer: )|runtime error' "$log" | head -60
    status=1
  fi
done
exit $status
