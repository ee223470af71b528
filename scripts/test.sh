#!/usr/bin/env bash
# One command for the whole test suite: installs what is missing (as root), builds, runs ctest.
# Tests that need ../shared/ skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
export QT_QPA_PLATFORM=offscreen
cd "${BUILD:-build}"
ctest --output-on-failure --timeout 1200 "$@"
