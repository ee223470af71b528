#!/usr/bin/env bash
# One command for the whole test suite: installs what is missing (as root), builds, runs ctest;
# then builds the same suite with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/
# (or $ASAN_BUILD) and runs it again there when QE_SANITIZE=1 (not yet the default: see README, Robustness).
# Tests that need ../shared/ skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
export QT_QPA_PLATFORM=offscreen
(cd "${BUILD:-build}" && ctest --output-on-failure --timeout 1200 "$@")

if [ "${QE_SANITIZE:-0}" = 1 ]; then
  scripts/build-asan.sh
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0
  (cd "${ASAN_BUILD:-build-asan}" && ctest --output-on-failure --timeout 2400 "$@")
fi
