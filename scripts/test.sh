#!/usr/bin/env bash
# One command for the whole test suite: installs what is missing (as root), builds, runs ctest;
# then runs the test programs again built with AddressSanitizer + UndefinedBehaviorSanitizer in
# build-asan/ (or $ASAN_BUILD). QE_SANITIZE picks how much:
#   ci (the default, what CI runs): every test program except the eight in LONG_UNDER_SANITIZER,
#     which take three to eight minutes each there (on a slower 2-core machine the whole pass took
#     over 40 minutes and CI over 90) and run code the others run under the sanitizers too (see
#     the list). Under a sanitizer the tests cut the work that grows with images and iterations
#     (tests/sanitizer.h); the accuracy bars that need the full count are checked by the normal
#     pass. The whole script's time on 2 cores from a clean clone is in the README;
#   full: every test program (about 35 minutes more on that machine);
#   quick: the programs that read hostile input or stress the window (parsers, bad input, fuzz
#     regressions, configuration, kernels, the window stress test), for a quicker local run;
#   0: none.
# Tests that need ../shared/ skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
export QT_QPA_PLATFORM=offscreen

SANITIZE=${QE_SANITIZE:-ci}
QUICK_SANITIZER_TESTS="tst_tensor tst_dataset tst_onnx_import tst_onnx_conformance tst_bad_input tst_quantizer \
tst_calibration tst_config_file tst_config_resolve tst_atomic_file tst_int8_kernels tst_study tst_fuzz_regressions \
tst_config_edits tst_config_document tst_window_stress"
# Seconds under ASan + UBSan, 2 programs at a time (2026-12-07, AMD EPYC family 26, 2 cores), and
# where their core code runs under the sanitizers in the ci pass: the sensitivity sweep and search
# (tst_precision_search), the shared models (tst_real_models, tst_integer_engine, tst_cli), the
# repairs (tst_adaround, tst_window_repairs), lessons' parsing (tst_fuzz_regressions' lesson
# target), the window's edits, runs and closing (tst_window_stress, tst_window_bad_input,
# tst_compare, tst_one_study, tst_config_edits).
LONG_UNDER_SANITIZER="tst_precision_views tst_main_window tst_window_real_models tst_lesson tst_repair \
tst_window_lessons tst_charts tst_transformer"  # 466 317 313 278 236 210 201 183
case "$SANITIZE" in
  0) targets=""; only=""; except="" ;;
  quick) targets=$QUICK_SANITIZER_TESTS; only="^($(echo $QUICK_SANITIZER_TESTS | tr ' ' '|'))\$"; except="" ;;
  ci) except="^($(echo $LONG_UNDER_SANITIZER | tr ' ' '|'))\$"; only=""
      # Only the programs that run are built with the sanitizers (the eight left out would cost
      # about 3 CPU-minutes of the build that shares the cores with the normal pass). Test names
      # are their programs' target names.
      targets=$(cd "${BUILD:-build}" && ctest -N | sed -n 's/^ *Test *#[0-9]*: //p' | grep -vE "$except" | tr '\n' ' ') ;;
  full) targets=""; only=""; except="" ;;
  *) echo "QE_SANITIZE must be ci, full, quick or 0, not '$SANITIZE'" >&2; exit 2 ;;
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
# Two programs at a time here too: alone, the normal pass keeps the second core idle for about 11
# of its 18 minutes (window tests wait on one worker, Python makes references), which only the
# sanitizer build filled. Each program keeps its two OpenMP threads, so the parallel loops are
# tested as users run them.
(cd "${BUILD:-build}" && ctest --output-on-failure --timeout 1200 -j "$(nproc)" "$@")
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
# Two programs at a time, one OpenMP thread each (oneDNN's too): with two threads each, four
# threads share the 2 cores and every parallel loop waits at its barrier for a thread the other
# program holds off the core. tests/CMakeLists.txt gives each window test a home folder of its own,
# makes the reference makers take turns, and starts the longest first.
export OMP_NUM_THREADS=1
(cd "${ASAN_BUILD:-build-asan}" && ctest --output-on-failure --timeout 2400 -j "$(nproc)" ${only:+-R "$only"} ${except:+-E "$except"} "$@")
