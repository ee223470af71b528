#!/usr/bin/env bash
# Configures (once) and builds everything with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-asan/ (or $ASAN_BUILD), for the second pass of scripts/test.sh. Optimised (-O2: Eigen needs its inlining) so the
# accuracy tests stay within CI's time; frame pointers kept for readable reports. Clang 14, as the
# fuzzers (scripts/fuzz): it compiles this build about three times faster than g++ (adaround.cpp
# 26 s against 70-85 s with both sanitizers), and the build competes with the tests for 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${ASAN_BUILD:-build-asan}
if [ ! -f "$BUILD/build.ninja" ]; then
  flags="-O2 -g1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=None -DQE_BUILD_BENCH=OFF -DQE_BUILD_TRAINING=OFF \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags -DNDEBUG" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"
fi
# Arguments name the targets to build (scripts/test.sh's quick sanitizer pass); none builds everything.
targets=()
for target in "$@"; do targets+=(--target "$target"); done
cmake --build "$BUILD" -j "$(nproc)" "${targets[@]}"
