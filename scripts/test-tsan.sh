#!/usr/bin/env bash
# The window and session tests under ThreadSanitizer, in build-tsan/ (or $TSAN_BUILD):
#   scripts/test-tsan.sh [TEST...]     (default: every program below)
# Qt itself is not instrumented: tests/sanitizers/tsan.supp silences reports whose frames are all
# inside Qt's own libraries (its thread pool and event dispatcher synchronise in code TSan cannot
# see); a race with one of our frames in it is never suppressed (the one exception, a lock-order
# inversion between two of GDAL's own mutexes under cv::imwrite, is explained in tsan.supp).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${TSAN_BUILD:-build-tsan}
TESTS=(tst_config_document tst_config_edits tst_main_window tst_one_study tst_window_stress tst_window_repairs
       tst_window_bad_input tst_charts tst_compare tst_precision_views tst_window_lessons)
if [ ! -f "$BUILD/build.ninja" ]; then
  flags="-O1 -g1 -fsanitize=thread -fno-omit-frame-pointer"
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=None -DQE_BUILD_TRAINING=OFF -DCMAKE_CXX_FLAGS="$flags -DNDEBUG" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread"
fi
cmake --build "$BUILD" -j "$(nproc)" --target "${TESTS[@]}" quantexplorer-cli
export QT_QPA_PLATFORM=offscreen
# One OpenMP thread: libgomp's barriers are invisible to TSan (it is not instrumented), so its
# worker threads would look racy; the threads under test are the GUI thread and the session's worker.
export OMP_NUM_THREADS=1
# Everything runs about ten times slower under TSan: the tests' waits stretch with it.
export QE_TEST_TIME_SCALE=${QE_TEST_TIME_SCALE:-10}
export QTEST_FUNCTION_TIMEOUT=${QTEST_FUNCTION_TIMEOUT:-3000000}  # QtTest's own limit per test function (ms)
# die_after_fork=0: tests that run the CLI fork a child that execs at once (QProcess); TSan would
# otherwise kill the child for starting a thread after a multi-threaded fork.
export TSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/tsan.supp halt_on_error=1 second_deadlock_stack=1 die_after_fork=0"
# Each program directly rather than through ctest: the tests' ctest timeouts (15-20 minutes) are
# for normal builds, and a window test runs 10-20 times longer under TSan.
cd "$BUILD/tests"
failed=()
for t in "${TESTS[@]}"; do
  [ $# -gt 0 ] && [[ " $* " != *" $t "* ]] && continue  # only the programs named, when any are
  start=$(date +%s)
  if timeout 5400 "./$t"; then
    echo "== $t passed under TSan in $(( $(date +%s) - start )) s"
  else
    echo "== $t FAILED under TSan after $(( $(date +%s) - start )) s"
    failed+=("$t")
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "failed under ThreadSanitizer: ${failed[*]}"; exit 1; }
