#!/usr/bin/env bash
# One command for the whole test suite: installs what is missing (as root), builds, runs ctest;
# then runs the test programs again built with AddressSanitizer + UndefinedBehaviorSanitizer in
# build-asan/ (or $ASAN_BUILD). QE_SANITIZE picks how much:
#   full (the default, what CI runs): every test program. Under a sanitizer the tests cut the
#     work that grows with images and iterations (tests/sanitizer.h); the accuracy bars that need
#     the full count are checked by the normal pass. The whole script takes about 50 minutes on
#     2 cores from a clean clone (README);
#   quick: the programs that read hostile input or stress the window (parsers, bad input, fuzz
#     regressions, configuration, kernels, the window stress test), for a quicker local run;
#   0: none.
# Tests that need ../shared/ skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
export QT_QPA_PLATFORM=offscreen

SANITIZE=${QE_SANITIZE:-full}
QUICK_SANITIZER_TESTS="tst_tensor tst_dataset tst_onnx_import tst_onnx_conformance tst_bad_input tst_quantizer \
tst_calibration tst_config_file tst_config_resolve tst_atomic_file tst_int8_kernels tst_study tst_fuzz_regressions \
tst_config_edits tst_config_document tst_window_stress"
case "$SANITIZE" in
  0) targets=""; only="" ;;
  quick) targets=$QUICK_SANITIZER_TESTS; only="^($(echo $QUICK_SANITIZER_TESTS | tr ' ' '|'))\$" ;;
  full) targets=""; only="" ;;
  *) echo "QE_SANITIZE must be quick, full or 0, not '$SANITIZE'" >&2; exit 2 ;;
esac

# The sanitizer build runs beside the normal tests, at the lowest priority: many of them leave a
# core idle (window tests waiting on one worker, Python and Node making references), and on 2
# cores it then costs the tests a few minutes instead of its own 13. Sharing the cores must not
# fail a test, so the window tests' waits are stretched (QE_TEST_TIME_SCALE) and QtTest's limit
# per test function raised; ctest's limit per program still catches a hang.
ASAN_LOG=$(mktemp)
asan_build=""
if [ "$SANITIZE" != 0 ]; then
  setsid nice -n 19 scripts/build-asan.sh $targets > "$ASAN_LOG" 2>&1 &
  asan_build=$!
fi
stop_asan_build() { [ -n "$asan_build" ] && kill -- "-$asan_build" 2>/dev/null || true; rm -f "$ASAN_LOG"; }
trap stop_asan_build EXIT
export QE_TEST_TIME_SCALE=${QE_TEST_TIME_SCALE:-3}
export QTEST_FUNCTION_TIMEOUT=${QTEST_FUNCTION_TIMEOUT:-1800000}
# OpenMP's idle threads sleep instead of spinning: with the sanitizer build (or a second test
# program) on the other core, two threads spinning at each barrier made tst_adaround four to six
# times slower (176 s alone, 732 s beside the quick build, 1168 s beside the full one).
export OMP_WAIT_POLICY=passive
(cd "${BUILD:-build}" && ctest --output-on-failure --timeout 1200 "$@")
[ "$SANITIZE" = 0 ] && exit 0

if ! wait "$asan_build"; then
  cat "$ASAN_LOG"
  echo "the sanitizer build failed" >&2
  exit 1
fi
asan_build=""
tail -n 1 "$ASAN_LOG"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0
# Python's and Node's references (torchvision exports, PyTorch's quantizer results, ONNX Runtime)
# were made by the normal pass: the sanitizer pass reads them from there.
normal_build=$(cd "${BUILD:-build}" && pwd)
export QE_REFERENCE_DIR=$normal_build ORTPEER_DIR=$normal_build/ortpeer
# Two programs at a time: most of them keep one core busy. tests/CMakeLists.txt makes the window
# tests and the reference makers take turns, and starts the longest first. (OpenMP's passive
# threads matter most here: two programs spinning on 2 cores made a window test 18 times slower.)
(cd "${ASAN_BUILD:-build-asan}" && ctest --output-on-failure --timeout 2400 -j "$(nproc)" ${only:+-R "$only"} "$@")
