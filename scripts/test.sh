#!/usr/bin/env bash
# One command for the whole test suite: installs what is missing (as root), builds, runs ctest;
# then builds with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/ (or $ASAN_BUILD)
# and runs tests again there. QE_SANITIZE picks how much:
#   quick (the default, what CI runs): the programs that read hostile input or stress the window
#     (parsers, bad input, fuzz regressions, configuration, kernels, the window stress test);
#   full: every test program (about an hour and a half on 2 cores: the model-accuracy tests run
#     10-20x slower under ASan, see README, Robustness);
#   0: none.
# Tests that need ../shared/ skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
export QT_QPA_PLATFORM=offscreen
(cd "${BUILD:-build}" && ctest --output-on-failure --timeout 1200 "$@")

SANITIZE=${QE_SANITIZE:-quick}
QUICK_SANITIZER_TESTS="tst_tensor tst_dataset tst_onnx_import tst_onnx_conformance tst_bad_input tst_quantizer \
tst_calibration tst_config tst_atomic_file tst_int8_kernels tst_study tst_fuzz_regressions tst_config_edits \
tst_config_document tst_window_stress"
case "$SANITIZE" in
  0) exit 0 ;;
  quick) targets=$QUICK_SANITIZER_TESTS; only="^($(echo $QUICK_SANITIZER_TESTS | tr ' ' '|'))\$" ;;
  full) targets=""; only="" ;;
  *) echo "QE_SANITIZE must be quick, full or 0, not '$SANITIZE'" >&2; exit 2 ;;
esac
scripts/build-asan.sh $targets
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0
(cd "${ASAN_BUILD:-build-asan}" && ctest --output-on-failure --timeout 2400 ${only:+-R "$only"} "$@")
