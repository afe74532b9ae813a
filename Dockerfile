# gradserve container image: a builder stage that compiles gradserve and runs the library's unit
# tests, and a slim runtime stage with only the shared libraries the two binaries load.
#
#   podman build --format=docker -t gradserve .    (or docker build -t gradserve .; podman's
#                                                   default OCI format drops the HEALTHCHECK)
#   podman run --rm -p 50051:50051 -p 8080:8080 gradserve
# Without a registry to pull debian:bookworm from, deploy/check.sh makes the base images locally.
#
# Portable: no -march. The row kernels are compiled for each instruction set (AVX-512, AVX2+FMA,
# SSE4, SSSE3, scalar; Google Highway) and the server picks the best one for the CPU it runs on
# at start-up (it logs which), so the image runs anywhere and at full speed on AVX-512 machines.

FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      g++ cmake ninja-build pkg-config \
      libeigen3-dev libabsl-dev libgtest-dev libgmock-dev libhwy-dev \
      libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc grpc-proto \
      libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev nlohmann-json3-dev libsimdjson-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY base base
COPY lib lib
COPY proto proto
COPY server server
COPY client client
COPY tests tests
# Only the two programs and the library's unit test programs are built (the integration tests
# need a running server and belong to scripts/test), and those programs are run directly: every
# test in them runs, while ctest would also list tests of programs not built here.
# The math tests run once per kernel the build machine's CPU supports.
RUN lib_tests="softmax_test cross_entropy_test cross_entropy_golden_test verify_test parallel_test kernel_dispatch_test verify_numeric_test verify_mistakes_test half_test half_rows_test half_golden_test" \
 && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGRADSERVE_BUILD_BENCHMARKS=OFF \
 && cmake --build build --target gradserve-server gradserve $lib_tests \
 && for t in $lib_tests; do GRADSERVE_SOURCE_DIR=/src "build/tests/$t" --gtest_brief=1 || exit 1; done \
 && strip build/server/gradserve-server build/client/gradserve

FROM debian:bookworm-slim
# The packages of every library `ldd` lists for the two binaries (libgrpc++1.51 brings
# libgrpc29, libssl3, libre2-9 and libc-ares2 with it; libcpp-httplib0.11 zlib and brotli).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libhwy1 libcpp-httplib0.11 libsimdjson14 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
# A numeric uid, so that Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gradserve
COPY --from=build /src/build/server/gradserve-server /src/build/client/gradserve /usr/local/bin/
USER 10001:10001
# 50051 gRPC; 8080 HTTP: /metrics, /healthz, /readyz, the JSON gateway /v1/* and the page /.
EXPOSE 50051 8080
# The server stops on SIGTERM by itself (refuses new calls, drains, exits 0), so it runs as PID 1
# without an init. Arguments after the image name are more server flags, e.g.
# --token_file=/run/secrets/token; the last --listen (or --http_listen) given wins.
ENTRYPOINT ["/usr/local/bin/gradserve-server", "--listen=0.0.0.0:50051", "--http_listen=0.0.0.0:8080"]
CMD []
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/gradserve", "--target=127.0.0.1:50051", "--timeout=2", "health"]
