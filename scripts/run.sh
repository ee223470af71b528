#!/usr/bin/env bash
# One command to try the explorer: installs what is missing (as root), builds, and starts the GUI
# on the embedded default (the demo Fashion-MNIST model and Debian's Fashion-MNIST test images).
# Extra arguments go to the application, e.g. --model M.onnx --data PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "no display found: starting under Xvfb (scripts/screenshot takes pictures of it)" >&2
  exec xvfb-run -a -s "-screen 0 1280x800x24" "${BUILD:-build}/app/quantexplorer" "$@"
fi
exec "${BUILD:-build}/app/quantexplorer" "$@"
